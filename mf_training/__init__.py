"""training: bags -> samples, synthetic scenes, training, evaluation and benchmarks."""
