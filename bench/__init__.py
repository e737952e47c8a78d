"""Benchmarks: one command each, JSON results under bench/results/."""
