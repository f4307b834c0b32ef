"""`jobq demo`: seeding, and the worker pool it starts is stopped with nothing left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jobq import Queue
from jobq.demo import ensure_generator, seed_demo, start_workers, stop_workers

ROOT = Path(__file__).resolve().parent.parent


def test_seed_demo_mix(tmp_path: Path) -> None:
    with Queue(str(tmp_path / "demo.db")) as q:
        seed_demo(q)
        ensure_generator(q)
        ensure_generator(q)  # idempotent
        assert q.count("pending", type="demo.generator") == 1
        assert q.count("scheduled") >= 1
        assert len(q.stats().by_queue) >= 4


def test_demo_workers_run_and_stop_without_strays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = str(tmp_path / "demo.db")
    with Queue(path) as q:
        ids = q.enqueue_many([("text.wordcount", {"text": "one two three"})])
    proc = start_workers(path, str(tmp_path / "workers.log"))
    try:
        with Queue(path) as q:
            deadline = time.monotonic() + 60
            while q.get(ids[0]).state.value != "succeeded":
                assert proc.poll() is None, (tmp_path / "workers.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()
                time.sleep(0.1)
            assert q.get(ids[0]).result == 3  # the command handler (python3 -c …) ran
    finally:
        stop_workers(proc)
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no process of the pool's group is left
