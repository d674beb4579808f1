"""Evaluation: depth metrics, scoring protocols, classical baselines and the ``mf eval`` harness."""
