"""Mutation testing of the SQL text in jobq/store/sqlite/sql.py (`just mutate sql`).

mutmut mutates function bodies only, and a blind string mutator would mostly break the SQL's
syntax (killed by any test, telling nothing). So the mutants here are written by hand: each
changes the logic of one statement the way a plausible bug would (a comparison, a guard, an
ORDER BY, a COALESCE order). Each runs the store tests in a copy of the project; a mutant
survives when they all pass. Usage: scripts/mutate_sql.py [-j N] [NAME_SUBSTRING ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL = Path("jobq/store/sqlite/sql.py")
TESTS = [  # fastest first: pytest -x stops at the first failure
    "tests/test_store_machine.py",
    "tests/test_store.py",
    "tests/test_store_rescue.py",
    "tests/test_lifecycle.py",
    "tests/test_store_hypothesis.py",
    "tests/test_ndjson.py",
    "tests/test_bulk_storage.py",
]

# (name, text in sql.py, replacement): each text must occur exactly once.
MUTANTS = [
    # the claim
    ("claim: attempt not counted", "attempts = attempts + 1,", "attempts = attempts,"),
    (
        "claim: lease ends now",
        "lease_until = :lease_until, started_at",
        "lease_until = :now, started_at",
    ),
    (
        "claim: started_at kept",
        "started_at = :now, cancel_requested = 0,\n    max",
        "started_at = started_at, cancel_requested = 0,\n    max",
    ),
    (
        "claim: handler max_attempts ignored",
        "COALESCE(max_attempts, {HANDLER_LIMIT.format(i=0)},",
        "COALESCE(max_attempts,",
    ),
    (
        "claim: handler max_attempts first",
        "COALESCE(max_attempts, {HANDLER_LIMIT.format(i=0)},",
        "COALESCE({HANDLER_LIMIT.format(i=0)}, max_attempts,",
    ),
    (
        "claim: handler timeout ignored",
        "COALESCE(timeout, {HANDLER_LIMIT.format(i=1)},",
        "COALESCE(timeout,",
    ),
    (
        "claim: handler timeout first",
        "COALESCE(timeout, {HANDLER_LIMIT.format(i=1)},",
        "COALESCE({HANDLER_LIMIT.format(i=1)}, timeout,",
    ),
    (
        "claim: handler limits swapped",
        "json_extract(l.value, '$[{i}]')",
        "json_extract(l.value, '$[' || (1 - {i}) || ']')",
    ),
    ("claim: handler limit of another type", "WHERE l.key = jobs.type", "WHERE l.key != jobs.type"),
    ("claim: default max_attempts lost", "{DEFAULT_MAX_ATTEMPTS}),", "NULL),"),
    ("claim: due strictly before now", "run_at <= :now\n", "run_at < :now\n"),
    ("claim: not yet due claimed", "run_at <= :now\n", "run_at <= :now + 1\n"),
    (
        "claim: queue filter inverted",
        "queue IN (SELECT value FROM json_each(:queues))",
        "queue NOT IN (SELECT value FROM json_each(:queues))",
    ),
    ("claim: queue filter ignored", "(:queues IS NULL OR", "(1 OR"),
    ("claim: type filter ignored", "(:types IS NULL OR", "(1 OR"),
    ("claim: glob filter ignored", "(:globs IS NULL OR", "(1 OR"),
    ("claim: glob reversed", "jobs.type GLOB g.value", "g.value GLOB jobs.type"),
    ("claim: paused queues claimed", "AND queue NOT IN (SELECT name FROM queues WHERE paused)", ""),
    ("claim: resumed queues skipped", "FROM queues WHERE paused)", "FROM queues)"),
    (
        "claim: priority ascending",
        "ORDER BY priority DESC, run_at, id",
        "ORDER BY priority, run_at, id",
    ),
    ("claim: run_at ignored", "ORDER BY priority DESC, run_at, id", "ORDER BY priority DESC, id"),
    (
        "claim: newest first",
        "ORDER BY priority DESC, run_at, id",
        "ORDER BY priority DESC, run_at DESC, id DESC",
    ),
    ("claim: one more than asked", "LIMIT :limit\n)", "LIMIT :limit + 1\n)"),
    # renew, complete, leased
    (
        "renew: any token",
        'WHERE id = :id AND lease_token = :token AND state = \'running\'\n"""\n\nCOMPLETE',
        'WHERE id = :id AND state = \'running\'\n"""\n\nCOMPLETE',
    ),
    (
        "complete: any token",
        "WHERE id = :id AND lease_token = :token AND state = 'running'\nRETURNING",
        "WHERE id = :id AND state = 'running'\nRETURNING",
    ),
    (
        "complete: token kept",
        "result = :result, finished_at = :now, lease_token = NULL,",
        "result = :result, finished_at = :now,",
    ),
    (
        "leased: any token",
        "FROM jobs WHERE id = :id AND lease_token = :token AND state = 'running'",
        "FROM jobs WHERE id = :id AND state = 'running'",
    ),
    (
        "leased: any state",
        "FROM jobs WHERE id = :id AND lease_token = :token AND state = 'running'",
        "FROM jobs WHERE id = :id AND lease_token = :token",
    ),
    # the end of an attempt
    (
        "end: attempts not written",
        "SET state = :state, attempts = :attempts,",
        "SET state = :state,",
    ),
    (
        "end: finished_at not written",
        "attempts = :attempts, finished_at = :finished_at,",
        "attempts = :attempts,",
    ),
    ("end: run_at not moved", "run_at = COALESCE(:run_at, run_at)", "run_at = run_at"),
    (
        "end: error replaces nothing",
        "last_error = COALESCE(:error, last_error)",
        "last_error = last_error",
    ),
    (
        "end: token kept",
        "lease_token = NULL, lease_until = NULL,\n    cancel_requested = 0\nWHERE",
        "lease_until = NULL,\n    cancel_requested = 0\nWHERE",
    ),
    (
        "end: lease kept",
        "lease_token = NULL, lease_until = NULL,\n    cancel_requested = 0\nWHERE",
        "lease_token = NULL,\n    cancel_requested = 0\nWHERE",
    ),
    (
        "end: cancel request kept",
        "lease_until = NULL,\n    cancel_requested = 0\nWHERE",
        "lease_until = NULL\nWHERE",
    ),
    # the rescuer's reads
    (
        "held: pending too",
        "FROM jobs\nWHERE state = 'running'\nORDER BY lease_until",
        "FROM jobs\nORDER BY lease_until",
    ),
    (
        "live pools: dead ones too",
        "FROM workers WHERE status NOT IN ('stopped', 'dead')",
        "FROM workers WHERE status NOT IN ('stopped')",
    ),
    (
        "mark dead: stopped ones too",
        "SET status = 'dead' WHERE id = :id AND status NOT IN ('stopped', 'dead')",
        "SET status = 'dead' WHERE id = :id",
    ),
    ("running_of: prefix end included", "worker_id < :prefix_end", "worker_id <= :prefix_end"),
    ("running_of: any worker", "AND worker_id >= :prefix AND worker_id < :prefix_end", ""),
    # operator writes
    (
        "cancel: running ones too",
        'WHERE id = :id AND state = \'pending\'\n"""\n\nREQUEST',
        "WHERE id = :id AND state IN ('pending', 'running')\n\"\"\"\n\nREQUEST",
    ),
    (
        "request cancel: any state",
        "SET cancel_requested = 1 WHERE id = :id AND state = 'running'",
        "SET cancel_requested = 1 WHERE id = :id",
    ),
    (
        "retry: attempts kept",
        "SET state = 'pending', attempts = 0, run_at = :now,",
        "SET state = 'pending', run_at = :now,",
    ),
    (
        "retry: succeeded too",
        "WHERE id = :id AND state IN ('failed', 'cancelled')",
        "WHERE id = :id AND state IN ('failed', 'cancelled', 'succeeded')",
    ),
    (
        "retry: result kept",
        "started_at = NULL,\n    result = NULL, cancel_requested = 0",
        "started_at = NULL,\n    cancel_requested = 0",
    ),
    (
        "prune: finished at the bound",
        "WHERE finished_at < :before AND",
        "WHERE finished_at <= :before AND",
    ),
    (
        "prune: any state",
        "AND state IN (SELECT value FROM json_each(:states))\n    LIMIT :batch",
        "\n    LIMIT :batch",
    ),
    # the bulk insert
    ("bulk: ids shifted", "SELECT :first_id + key,", "SELECT :first_id + key + 1,"),
    (
        "bulk: wrapper cut short",
        "substr(value, 2, length(value) - 2)",
        "substr(value, 2, length(value) - 1)",
    ),
    (
        "bulk: arrays kept whole",
        "WHEN 'array' THEN substr(value, 2, length(value) - 2) END",
        "WHEN 'array' THEN value END",
    ),
]

