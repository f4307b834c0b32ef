"""A pool as a service: the sd_notify protocol, idle CPU, and wake-up latency on an idle pool."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import statistics
import time
from pathlib import Path

import pytest
from conftest import SLOW, wait_until
from workerapp import PoolProcess, Pools

import jobq
from jobq import JobState

pytestmark = pytest.mark.timeout(60)


def test_notify_protocol_on_a_fake_notify_socket(
    db_path: str, tmp_path: Path, queue: jobq.Queue
) -> None:
    address = f"/tmp/jobq-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(0.1)
    messages: list[tuple[float, str]] = []

    def receive_until(pred: object, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                messages.append((time.monotonic(), sock.recv(4096).decode()))
            if callable(pred) and pred():
                return
        pytest.fail(f"notify messages so far: {messages}")

    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="400000")
    pool = PoolProcess(db_path, tmp_path / "pool.log", env=env, concurrency=2)
    try:
        receive_until(lambda: any("READY=1" in m for _, m in messages))
        ready = next(m for _, m in messages if "READY=1" in m)
        assert "STATUS=2 children, 0 running, 0 done" in ready
        # the children were up when READY was sent, and did not inherit NOTIFY_SOCKET
        children = pool.children()
        assert len(children) == 2
        for pid in children:
            assert b"NOTIFY_SOCKET" not in Path(f"/proc/{pid}/environ").read_bytes()
        queue.enqueue("noop")
        receive_until(lambda: sum(m == "WATCHDOG=1" for _, m in messages) >= 8)
        receive_until(lambda: any("1 done" in m for _, m in messages if "STATUS=" in m))
        pings = [t for t, m in messages if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert 0.1 <= statistics.median(gaps) <= 0.3  # WATCHDOG_USEC / 2 = 0.2 s
        pool.signal(signal.SIGTERM)
        receive_until(lambda: any(m == "STOPPING=1" for _, m in messages))
        assert pool.wait(10) == 0
    finally:
        pool.stop()
        sock.close()
        os.unlink(address)


# An idle pool must neither poll nor burn CPU, and the two tests below together leave a polling
# design no interval to hide in: a worker that polls every P seconds starts a job P/2 late on
# median (so the latency test rejects any P above 2 * WAKE_MEDIAN = 20 ms), and each of its
# wake-ups costs CPU in every child (at P = 40 ms, 4 children used 3 % of a core: the idle test,
# at 1 %, rejects P below ~120 ms). Both bounds were checked against such a worker.
POLLER = 0.040  # the interval of the polling worker these bounds were checked against
WAKE_MEDIAN = POLLER / 4  # 10 ms: a poller's median is >= POLLER / 2; ours measured 1.3-2.9 ms
IDLE_SHARE = 0.01  # of one core, supervisor and children together; ours measured 0.00-0.10 %


def cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by `pids` (nanosecond run time from schedstat where available)."""
    total = 0.0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_bytes().split()[0]) / 1e9
            continue
        except (OSError, IndexError, ValueError):
            pass
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def accounting_noise(pids: list[int]) -> float:
    """What two readings of `cpu_seconds` can be off by for these processes (their resolution)."""
    if all(Path(f"/proc/{pid}/schedstat").exists() for pid in pids):
        return 0.0  # nanoseconds
    return 2 * len(pids) / os.sysconf("SC_CLK_TCK")  # one clock tick per process per reading


def test_idle_pool_uses_almost_no_cpu(pools: Pools, queue: jobq.Queue) -> None:
    pool = pools.start(concurrency=4)
    wait_until(lambda: len(pool.children()) == 4, what="children up")
    probe = queue.enqueue("noop")
    wait_until(lambda: queue.get(probe).state is JobState.SUCCEEDED, what="pool working")
    pids = [pool.pid, *pool.children()]

    def settled() -> bool:  # start-up (imports, first claims) is over
        before = cpu_seconds(pids)
        time.sleep(0.5)
        return cpu_seconds(pids) - before < 0.02

    wait_until(settled, timeout=20, what="start-up finished")
    # long enough that a poller's many small wake-ups add up, and for a supervisor tick or two
    window = 20.0 if SLOW else 5.0
    before, t0 = cpu_seconds(pids), time.monotonic()
    time.sleep(window)  # measuring, not synchronising
    used = cpu_seconds(pids) - before
    elapsed = time.monotonic() - t0
    share = used / elapsed
    print(f"\nidle pool (supervisor + 4 children): {share * 100:.3f}% of a core over {window:g}s")
    assert share <= IDLE_SHARE + accounting_noise(pids) / elapsed


def test_an_idle_pool_wakes_on_the_wal_not_the_fallback_poll(
    pools: Pools, queue: jobq.Queue
) -> None:
    pool = pools.start(concurrency=2, poll_interval=30)
    probe = queue.enqueue("noop")
    wait_until(lambda: queue.get(probe).state is JobState.SUCCEEDED, what="pool working")
    latencies = []
    for i in range(200 if SLOW else 30):
        if SLOW and i == 100:
            time.sleep(60)  # the same after a minute idle
        job_id = queue.enqueue("noop")
        job = wait_until(lambda j=job_id: (q := queue.get(j)).state is JobState.SUCCEEDED and q,
                         timeout=10, interval=0.001, what="job ran")  # fmt: skip
        assert isinstance(job, jobq.Job) and job.started_at is not None
        latencies.append(job.started_at - job.created_at)
    latencies.sort()
    median = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"\nenqueue->start on an idle pool: median {median * 1000:.2f} ms, "
          f"p99 {p99 * 1000:.2f} ms, max {latencies[-1] * 1000:.2f} ms")  # fmt: skip
    # relational bounds: far below what a POLLER-interval poller shows (median >= 20 ms), and the
    # slowest still ~30x below the 30 s fallback poll (a stray wake-up missed would hit it)
    assert median < WAKE_MEDIAN, f"median {median * 1000:.1f} ms: that is a poller's latency"
    assert latencies[-1] < 1.0
    assert pool.proc.poll() is None


def test_jobq_work_cli_end_to_end(
    db_path: str, tmp_path: Path, queue: jobq.Queue, jobq_cmd: list[str], jobq_env: dict[str, str]
) -> None:
    """`python -m jobq work` with flags and JOBQ_* variables: burst drain, then a SIGTERM stop."""
    ids = queue.enqueue_many([("noop", {}) for _ in range(50)])
    other = queue.enqueue("noop", queue="elsewhere")
    env = dict(jobq_env, JOBQ_APP="tests.workerapp", JOBQ_CONCURRENCY="2")
    burst = PoolProcess(db_path, tmp_path / "burst.log", env=env,
                        argv=[*jobq_cmd, "work", "-q", "default", "--burst"])  # fmt: skip
    try:
        assert burst.wait(30) == 0
    finally:
        burst.stop()
    assert all(queue.get(i).state is JobState.SUCCEEDED for i in ids)
    assert queue.get(other).state is JobState.PENDING
    pool = PoolProcess(db_path, tmp_path / "pool.log", env=env,
                       argv=[*jobq_cmd, "work", "--name", "e2e"])  # fmt: skip
    try:
        wait_until(lambda: queue.get(other).state is JobState.SUCCEEDED, what="served")
        (info,) = [w for w in queue.workers() if w.name == "e2e"]
        assert info.concurrency == 2 and info.pid == pool.pid
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    finally:
        pool.stop()
    assert [w.status for w in queue.workers() if w.name == "e2e"] == ["stopped"]
