"""Benchmarks: the kit against named baselines, one script per figure (see README.md)."""
