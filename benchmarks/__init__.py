"""Benchmark scripts (bench_*: speed and memory), model-quality studies and peer helpers;
run from the checkout, e.g. python -m benchmarks.bench_train (docs/benchmarks.md)."""
