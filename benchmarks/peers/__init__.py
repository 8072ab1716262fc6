"""Helpers run inside a peer tool's own environment (never the project's) for side-by-side
benchmarks."""
