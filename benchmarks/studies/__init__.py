"""Model-quality studies on simulated data (what a change does to the numbers, not the speed);
each runs as python -m benchmarks.studies.<name>."""
