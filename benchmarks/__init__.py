"""Benchmarks: `make bench` runs each and writes its figures under benchmarks/results/."""
