#!/usr/bin/env bash
# The device check (docs/benchmarks.md, "The device check"): on a machine with a GPU, training
# examples/s at batch 512 in float32 and mixed precision with and without XLA, the input
# pipeline's feed rate against the step, contrib windows/s and variants/s, in about 8 minutes at
# most, written to one JSON file. --dry_run: the same code on a tiny model, on the CPU, in
# seconds (CI runs it).
#   bash benchmarks/device_check.sh [--output=device_check.json] [--dry_run] [--precisions=...]
#       [--budget_s=420] [--verbose]
# PYTHON picks the interpreter (default .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[[ -x "$python" ]] || python=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The script keeps its parts within --budget_s; the timeout stops a part that hangs.
exec timeout "${DEVICE_CHECK_TIMEOUT_S:-540}" "$python" -m benchmarks.device_check "$@"
