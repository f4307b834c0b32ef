#!/usr/bin/env bash
# One command from a fresh clone to the demo: venv, install, seeded queue, 4 workers, dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q -e .
exec .venv/bin/jobq demo "$@"