BASELINE = "(none)"


def run_one(base: Path, name: str, old: str, new: str) -> tuple[str, str, float]:
    """Copy the project, apply one mutant, run the tests: (name, 'killed'|'survived', seconds)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jobq-sqlmut-") as tmp:
        work = Path(tmp) / "p"
        shutil.copytree(base, work, symlinks=True)
        path = work / SQL
        text = path.read_text()
        path.write_text(text.replace(old, new, 1))
        env = dict(os.environ, PYTHONPATH=str(work), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS]
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    verdict = "survived" if done.returncode == 0 else "killed"
    if done.returncode not in (0, 1):
        verdict = f"error {done.returncode}"
    return name, verdict, time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", type=int, default=2, help="mutants run at once (default 2)")
    ap.add_argument("only", nargs="*", help="run the mutants whose name contains one of these")
    args = ap.parse_args()
    text = (ROOT / SQL).read_text()
    for name, old, _new in MUTANTS:
        if text.count(old) != 1:
            print(f"mutant {name!r}: its text occurs {text.count(old)} times in {SQL}")
            return 2
    todo = [m for m in MUTANTS if not args.only or any(o in m[0] for o in args.only)]
    todo.insert(0, (BASELINE, "", ""))  # unmutated: the tests must pass in the copy
    with tempfile.TemporaryDirectory(prefix="jobq-sqlmut-base-") as tmp:
        base = Path(tmp) / "base"  # a clean copy without .venv, mutants/ and caches
        ignore = shutil.ignore_patterns(
            ".venv",
            "mutants",
            ".git",
            "__pycache__",
            "*.db*",
            ".hypothesis",
            ".*_cache",
            "bench",
            "screenshots",
        )
        shutil.copytree(ROOT, base, ignore=ignore)
        results = []
        with ThreadPoolExecutor(args.j) as pool:
            for name, verdict, secs in pool.map(lambda m: run_one(base, *m), todo):
                print(f"{verdict:9} {secs:6.1f}s  {name}", flush=True)
                results.append((name, verdict, secs))
    if results[0][1] != "survived":
        print("the unmutated copy fails its tests: no verdict above means anything")
        return 1
    results = results[1:]
    survived = [r for r in results if r[1] != "killed"]
    print(f"\n{len(results)} SQL mutants: {len(results) - len(survived)} killed, "
          f"{len(survived)} survived or errored")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
