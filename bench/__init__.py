"""Benchmarks: real processes over real HTTP; `make bench` prints the figures and writes
docs/benchmarks.md. Not tests: nothing here asserts a timing."""
