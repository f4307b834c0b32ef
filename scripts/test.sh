#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: venv, install, lint, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/python -m ruff check jobq tui tests
.venv/bin/python -m ruff format --check jobq tui tests
.venv/bin/python -m mypy
.venv/bin/python -m pytest -q "$@"
