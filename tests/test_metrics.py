"""Prometheus metrics: `jobq metrics` (text format) and `jobq work --metrics` (HTTP), read from the
queue itself, on every backend; counters never go down when a prune deletes history."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobq.backend import ClaimFilter, Ending, Role, open_backend
from jobq.basics import RUN_SECONDS_BOUNDS
from jobq.metrics import exposition, families
from tests.conftest import ROOT
from tests.factories import new_job
from tests.helpers import wait_until

T0 = 1_800_000_000.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, sorted labels)."""
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _families_text(location: str, now: float) -> str:
    from prometheus_client import generate_latest
    from prometheus_client.registry import Collector, CollectorRegistry

    b = open_backend(location, Role.READER)
    try:
        fams = families(b, now)
    finally:
        b.close()

    class Fixed(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            return fams

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Fixed())
    return generate_latest(reg).decode()


def _history(location: str) -> None:
    """resize: 2 succeeded (0.2 s, 3 s), 1 failed for good (0.004 s), 1 crashed (retrying);
    email: 1 pending due since T0, 1 running on pool-b; a scheduled job in queue 'later'."""
    b = open_backend(location, Role.WORKER)
    try:
        b.enqueue([new_job("resize", f'{{"i":{i}}}') for i in range(4)], T0)
        jobs = b.claim("pool-a/1", T0 + 10, 60, limit=4)
        b.complete_many([(jobs[0].id, jobs[0].lease_token or "", None, None)], T0 + 10.2)
        b.complete_many([(jobs[1].id, jobs[1].lease_token or "", None, None)], T0 + 13)
        b.end_attempt(jobs[2].id, jobs[2].lease_token or "", T0 + 10.004, Ending.FAIL, "bad",
                      retryable=False)  # fmt: skip
        b.end_attempt(jobs[3].id, jobs[3].lease_token or "", T0 + 70, Ending.CRASH, "killed")
        b.enqueue([new_job("email"), new_job("email")], T0 + 100)
        b.enqueue([new_job("later", queue="later", run_at=T0 + 9999)], T0 + 100)
        email = b.claim("pool-b:1:ab/3", T0 + 110, 60, ClaimFilter(types=("email",)))
        assert email[0].type == "email"
    finally:
        b.close()


def test_the_metrics_say_exactly_what_the_queue_holds(location: str) -> None:
    _history(location)
    m = samples(_families_text(location, T0 + 200))
    assert m[("jobq_jobs", (("queue", "default"), ("state", "succeeded"), ("type", "resize")))] == 2
    assert m[("jobq_jobs", (("queue", "default"), ("state", "failed"), ("type", "resize")))] == 1
    assert m[("jobq_jobs", (("queue", "default"), ("state", "pending"), ("type", "resize")))] == 1
    assert m[("jobq_jobs", (("queue", "default"), ("state", "running"), ("type", "email")))] == 1
    assert m[("jobq_jobs", (("queue", "later"), ("state", "pending"), ("type", "later")))] == 1
    # the crashed resize job is due again since T0+70, the pending email since T0+100; the
    # scheduled job of 'later' is not due, so that queue has no oldest due job
    assert m[("jobq_oldest_due_seconds", (("queue", "default"),))] == pytest.approx(130)
    assert not any(k[0] == "jobq_oldest_due_seconds" and ("queue", "later") in k[1] for k in m)
    attempts = {k[1]: v for k, v in m.items() if k[0] == "jobq_attempts_total"}
    assert attempts == {
        (("outcome", "succeeded"), ("type", "resize")): 2,
        (("outcome", "failed"), ("type", "resize")): 1,
        (("outcome", "crashed"), ("type", "resize")): 1,
    }
    assert m[("jobq_failures_total", (("type", "resize"),))] == 2
    buckets = {dict(k[1])["le"]: v for k, v in m.items()
               if k[0] == "jobq_run_seconds_bucket" and ("type", "resize") in k[1]}  # fmt: skip
    # run times 0.004, 0.2, 3, 60: cumulative counts at each bound
    expected = {str(b): float(sum(t <= b for t in (0.004, 0.2, 3.0, 60.0)))
                for b in RUN_SECONDS_BOUNDS}  # fmt: skip
    expected["+Inf"] = 4.0
    assert buckets == expected
    assert m[("jobq_run_seconds_count", (("type", "resize"),))] == 4
    assert m[("jobq_run_seconds_sum", (("type", "resize"),))] == pytest.approx(63.204)
    assert m[("jobq_pool_busy_slots", (("pool", "pool-b:1:ab"),))] == 1


