"""Benchmarks run by `make bench` (never part of `make test`); each reports ratios to a same-run baseline."""
