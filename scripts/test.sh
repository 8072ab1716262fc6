#!/usr/bin/env bash
# Sets up .venv, lints (ruff, pinned), and runs the whole test suite (pytest's "no tests" exit
# code 5 fails too). Extra arguments go to pytest, e.g. -m 'not slow', or -n 0 for one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
if ! .venv/bin/ruff check --quiet . || ! .venv/bin/ruff format --check --quiet .; then
  echo "test: error: ruff found lint or formatting problems (fix: .venv/bin/ruff check --fix ." \
       "&& .venv/bin/ruff format .)" >&2
  exit 1
fi
export TF_CPP_MIN_LOG_LEVEL=2
# Two workers (pytest-xdist): much of the suite is one-core work (Beam's DirectRunner, starting
# commands); a file's tests, and the files sharing a trained fixture, stay in one worker.
exec .venv/bin/python -m pytest -q --durations=25 -n 2 --dist loadgroup "$@"
