"""`jobq events` and `Queue.events`: followers against real pools in real processes, restarts
with --after-id, filters, bad filters, untrusted strings."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from workerapp import Pools

import jobq
from jobq.backend import Ending
from jobq.cli.app import main
from jobq.model import DEFAULT_EVENT_KINDS
from jobq.store import Store
from tests.factories import claim_one, enqueue
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(120)

DEFAULT = [k.value for k in DEFAULT_EVENT_KINDS]


class Follower:
    """`jobq events ARGS` in a subprocess; its stdout lines collected by a thread."""

    def __init__(self, cmd: list[str], env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([*cmd, "events", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.lines: list[str] = []
        out = self.proc.stdout
        assert out is not None
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(out.readline, "")))
        self.reader.start()

    def events(self) -> list[dict[str, object]]:
        """What it printed so far, complete lines only (a killed follower may leave half)."""
        return [json.loads(ln) for ln in list(self.lines) if ln.endswith("\n")]

    def stop(self, sig: int) -> tuple[int, str]:
        """Send `sig`; its exit code and stderr."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.reader.join(timeout=10)  # stdout is the reader's alone (not communicate())
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        return self.proc.returncode, err


def all_events(db_path: str) -> list[dict[str, object]]:
    """Every event in the default kinds, as the CLI prints them."""
    with closing(Store(db_path)) as s:
        return [e.to_dict() for e in s.events(kinds=DEFAULT, limit=1_000_000)]


