"""Benchmarks: multisock figures beside the kernel's, measured in the same run."""
