#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: venv, install, lint, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# The PostgreSQL tests start a throwaway server (tests/pgserver.py): install one if missing
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "test.sh: PostgreSQL not found; its tests will skip (apt-get install postgresql)" >&2
    fi
fi
# The browser test (tests/test_tui_serve_browser.py) drives headless Chromium: install it if missing
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "test.sh: chromium not found; the browser test will skip (apt-get install chromium)" >&2
    fi
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/python -m ruff check jobq tui tests
.venv/bin/python -m ruff format --check jobq tui tests
.venv/bin/python -m mypy
# two processes, each test file in one of them (its fixtures and servers stay per file)
.venv/bin/python -m pytest -q -n "${TESTS_WORKERS:-2}" --dist loadfile "$@"
