# jobq tasks. Every recipe is a plain command, so CI does not need `just` itself.

py := if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" }

# install into .venv with the dev extra
setup:
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[dev]'

# the test suite (CI runs this; JOBQ_SLOW=1 for the full-size chaos tests)
test *ARGS:
    {{py}} -m pytest -q {{ARGS}}

# ruff + mypy --strict
lint:
    {{py}} -m ruff check jobq tui devtools tests
    {{py}} -m ruff format --check jobq tui devtools tests
    {{py}} -m mypy

# format the code
fmt:
    {{py}} -m ruff format jobq tui devtools tests
    {{py}} -m ruff check --fix jobq tui devtools tests

# seeded queue, 4 workers and the dashboard
demo:
    {{py}} -m jobq demo

# benchmarks vs SQLite's floor and huey, and psycopg's floor, pgqueuer, procrastinate (--quick)
bench *ARGS:
    {{py}} bench/run.py {{ARGS}}

# the PostgreSQL section alone (a throwaway server; --quick for a short run)
bench-pg *ARGS:
    {{py}} bench/run.py --only pg {{ARGS}}

# regenerate screenshots/*.svg from seeded data with a frozen clock
screenshots:
    {{py}} -m devtools.screenshots

# mutation testing (docs/mutation.md; needs `pip install -e '.[mutate]'`): every module (resumes
# where a stopped run left off), or one module afresh: lifecycle, writes, ndjson, safetext, retry;
# `just mutate sql` mutates the SQL text instead
mutate MODULE="":
    {{ if MODULE == "sql" { py + " scripts/mutate_sql.py" } else if MODULE == "" { py + " -m mutmut run && " + py + " -m mutmut results" } else { py + " -m mutmut run 'jobq*." + MODULE + ".x*' && " + py + " -m mutmut results" } }}
