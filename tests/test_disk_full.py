"""A full disk: enqueue exits 75 with one line, workers survive and finish once space is freed,
nothing is lost. Each test runs on a real 3 MiB tmpfs (root only; skipped elsewhere)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from jobq.store import Store
from tests.factories import new_job
from tests.helpers import integrity, kill_all, start_work, wait_until


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 3 MiB tmpfs mounted for the test (root only)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(directory: Path) -> Path:
    """Fill the filesystem holding `directory` with a junk file until it is full."""
    junk = directory / "junk"
    with open(junk, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return junk


def _enqueue_on_full_disk(jobq_cmd: list[str], env: dict[str, str]) -> None:
    big = json.dumps({"big": "y" * 8000})
    r = subprocess.run(
        [*jobq_cmd, "enqueue", "x", "--payload", big], env=env, capture_output=True, timeout=60
    )
    err = r.stderr.decode()
    assert r.returncode == 75, (r.returncode, err)
    assert r.stdout == b""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and ("full" in err or "space" in err), err


@pytest.mark.timeout(120)
def test_enqueue_on_a_full_disk_exits_75_and_nothing_is_lost(
    tiny_fs: Path, tmp_path: Path, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    """Enqueue on a full disk exits 75 with one line, no traceback; once space is freed, a pool
    (restarted if it had to be) finishes every job: nothing is lost."""
    db = str(tiny_fs / "q.db")
    env = {**jobq_env, "JOBQ_DB": db}
    ledger = tmp_path / "ledger"  # outside the full filesystem
    store = Store(db)
    n = 20
    payload = json.dumps({"ledger": str(ledger), "sleep": 0.3})
    store.enqueue([new_job("chaos.ledger", payload) for _ in range(n)], time.time())
    pools = [start_work(jobq_cmd, env, tmp_path / "pool.log", "-c", "2", "--lease", "2s")]
    try:
        wait_until(lambda: ledger.exists(), 20, 0.05, what="the pool starts working")
        junk = _fill(tiny_fs)
        _enqueue_on_full_disk(jobq_cmd, env)
        wait_until(
            lambda: (
                pools[0].poll() is not None
                or "no space left" in (tmp_path / "pool.log").read_text()
            ),
            20,
            0.05,
            what="the pool meets the full disk",
        )
        junk.unlink()
        # see test_workers_survive_a_full_disk_and_finish_once_space_is_freed
        if pools[0].poll() is not None:
            pools.append(start_work(jobq_cmd, env, tmp_path / "pool.log", "-c", "2"))
        wait_until(lambda: store.counts()["succeeded"] == n, 60, 0.1, what="every job succeeds")
        r = subprocess.run([*jobq_cmd, "enqueue", "x"], env=env, capture_output=True, timeout=30)
        assert r.returncode == 0 and r.stdout.strip().isdigit(), r
    finally:
        kill_all(pools)
    ran = {int(line.split()[0]) for line in ledger.read_text().splitlines()}
    assert ran == set(range(1, n + 1))
    assert store.counts()["succeeded"] == n and store.counts()["pending"] == 1
    store.close()
    assert integrity(db) == "ok"


@pytest.mark.timeout(120)
def test_workers_survive_a_full_disk_and_finish_once_space_is_freed(
    tiny_fs: Path, tmp_path: Path, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    """Running workers survive a full disk, keep retrying their completions, and finish once
    space is freed, without a restart."""
    db = str(tiny_fs / "q.db")
    env = {**jobq_env, "JOBQ_DB": db}
    ledger = tmp_path / "ledger"
    store = Store(db)
    n = 20
    payload = json.dumps({"ledger": str(ledger), "sleep": 0.3})
    store.enqueue([new_job("chaos.ledger", payload) for _ in range(n)], time.time())
    pool = start_work(jobq_cmd, env, tmp_path / "pool.log", "-c", "2")
    try:
        wait_until(lambda: ledger.exists(), 20, 0.05, what="the pool starts working")
        junk = _fill(tiny_fs)
        wait_until(lambda: "no space left" in (tmp_path / "pool.log").read_text(), 20, 0.05,
                   what="a completion fails on the full disk and is retried")  # fmt: skip
        log = (tmp_path / "pool.log").read_text()
        assert pool.poll() is None, f"the pool exited {pool.returncode}: {log[-1500:]}"
        assert "Traceback" not in log, log[-1500:]
        junk.unlink()
        wait_until(lambda: store.counts()["succeeded"] == n, 60, 0.1, what="every job succeeds")
        assert pool.poll() is None
    finally:
        kill_all([pool])
        store.close()


@pytest.mark.timeout(120)
def test_a_pipelined_ndjson_batch_that_fills_the_disk_writes_none_of_it(
    tiny_fs: Path, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    """A batch large enough to be inserted while it is read (jobq.bulk) runs out of space part
    way: exit 75 with one line, none of the batch in the file, the file sound, and the same
    batch goes in whole once there is room."""
    from jobq import bulk

    db = str(tiny_fs / "q.db")
    env = {**jobq_env, "JOBQ_DB": db}
    store = Store(db)
    first = store.enqueue([new_job("before")], time.time())
    store.close()
    n = 30_000  # ~4 MB of WAL: more than the tmpfs holds
    assert n > bulk.PIPELINE_FROM
    batch = "".join(json.dumps({"type": "bulk", "payload": {"i": i}}) + "\n" for i in range(n))
    r = subprocess.run([*jobq_cmd, "enqueue", "--ndjson", "-"], input=batch.encode(), env=env,
                       capture_output=True, timeout=60)  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == 75, (r.returncode, err[-1500:])
    assert r.stdout == b"" and len(err.strip().splitlines()) == 1, err[-1500:]
    assert "Traceback" not in err and ("full" in err or "space" in err), err
    assert integrity(db) == "ok"
    store = Store(db)
    try:
        assert store.counts()["pending"] == 1  # none of the batch
        assert [e.job_id for e in store.events(kinds=["created"])] == first
    finally:
        store.close()
    half = "".join(batch.splitlines(keepends=True)[: bulk.PIPELINE_FROM + 100])
    r = subprocess.run([*jobq_cmd, "enqueue", "--ndjson", "-"], input=half.encode(), env=env,
                       capture_output=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()[-1500:]
    assert len(r.stdout.split()) == bulk.PIPELINE_FROM + 100
