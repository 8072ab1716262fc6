#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs bpnet-tfx (editable, with test extras) at the
# exact versions in constraints.txt. Re-running is cheap: it reinstalls only when setup.py or
# constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup_venv: error: Python 3.11 is needed ($PY is $("$PY" --version 2>&1)); set PYTHON=" >&2
    exit 2
  fi
  echo "setup_venv: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.bpnet_tfx_installed
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup_venv: installing bpnet-tfx and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,dask,motifs]' 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  touch "$stamp"
fi
