"""Training data: bags, sample folders and real datasets -> :class:`mf_training.data.sample.Sample`."""
