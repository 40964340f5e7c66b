"""Evaluation: metrics and benchmarks."""
