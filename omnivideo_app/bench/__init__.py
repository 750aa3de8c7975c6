"""Benchmarks and fidelity measurements: workloads, kernel-level and end-to-end prefill benches."""
