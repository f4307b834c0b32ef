"""Durable acknowledgement: an enqueue that printed its id survives being SIGKILLed."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time

import pytest

from jobq.store import Store
from tests.conftest import SLOW
from tests.factories import new_job
from tests.helpers import integrity, kill_all


def test_enqueue_commits_with_synchronous_full(store: Store):
    """The enqueue transaction runs with synchronous=FULL (2): the WAL is fsynced at commit."""
    store.enqueue([new_job("t")], time.time())
    assert store.synchronous == 2
    store.claim("w/1", time.time(), 30)  # other writes may use NORMAL (1)...
    store.enqueue([new_job("t")], time.time())
    assert store.synchronous == 2  # ...but every enqueue switches back to FULL


@pytest.mark.slow
@pytest.mark.timeout(600 if SLOW else 120)
def test_killed_enqueues_keep_every_acknowledged_job(
    db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    """`jobq enqueue` processes SIGKILLed at random moments: every printed id is in the file
    with its payload. The kill moment spans start-up (0-50 ms) and the commit itself (a whole
    enqueue takes ~80 ms here), so both early kills and kills around the commit happen."""
    n = 1_000 if SLOW else 100
    Store(db_path).close()  # the file exists: every run races on the same one
    rng = random.Random(5)
    acked: dict[int, int] = {}  # job id -> i
    killed_early = 0
    running: list[tuple[int, subprocess.Popen[bytes], float]] = []
    procs: list[subprocess.Popen[bytes]] = []

    def finish(i: int, p: subprocess.Popen[bytes]) -> None:
        nonlocal killed_early
        out, _ = p.communicate(timeout=30)
        text = out.decode().strip()
        if text:
            assert text.isdigit(), text  # only the id, whole, or nothing at all
            acked[int(text)] = i
        else:
            killed_early += 1

    # how long one enqueue takes here, start-up included
    took = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([*jobq_cmd, "enqueue", "warmup"], env=jobq_env, capture_output=True)
        took.append(time.monotonic() - t0)
    typical = sorted(took)[1]
    try:
        for i in range(n):
            payload = json.dumps({"i": i, "pad": "x" * (i % 50)})
            p = subprocess.Popen(
                [*jobq_cmd, "enqueue", "durable", "--payload", payload],
                env=jobq_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            procs.append(p)
            # half within 0-50 ms of start, half anywhere up to well past a whole enqueue
            delay = rng.uniform(0.0, 0.05) if i % 2 else rng.uniform(0.05, 2.0 * typical)
            running.append((i, p, time.monotonic() + delay))
            while len(running) >= 2 or (i == n - 1 and running):
                running.sort(key=lambda r: r[2])
                j, q, at = running.pop(0)
                time.sleep(max(0.0, at - time.monotonic()))
                q.send_signal(signal.SIGKILL)
                finish(j, q)
    finally:
        kill_all(procs)
    store = Store(db_path)
    missing = []
    for job_id, i in acked.items():
        job = store.get(job_id)
        if job is None or job.payload != {"i": i, "pad": "x" * (i % 50)}:
            missing.append((job_id, i, job))
    assert missing == [], f"acknowledged but lost: {missing[:5]}"
    assert integrity(db_path) == "ok"
    # not vacuous: some runs were killed before acknowledging, some acknowledged
    assert acked and killed_early, (len(acked), killed_early)
    print(f"\ndurable: {len(acked)} acknowledged, {killed_early} killed before printing an id")
    store.close()
