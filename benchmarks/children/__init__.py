"""Child programs the benchmarks start in fresh processes (peak memory, pinned cores, a clean
import): python -m benchmarks.children.<name> ARGS, each printing one JSON line."""
