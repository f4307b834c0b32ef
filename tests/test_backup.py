"""Hot backup: `jobq backup` while workers drain gives a sound, complete copy every time."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from jobq.store import Store
from tests.factories import new_job
from tests.helpers import integrity, kill_all, wait_until


@pytest.mark.timeout(180)
def test_hot_backup_under_load_is_always_a_complete_sound_copy(
    tmp_path: Path, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    """`jobq backup OUT` while 4 workers drain: each copy is sound, and a watcher polling OUT
    never sees a partial file."""
    import threading

    n = 3_000
    store = Store(db_path)
    store.enqueue(
        [
            new_job("chaos.ledger", json.dumps({"ledger": str(tmp_path / "l"), "pad": "z" * 300}))
            for _ in range(n)
        ],
        time.time(),
    )
    out = tmp_path / "backups" / "copy.db"
    out.parent.mkdir()
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if out.exists():
                try:
                    conn = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
                    try:
                        seen.append(conn.execute("PRAGMA quick_check").fetchone()[0])
                    finally:
                        conn.close()
                except sqlite3.Error as e:
                    seen.append(f"error: {e}")
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    log = open(tmp_path / "pool.log", "wb")  # noqa: SIM115
    pool = subprocess.Popen(
        [*jobq_cmd, "work", "-c", "4", "--app", "tests.chaosapp"],
        env=jobq_env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        watcher.start()
        wait_until(lambda: store.counts()["succeeded"] > 100, 30, 0.05, what="workers drain")
        copies = 0
        while store.counts()["succeeded"] < n and copies < 10:
            r = subprocess.run(
                [*jobq_cmd, "backup", str(out)], env=jobq_env, capture_output=True, timeout=60
            )
            assert r.returncode == 0, r.stderr
            copies += 1
            assert integrity(str(out)) == "ok"
            copy = Store(str(out))
            counts = copy.counts()
            copy.close()
            assert sum(counts.values()) == n, counts  # a consistent snapshot: every job
        assert copies >= 2, "the queue drained before two backups could run"
    finally:
        stop.set()
        watcher.join(5)
        kill_all([pool])
        log.close()
    assert seen, "the watcher never saw the backup"
    bad = [s for s in seen if s != "ok"]
    assert bad == [], f"the watcher saw a partial backup: {bad[:5]}"
    store.close()
