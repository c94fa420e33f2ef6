"""Benchmarks: `python -m bench.<name>` prints median times and ratios against the unoptimized path."""
