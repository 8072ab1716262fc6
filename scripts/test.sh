#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite (pytest's "no tests" exit code 5 fails too).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q "$@"
