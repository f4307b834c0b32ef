"""No double claim: processes racing through a backend's claim get each ready job exactly once,
on every backend (SQLite's write lock, PostgreSQL's FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from jobq.backend import Role, open_backend
from tests.factories import new_job
from tests.helpers import kill_all, wait_until

CLAIMER = textwrap.dedent(
    """
    import json, os, sys, time
    from jobq.backend import Role, open_backend
    from jobq.errors import DatabaseBusy

    location, out, go, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = open_backend(location, Role.WORKER)
    open(out + ".ready", "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    claimed, busy, empty = [], 0, 0
    while empty < 3:
        try:
            jobs = store.claim(f"racer-{os.getpid()}/1", time.time(), 300.0, limit=limit)
        except DatabaseBusy:
            busy += 1
            continue
        if jobs:
            empty = 0
            claimed.extend(j.id for j in jobs)
        else:
            empty += 1
    with open(out, "w") as f:
        json.dump({"claimed": claimed, "busy": busy}, f)
    """
)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("limit", [1, 8])
def test_racing_processes_claim_each_job_exactly_once(
    tmp_path: Path, location: str, jobq_env: dict[str, str], limit: int
):
    """8 processes claim 10,000 ready jobs at once: each id exactly once, no busy error."""
    total = 10_000
    store = open_backend(location, Role.PRODUCER)
    for start in range(0, total, 5_000):
        store.enqueue([new_job("race") for _ in range(min(5_000, total - start))], time.time())
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLAIMER,
                location,
                str(tmp_path / f"out{i}"),
                str(go),
                str(limit),
            ],
            env=jobq_env,
            start_new_session=True,
        )
        for i in range(8)
    ]
    try:
        wait_until(lambda: all((tmp_path / f"out{i}.ready").exists() for i in range(8)), 60,
                   what="every racer has opened its connection")  # fmt: skip
        go.touch()
        for p in procs:
            assert p.wait(timeout=200) == 0
    finally:
        kill_all(procs)
    results = [json.loads((tmp_path / f"out{i}").read_text()) for i in range(8)]
    every = [i for r in results for i in r["claimed"]]
    dupes = [i for i, n in Counter(every).items() if n > 1]
    assert dupes == [], f"claimed more than once: {dupes[:20]}"
    assert sorted(every) == list(range(1, total + 1))
    assert sum(r["busy"] for r in results) == 0, "DatabaseBusy reached a caller"
    per_proc = [len(r["claimed"]) for r in results]
    assert sum(1 for n in per_proc if n > 0) >= 2, f"no race happened: {per_proc}"
    counts = store.counts()
    assert counts["running"] == total and counts["pending"] == 0
    assert store.doctor()["integrity"] == "ok"
    store.close()
