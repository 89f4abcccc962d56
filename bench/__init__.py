"""Benchmarks: bertkit against the tools users would otherwise use."""
