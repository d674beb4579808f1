"""Benchmarks behind ``mf bench NAME``; each prints JSON with ratios against a baseline run beside it."""
