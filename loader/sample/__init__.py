"""Realistic, deterministic CloudTrail sample logs for the demo, tests and benchmarks."""