def test_a_prune_never_makes_a_counter_go_down(location: str) -> None:
    _history(location)
    before = samples(_families_text(location, T0 + 200))
    b = open_backend(location, Role.WORKER)
    try:
        assert b.prune(T0 + 1000, ["succeeded", "failed", "cancelled"]) == 3
        assert b.get_many([1, 2, 3]) == []
    finally:
        b.close()
    after = samples(_families_text(location, T0 + 200))

    def kept(name: str) -> Samples:
        return {k: v for k, v in before.items() if k[0] == name}

    for name in ("jobq_attempts_total", "jobq_failures_total", "jobq_run_seconds_bucket",
                 "jobq_run_seconds_count", "jobq_run_seconds_sum"):  # fmt: skip
        assert {k: after.get(k) for k in kept(name)} == pytest.approx(kept(name)), name
    # while the gauges follow the queue
    assert ("jobq_jobs", (("queue", "default"), ("state", "succeeded"), ("type", "resize"))) \
        not in after  # fmt: skip


def test_deleting_a_finished_job_keeps_its_attempts_counted(location: str) -> None:
    _history(location)
    before = samples(_families_text(location, T0 + 200))
    b = open_backend(location, Role.WORKER)
    try:
        done = [j.id for j in b.list_jobs(T0 + 200) if j.state.value in ("succeeded", "failed")]
        assert len(done) == 3
        outcomes = b.delete(done)
        assert all(o.done for o in outcomes.values())
    finally:
        b.close()
    after = samples(_families_text(location, T0 + 200))
    counters = {k: v for k, v in before.items() if k[0] == "jobq_attempts_total"}
    assert {k: after.get(k) for k in counters} == counters


def test_jobq_metrics_prints_the_text_format(location: str) -> None:
    _history(location)
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", location, "metrics"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert samples(r.stdout)[("jobq_attempts_total", (("outcome", "succeeded"),
                                                       ("type", "resize")))] == 2  # fmt: skip
    assert r.stdout == exposition(location)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_pool_serves_metrics_summed_over_every_pool(location: str, tmp_path: Path) -> None:
    q = open_backend(location, Role.PRODUCER)
    try:
        q.enqueue([new_job("noop") for _ in range(40)], time.time())
    finally:
        q.close()
    port = _free_port()
    env = {**os.environ, "JOBQ_DB": location, "PYTHONPATH": str(ROOT)}
    pool = subprocess.Popen(
        [sys.executable, "-m", "jobq", "work", "-c", "2", "--app", "tests.workerapp",
         "--metrics", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def scrape() -> Samples:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return samples(r.read().decode())
            except OSError:
                return {}

        key = ("jobq_attempts_total", (("outcome", "succeeded"), ("type", "noop")))
        wait_until(lambda: scrape().get(key) == 40, timeout=60, what="40 successes scraped")
        # a second, one-shot reader agrees: the figures come from the queue, not the pool
        assert samples(exposition(location))[key] == 40
        m = scrape()
        slots = [v for k, v in m.items() if k[0] == "jobq_pool_slots"]
        assert slots == [2.0]
    finally:
        pool.terminate()
        pool.wait(timeout=30)


@pytest.mark.parametrize(
    ("value", "message"),
    [("nonsense", "expected [HOST:]PORT"), ("70000", "PORT in 1-65535"), (":80", "host")],
)
def test_a_bad_metrics_address_is_one_line_and_exit_2(
    db_path: str, value: str, message: str
) -> None:
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", db_path, "work", "--app",
                        "tests.workerapp", "--metrics", value], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (r.returncode, r.stderr.count("\n")) == (2, 1), r.stderr
    assert message in r.stderr
    assert not Path(db_path).exists()


def test_a_metrics_port_in_use_stops_the_pool_with_one_line(db_path: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "jobq", "--db", db_path, "work", "--app",
                            "tests.workerapp", "--metrics", str(port)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_stores_buckets_are_the_bounds_the_metrics_name() -> None:
    import re

    from jobq.store.sqlite.sql import RUN_BUCKET

    bounds = tuple(float(x) for x in re.findall(r"<= ([0-9.]+) THEN", RUN_BUCKET))
    assert bounds == RUN_SECONDS_BOUNDS
    assert f"ELSE {len(RUN_SECONDS_BOUNDS)}" in RUN_BUCKET
