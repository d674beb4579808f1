"""Training data: bags, sample folders and real datasets -> :class:`training.data.sample.Sample`."""