def test_a_follower_started_before_a_drain_sees_each_job_created_started_succeeded(
    pools: Pools, queue: jobq.Queue, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    marker = queue.enqueue("noop")
    follower = Follower(jobq_cmd, jobq_env, "-f")
    try:
        # its first line (the marker's history) proves it has read once, its watch armed before
        wait_until(lambda: follower.events(), what="the follower's first event")
        ids = [marker, *queue.enqueue_many([("noop", {"i": i}) for i in range(2000)])]
        pool = pools.start(concurrency=2, burst=True)
        assert pool.wait(90) == 0
        wait_until(
            lambda: Counter(e["kind"] for e in follower.events())["succeeded"] >= len(ids),
            timeout=30, what="a succeeded event for every job",
        )  # fmt: skip
        code, err = follower.stop(signal.SIGINT)
    finally:
        if follower.proc.poll() is None:
            follower.proc.kill()
    assert (code, err) == (0, "")  # Ctrl-C ends a follow quietly, as `jobq errors -f`
    got = follower.events()
    assert got == all_events(db_path)  # nothing missed, nothing repeated, nothing else
    event_ids = [e["id"] for e in got]
    assert event_ids == sorted(set(event_ids))  # increasing
    per_job: dict[object, list[object]] = {}
    for e in got:
        per_job.setdefault(e["job_id"], []).append(e["kind"])
    assert set(per_job) == set(ids)
    assert all(kinds == ["created", "started", "succeeded"] for kinds in per_job.values()), [
        (j, k) for j, k in per_job.items() if k != ["created", "started", "succeeded"]
    ][:5]


def test_a_follower_on_postgresql_sees_each_job_created_started_succeeded(
    pg_server: object, tmp_path: Path, jobq_cmd: list[str]
) -> None:
    """The same follow on a server: woken by LISTEN/NOTIFY, ids given below the xmin horizon."""
    from tests.conftest import backend_location
    from tests.workerapp import pools_for

    location = backend_location("postgresql", tmp_path)
    env = {**os.environ, "JOBQ_DB": location}
    with jobq.Queue(location) as q, pools_for(location, tmp_path) as pools:
        marker = q.enqueue("noop")
        follower = Follower(jobq_cmd, env, "-f")
        try:
            wait_until(lambda: follower.events(), what="the follower's first event")
            ids = [marker, *q.enqueue_many([("noop", {"i": i}) for i in range(300)])]
            pool = pools.start(concurrency=2, burst=True)
            assert pool.wait(90) == 0
            wait_until(
                lambda: Counter(e["kind"] for e in follower.events())["succeeded"] >= len(ids),
                timeout=30, what="a succeeded event for every job",
            )  # fmt: skip
            code, err = follower.stop(signal.SIGINT)
        finally:
            if follower.proc.poll() is None:
                follower.proc.kill()
        assert (code, err) == (0, "")
        got = follower.events()
        want = [e.to_dict() for e in q.events(kinds=DEFAULT, limit=1_000_000)]
    assert got == want  # nothing missed, nothing repeated
    per_job: dict[object, list[object]] = {}
    for e in got:
        per_job.setdefault(e["job_id"], []).append(e["kind"])
    assert set(per_job) == set(ids)
    assert all(kinds == ["created", "started", "succeeded"] for kinds in per_job.values())


def test_a_follower_killed_midway_and_restarted_with_after_id_misses_and_repeats_nothing(
    pools: Pools, queue: jobq.Queue, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    queue.enqueue_many([("noop", {"i": i}) for i in range(2000)])
    first = Follower(jobq_cmd, jobq_env, "-f", "--after-id", "0")
    second: Follower | None = None
    try:
        pool = pools.start(concurrency=2, burst=True)
        wait_until(lambda: len(first.events()) >= 2500, timeout=60, what="events while draining")
        code, _ = first.stop(signal.SIGKILL)
        assert code == -signal.SIGKILL
        before = first.events()
        drained_at_kill = pool.proc.poll() is None
        second = Follower(jobq_cmd, jobq_env, "-f", "--after-id", str(before[-1]["id"]))
        assert pool.wait(90) == 0
        total = all_events(db_path)
        wait_until(lambda: len(before) + len(second.events()) >= len(total), timeout=30,
                   what="the restarted follower catching up")  # fmt: skip
        code, err = second.stop(signal.SIGINT)
        assert (code, err) == (0, "")
    finally:
        for f in (first, second):
            if f is not None and f.proc.poll() is None:
                f.proc.kill()
    after = second.events()
    assert before + after == total  # the union is the whole feed: no gap, no repeat
    print(f"\nkilled after {len(before)} of {len(total)} events (pool still draining: "
          f"{drained_at_kill})")  # fmt: skip


def test_a_follower_exits_75_when_its_queue_file_is_replaced(
    queue: jobq.Queue, db_path: str, tmp_path: Path, jobq_env: dict[str, str],
    jobq_cmd: list[str],
) -> None:  # fmt: skip
    queue.enqueue("marker")
    other = str(tmp_path / "restored.db")
    jobq.Queue(other).close()
    follower = Follower(jobq_cmd, jobq_env, "-f")
    try:
        wait_until(lambda: follower.events(), what="the follower's first event")
        os.replace(other, db_path)  # a restore, the way people do it
        follower.proc.wait(timeout=30)
    finally:
        if follower.proc.poll() is None:
            follower.proc.kill()
        follower.reader.join(timeout=10)
    assert follower.proc.stderr is not None
    err = follower.proc.stderr.read()
    assert follower.proc.returncode == 75
    assert len(err.splitlines()) == 1 and "was replaced" in err, err


# ---- the command in-process: history, filters, bad input --------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(db_path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `jobq ARGS…` in-process with JOBQ_DB set; return exit code, stdout, stderr."""
    monkeypatch.setenv("JOBQ_DB", db_path)

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        code = exc.value.code
        return Result(code if isinstance(code, int) else 1, out, err)

    return invoke


def lines(r: Result) -> list[dict[str, object]]:
    assert r.code == 0 and r.err == "", r
    return [json.loads(ln) for ln in r.out.splitlines()]


@pytest.fixture
def history(store: Store) -> list[int]:
    """Jobs with events an hour ago and now: (a, b, c, d) ids."""
    old = time.time() - 3600
    now = time.time()
    a = enqueue(store, old, type="email.send", queue="mail")
    b = enqueue(store, old, type="resize", queue="images")
    c = enqueue(store, now, type="email.digest", queue="mail")
    d = enqueue(store, now, type="resize", queue="images")
    lease = claim_one(store, a, now)
    store.end_attempt(a, lease.lease_token or "", now, Ending.FAIL, "E", retryable=False)
    store.cancel([b], now)
    return [a, b, c, d]


def test_history_newest_n_oldest_first_or_after_an_id(run: Run, history: list[int]) -> None:
    every = lines(run("events"))
    assert [(e["kind"], e["job_id"]) for e in every] == [
        ("created", 1), ("created", 2), ("created", 3), ("created", 4), ("started", 1),
        ("failed", 1), ("cancelled", 2)]  # fmt: skip
    assert lines(run("events", "--limit", "2")) == every[-2:]
    assert lines(run("events", "-n", "0")) == []
    assert lines(run("events", "--after-id", str(every[1]["id"]), "--limit", "3")) == every[2:5]
    assert lines(run("events", "--after-id", str(every[-1]["id"]))) == []
    at = every[0]["at"]
    assert (
        isinstance(at, str) and at.endswith("Z") and len(at) == len("2026-12-02T00:23:44.123456Z")
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kind", "failed"], [("failed", 1)]),
        (["--kind", "failed,cancelled"], [("failed", 1), ("cancelled", 2)]),
        (["--kind", "created", "--kind", "started"],
         [("created", 1), ("created", 2), ("created", 3), ("created", 4), ("started", 1)]),
        (["--type", "email.*"], [("created", 1), ("created", 3), ("started", 1), ("failed", 1)]),
        (["--type", "resize", "--kind", "created"], [("created", 2), ("created", 4)]),
        (["--queue", "images"], [("created", 2), ("created", 4), ("cancelled", 2)]),
        (["--since", "10m"],
         [("created", 3), ("created", 4), ("started", 1), ("failed", 1), ("cancelled", 2)]),
        (["--since", "2h", "--queue", "mail", "--kind", "created"],
         [("created", 1), ("created", 3)]),
        (["--type", "nothing*"], []),
    ],
)  # fmt: skip
def test_filters(run: Run, history: list[int], args: list[str], expected: list[object]) -> None:
    assert [(e["kind"], e["job_id"]) for e in lines(run("events", *args))] == expected


def test_since_takes_an_iso_time(run: Run, history: list[int]) -> None:
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    assert [e["job_id"] for e in lines(run("events", "--since", start, "--kind", "created"))] == [
        3, 4]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "exploded"], "unknown event kind 'exploded'"),
        (["--kind", "failed,"], "unknown event kind ''"),
        (["--since", "10 parsecs"], "cannot parse --since"),
        (["--since", "-5m"], "cannot parse --since"),
        (["--after-id", "-1"], "--after-id must be an event id >= 0"),
        (["--after-id", "x"], "'x' is not a valid int"),
        (["--limit", "-3"], "--limit must be >= 0"),
        (["--queue", "two words"], "queue name"),
        (["--type", ""], "type glob"),
    ],
)
def test_bad_filters_one_line_exit_2_nothing_written(
    run: Run, db_path: str, args: list[str], message: str
) -> None:
    for follow in ([], ["-f"]):
        r = run("events", *follow, *args)
        assert (r.code, r.out) == (2, ""), r
        assert len(r.err.splitlines()) == 1 and r.err.startswith("jobq: error: "), r.err
        assert message in r.err and "Traceback" not in r.err
        assert not os.path.exists(db_path)  # a read never creates the queue file


