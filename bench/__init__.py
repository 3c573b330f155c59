"""Benchmarks: each bench_<topic>.py prints ratios against baselines measured in the same run."""