def test_no_queue_file_is_an_error_and_creates_nothing(run: Run, db_path: str) -> None:
    r = run("events")
    assert r.code != 0 and r.out == "" and len(r.err.splitlines()) == 1
    assert not os.path.exists(db_path)


def test_untrusted_strings_are_escaped(run: Run, store: Store) -> None:
    job_id = enqueue(store, time.time(), type="t")
    lease = claim_one(store, job_id, time.time())
    evil = "bad \x1b]52;c;ZXZpbA==\x07 \x9b31m \u202eevil\x7f end\nsecond line"
    store.end_attempt(job_id, lease.lease_token or "", time.time(), Ending.FAIL, evil,
                      retryable=False)  # fmt: skip
    r = run("events", "--kind", "failed")
    assert r.code == 0
    assert all(c == "\n" or " " <= c < "\x7f" for c in r.out), repr(r.out)  # printable ASCII
    (e,) = lines(r)
    assert e["error"] == evil.split("\n")[0]  # decoded, the first line exactly


def test_the_command_reads_every_backend(location: str, jobq_cmd: list[str]) -> None:
    with jobq.Queue(location) as q:
        a = q.enqueue("mail.send", queue="mail")
        b = q.enqueue("resize")
        q.cancel(b)
    env = {**os.environ, "JOBQ_DB": location}
    r = subprocess.run([*jobq_cmd, "events", "--kind", "created,cancelled", "--type", "re*"],
                       env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert [(e["kind"], e["job_id"]) for e in map(json.loads, r.stdout.splitlines())] == [
        ("created", b), ("cancelled", b)]  # fmt: skip
    r = subprocess.run([*jobq_cmd, "events", "--queue", "mail"], env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert [e["job_id"] for e in map(json.loads, r.stdout.splitlines())] == [a]


# ---- the Python API ---------------------------------------------------------------------------


def test_queue_events_follow_yields_what_another_process_commits(
    queue: jobq.Queue, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    marker = queue.enqueue("marker")
    seen: list[jobq.Event] = []
    feed = queue.events(follow=True, kinds=["created", "cancelled"], limit=1)

    def consume() -> None:
        for ev in feed:
            seen.append(ev)
            if len(seen) == 3:
                return

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    wait_until(lambda: seen, what="the marker from history (the watch is armed)")
    r = subprocess.run([*jobq_cmd, "enqueue", "later"], env=jobq_env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    later = int(r.stdout)
    subprocess.run([*jobq_cmd, "cancel", str(later)], env=jobq_env, check=True, timeout=60,
                   capture_output=True)  # fmt: skip
    t.join(timeout=20)
    assert not t.is_alive()
    assert [(e.kind, e.job_id) for e in seen] == [
        (jobq.EventKind.CREATED, marker), (jobq.EventKind.CREATED, later),
        (jobq.EventKind.CANCELLED, later)]  # fmt: skip
    assert all(isinstance(e, jobq.Event) for e in seen)


def test_queue_events_checks_its_arguments_at_once(queue: jobq.Queue) -> None:
    for kw in ({"kinds": ["nope"]}, {"after_id": -1}, {"limit": -1}, {"since": float("nan")},
               {"after_id": True}, {"queue": "a b"}):  # fmt: skip
        with pytest.raises(jobq.InvalidInput):
            queue.events(**kw)  # type: ignore[arg-type]
