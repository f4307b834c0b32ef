"""Live output and progress of running jobs, through real pools (`jobq work`) on both backends:
`jobq logs -f` sees output before the job ends, progress shows in `ls`/`show` while it runs,
the per-attempt cap, control characters on a terminal, and a stale worker's flush fenced."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import Queue
from jobq.backend import Ending
from jobq.liveoutput import OUTPUT_HEAD, OUTPUT_TAIL, check_progress
from tests.conftest import ROOT
from tests.factories import STALE_TOKEN, T0, claim_one, enqueue
from tests.helpers import kill_all, wait_until, worker_children

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

JOBQ = [sys.executable, "-m", "jobq"]
# a command that writes to both streams, waits for the gate, writes again and fails (status 3)
# (and reports progress on JOBQ_PROGRESS_FD, an invalid line first: ignored)
CMD = (
    "out.cmd=sh -c 'echo cmd line 1; echo cmd err 1 >&2; "
    'echo "0.3 early" >&$JOBQ_PROGRESS_FD; echo "150% nonsense" >&$JOBQ_PROGRESS_FD; '
    'while [ ! -e "$OUT_GATE" ]; do sleep 0.02; done; echo cmd line 2; '
    'echo "90% almost" >&$JOBQ_PROGRESS_FD; exit 3\''
)


@pytest.fixture
def env(location: str, tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["JOBQ_DB"] = location
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["OUT_GATE"] = str(tmp_path / "gate")
    e.pop("NOTIFY_SOCKET", None)
    return e


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    kill_all(started)


def start(procs: list[subprocess.Popen[bytes]], env: dict[str, str], *args: str,
          log: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start a jobq command in its own session (stdout piped unless `log`)."""
    out = subprocess.PIPE if log is None else open(log, "ab")  # noqa: SIM115
    p = subprocess.Popen([*JOBQ, *args], env=env, stdout=out,
                         stderr=subprocess.PIPE if log is None else out,
                         start_new_session=True)  # fmt: skip
    procs.append(p)
    return p


def pool(procs: list[subprocess.Popen[bytes]], env: dict[str, str], log: Path,
         *args: str) -> subprocess.Popen[bytes]:  # fmt: skip
    return start(procs, env, "work", "-c", "1", "--app", "tests.outputapp", "--exec", CMD,
                 *args, log=log)  # fmt: skip


class Lines:
    """The lines a process writes to its stdout, read by a thread as they come."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[bytes] = []
        assert proc.stdout is not None
        self.stream = proc.stdout
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def has(self, text: bytes) -> bool:
        return any(text in line for line in self.lines)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*JOBQ, *args], env=env, capture_output=True, timeout=60)


def state_of(location: str, job_id: int) -> str:
    with Queue(location, create=False) as q:
        return q.get(job_id).state.value


def test_logs_follow_sees_output_before_the_job_ends_and_exits_with_its_state(
    location: str, env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    with Queue(location) as q:
        job_id = q.enqueue("out.cmd", {}, max_attempts=1)
    follower = start(procs, env, "logs", "-f", str(job_id))  # before any pool runs it
    lines = Lines(follower)
    pool(procs, env, tmp_path / "pool.log")
    wait_until(lambda: lines.has(b"cmd line 1"), 30, what="the first line, live")
    assert state_of(location, job_id) == "running"  # seen before the job ended
    assert follower.poll() is None
    with Queue(location, create=False) as q:
        p = wait_until(lambda: q.progress(job_id), 10, what="the command's progress")
        assert (p.fraction, p.message) == (0.3, "early")  # type: ignore[attr-defined]
    Path(env["OUT_GATE"]).touch()
    assert follower.wait(30) == 1  # the job failed (exit 3): like `jobq wait`
    lines.thread.join(5)
    text = b"".join(lines.lines)
    assert b"cmd line 1\n" in text and b"cmd err 1\n" in text and b"cmd line 2\n" in text
    assert follower.stderr is not None
    err = follower.stderr.read().decode()
    assert f"job {job_id} (out.cmd) failed: command exited with status 3" in err
    # the whole output, afterwards, without -f; streams kept apart
    with Queue(location, create=False) as q:
        chunks = q.output(job_id)
    assert {c.stream for c in chunks} == {"stdout", "stderr"}
    assert "".join(c.text for c in chunks if c.stream == "stderr") == "cmd err 1\n"
    done = run(env, "logs", str(job_id))
    assert done.returncode == 0 and b"cmd line 2" in done.stdout
    with Queue(location, create=False) as q:
        p = q.progress(job_id)
    assert p is not None and (p.fraction, p.message) == (0.9, "almost")  # the last, at the end


def test_following_an_attempt_given_back_ends_when_it_is(
    location: str, env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    # a snooze gives the attempt back uncounted: the next run reuses its number, so the follower
    # must not wait for it (its output starts again from the first line)
    gate = tmp_path / "snooze-gate"
    with Queue(location) as q:
        job_id = q.enqueue("out.snooze", {"gate": str(gate)})
    follower = start(procs, env, "logs", "-f", str(job_id))
    lines = Lines(follower)
    pool(procs, env, tmp_path / "pool.log")
    wait_until(lambda: lines.has(b"before the snooze"), 30, what="the line, live")
    gate.touch()
    assert follower.wait(30) == 1
    assert follower.stderr is not None
    assert f"job {job_id} (out.snooze) pending" in follower.stderr.read().decode()
    assert state_of(location, job_id) == "pending"


def test_python_output_and_progress_visible_while_it_runs(
    location: str, env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    gate = tmp_path / "py-gate"
    with Queue(location) as q:
        job_id = q.enqueue("out.py", {"gate": str(gate)})
    pool(procs, env, tmp_path / "pool.log")

    def progress() -> dict[str, object] | None:
        listed = json.loads(run(env, "ls", "--state", "running", "--json").stdout)
        mine = [j for j in listed if j["id"] == job_id]
        return mine[0]["progress"] if mine and mine[0]["progress"] else None

    p = wait_until(progress, 30, 0.2, what="progress in jobq ls --json")
    assert p["fraction"] == 0.4 and p["message"] == "40 of 100 resized"  # type: ignore[index]
    assert p["attempt"] == 1 and str(p["at"]).endswith("Z")  # type: ignore[index]
    table = run(env, "ls", "--state", "running").stdout.decode()
    assert "PROGRESS" in table and "40% 40 of 100 resized" in table
    show = run(env, "show", str(job_id)).stdout.decode()
    assert "progress     40% 40 of 100 resized" in show
    wait_until(lambda: b"a log record" in run(env, "logs", str(job_id)).stdout, 30, 0.2)
    live = run(env, "logs", str(job_id)).stdout.decode()
    assert "py line 1\n" in live and "py err 1\n" in live
    assert "WARNING resizer: a log record\n" in live and "py line 2" not in live
    assert state_of(location, job_id) == "running"
    gate.touch()
    wait_until(lambda: state_of(location, job_id) == "succeeded", 30)
    with Queue(location, create=False) as q:
        chunks = q.output(job_id)
        final = q.progress(job_id)
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1))
    assert {"stdout", "stderr", "log"} <= {c.stream for c in chunks}
    assert "".join(c.text for c in chunks).endswith("py line 2\n")
    assert final is not None and (final.fraction, final.message) == (1.0, "done")
    assert json.loads(run(env, "show", str(job_id), "--json").stdout).get("progress") is None


def test_output_over_the_cap_keeps_its_start_and_end_with_a_marker(
    location: str, env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    lines = 20_000  # 100 bytes each: 2 MB, about twice the cap
    with Queue(location) as q:
        job_id = q.enqueue("out.big", {"lines": lines})
    pool(procs, env, tmp_path / "pool.log", "--burst").wait(60)
    with Queue(location, create=False) as q:
        assert q.get(job_id).state.value == "succeeded"
        text = "".join(c.text for c in q.output(job_id))
    total = lines * 100 + len("THE END\n")
    assert text.startswith("000000000 " + "x" * 89 + "\n")
    assert text.endswith("THE END\n")
    dropped = total - OUTPUT_HEAD - OUTPUT_TAIL
    marker = f"[output truncated: {dropped} bytes dropped]\n"
    assert marker in text
    head, _, tail = text.partition(marker)
    assert len(head) == OUTPUT_HEAD and len(tail) == OUTPUT_TAIL
    out = run(env, "logs", str(job_id)).stdout
    assert out.count(b"output truncated") == 1 and len(out) == len(text.encode())


def _on_a_terminal(env: dict[str, str], *args: str) -> bytes:
    """What `jobq ARGS` writes to a terminal (a pty)."""
    main, sub = pty.openpty()
    tty.setraw(sub)  # no output processing: what the command wrote, byte for byte
    try:
        p = subprocess.run([*JOBQ, *args], env=env, stdout=sub, stderr=subprocess.PIPE,
                           timeout=60)  # fmt: skip
        assert p.returncode == 0, p.stderr
        os.close(sub)
        sub = -1
        data = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the pty's other side is closed and everything was read
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        os.close(main)
        if sub >= 0:
            os.close(sub)


def test_control_characters_are_escaped_on_a_terminal_unless_raw(
    location: str, env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    with Queue(location) as q:
        job_id = q.enqueue("out.ctl", {})
    pool(procs, env, tmp_path / "pool.log", "--burst").wait(60)
    shown = _on_a_terminal(env, "logs", str(job_id))
    assert b"\x1b" not in shown and b"\x07" not in shown and b"\r" not in shown
    assert "␛[31mred".encode() in shown and b"\tafter-tab" in shown
    raw = _on_a_terminal(env, "logs", "--raw", str(job_id))
    assert b"\x1b[31mred\x1b[0m\tafter-tab\x07bell\rcr" in raw
    # not a terminal: as stored (a pipe), unless --escape
    piped = run(env, "logs", str(job_id)).stdout
    assert piped == b"\x1b[31mred\x1b[0m\tafter-tab\x07bell\rcr\n"
    escaped = run(env, "logs", "--escape", str(job_id)).stdout
    assert b"\x1b" not in escaped and "␛[31mred".encode() in escaped


def test_a_stopped_workers_late_flush_is_fenced(
    location: str, env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    gate = tmp_path / "forever-gate"
    log = tmp_path / "pool.log"
    with Queue(location) as q:
        job_id = q.enqueue("out.forever", {"gate": str(gate)}, max_attempts=1)
    supervisor = pool(procs, env, log, "--lease", "2s")
    with Queue(location, create=False) as q:
        wait_until(lambda: len(q.output(job_id, 1)) >= 2, 30, 0.05, what="two flushes")
        child = worker_children(supervisor.pid)
        assert len(child) == 1
        os.kill(child[0], signal.SIGSTOP)
        try:
            # no heartbeat for a whole lease: the supervisor ends the attempt (the job fails)
            wait_until(lambda: q.get(job_id).state.value == "failed", 30, 0.1)
            kept = q.output(job_id, 1)
        finally:
            os.kill(child[0], signal.SIGCONT)
        # resumed, the child's flusher writes again: refused by the fence, and said so
        wait_until(lambda: "live output not written" in log.read_text(), 20, 0.1,
                   what="the stale flush refused")  # fmt: skip
        gate.touch()
        wait_until(lambda: log.read_text().count("lease lost") >= 2, 20, 0.1)
        assert q.output(job_id, 1) == kept
        assert f"lease lost: job {job_id}: live output not written" in log.read_text()


def test_progress_is_checked_and_refused_outside_a_pool(location: str) -> None:
    with Queue(location) as q:
        job = q.get(q.enqueue("out.py", {}))
        with pytest.raises(ValueError, match="from 0 to 1"):
            job.progress(1.5)
        with pytest.raises(ValueError, match="from 0 to 1"):
            job.progress(float("nan"))
        with pytest.raises(TypeError):
            job.progress(True)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="while a jobq worker runs it"):
            job.progress(0.5, "half")
        assert q.progress(job.id) is None
    assert check_progress(0.5, "m" * 500)[1] == "m" * 199 + "…"


def test_logs_of_an_unknown_job_and_bad_options(env: dict[str, str], location: str) -> None:
    with Queue(location) as q:
        q.enqueue("out.py", {})
    for args, code, says in [
        (("logs", "999"), 1, "no job 999"),
        (("logs", "-f", "999"), 1, "no job 999"),
        (("logs", "1", "--attempt", "0"), 2, "--attempt must be 1 or more"),
        (("logs", "1", "--raw", "--escape"), 2, "cannot be used together"),
    ]:
        p = run(env, *args)
        assert p.returncode == code, (args, p.stderr)
        assert p.stderr.decode().count("\n") == 1 and says in p.stderr.decode(), p.stderr
        assert p.stdout == b""


def test_following_a_pending_job_that_is_cancelled_exits_1(
    location: str, env: dict[str, str], procs: list[subprocess.Popen[bytes]]
) -> None:
    # the follower waits for the job's first attempt, which never comes (whether it reads the
    # job before or after the cancel, the answer is the same)
    with Queue(location) as q:
        job_id = q.enqueue("out.py", {})
        follower = start(procs, env, "logs", "-f", str(job_id))
        q.cancel(job_id)
    assert follower.wait(30) == 1
    assert follower.stderr is not None
    assert f"job {job_id} (out.py) cancelled" in follower.stderr.read().decode()


# ---- the store's verbs, on each backend ------------------------------------------------------


def _chunk(seq: int, text: str, stream: str = "stdout") -> tuple[int, float, str, str]:
    return (seq, T0 + seq, stream, text)


def test_output_writes_are_fenced_on_the_lease(backend: Backend) -> None:
    a, b = (enqueue(backend, type=t) for t in ("a", "b"))  # type: ignore[arg-type]
    ja, jb = claim_one(backend, a, T0), claim_one(backend, b, T0)  # type: ignore[arg-type]
    assert ja.lease_token is not None and jb.lease_token is not None
    done = backend.write_output([
        (a, ja.lease_token, 1, True, [_chunk(1, "a1\n"), _chunk(2, "a2\n", "stderr")],
         (0.25, "a quarter", T0)),
        (b, STALE_TOKEN, 1, True, [_chunk(1, "stale\n")], (0.5, "stale", T0)),
    ])  # fmt: skip
    assert done == [True, False]
    assert [(c.seq, c.stream, c.text) for c in backend.output(a, 1)] == [
        (1, "stdout", "a1\n"), (2, "stderr", "a2\n")]  # fmt: skip
    assert backend.output(b, 1) == [] and set(backend.progress_of([a, b])) == {a}
    p = backend.progress_of([a])[a]
    assert (p.attempt, p.fraction, p.message) == (1, 0.25, "a quarter")
    assert p.at == pytest.approx(T0)
    # once the attempt has ended, its own token writes nothing more
    assert backend.complete_many([(a, ja.lease_token, None, None)], T0 + 1) == [True]
    assert backend.write_output([(a, ja.lease_token, 1, False, [_chunk(3, "late\n")],
                                  (1.0, "late", T0))]) == [False]  # fmt: skip
    assert [c.seq for c in backend.output(a, 1)] == [1, 2]
    assert backend.progress_of([a])[a].fraction == 0.25
    assert [c.seq for c in backend.output(a, 1, after=1)] == [2]


def test_output_goes_with_its_job_and_a_retried_attempt_replaces_it(backend: Backend) -> None:
    a = enqueue(backend, type="a")  # type: ignore[arg-type]
    job = claim_one(backend, a, T0)  # type: ignore[arg-type]
    assert job.lease_token is not None
    backend.write_output([(a, job.lease_token, 1, True, [_chunk(1, "first run\n")], None)])
    backend.end_attempt(a, job.lease_token, T0 + 1, Ending.FAIL, "boom", retryable=False)
    assert backend.retry([a], T0 + 2)[a].done  # attempts start again at 0
    again = claim_one(backend, a, T0 + 3)  # type: ignore[arg-type]
    assert again.attempts == 1 and again.lease_token is not None
    assert [c.text for c in backend.output(a, 1)] == ["first run\n"]  # until the new one writes
    assert backend.progress_of([a]) == {}
    backend.write_output([(a, again.lease_token, 1, True, [_chunk(1, "second run\n")],
                           (0.5, None, T0))])  # fmt: skip
    assert [c.text for c in backend.output(a, 1)] == ["second run\n"]
    backend.end_attempt(a, again.lease_token, T0 + 4, Ending.FAIL, "boom", retryable=False)
    assert backend.delete([a])[a].done
    assert backend.output(a, 1) == [] and backend.progress_of([a]) == {}


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"0.4 40 of 100 resized\n", (0.4, "40 of 100 resized")),
        (b"40% 40 of 100", (0.4, "40 of 100")),
        (b"1", (1.0, None)),
        (b"  0  starting  ", (0.0, "starting")),
        (b"1.5 too far", None),
        (b"-1%", None),
        (b"nan", None),
        (b"half way", None),
        (b"", None),
        (b"\xff\xfe", None),
    ],
)
def test_a_commands_progress_lines(line: bytes, parsed: tuple[float, str | None] | None) -> None:
    from jobq.pool.commands import parse_progress

    assert parse_progress(line) == parsed


def test_a_refused_attempt_does_not_silence_the_next_one(backend: Backend) -> None:
    from jobq.pool.capture import LiveOutput

    a, b = (enqueue(backend, type=t) for t in ("a", "b"))  # type: ignore[arg-type]
    ja, jb = claim_one(backend, a, T0), claim_one(backend, b, T0)  # type: ignore[arg-type]
    live = LiveOutput(backend.location, flush_every=0.0)
    try:
        live.begin(dataclasses.replace(ja, lease_token=STALE_TOKEN))  # a lease lost meanwhile
        live.add("stdout", "never kept\n")
        live.flush()  # refused: the rest of this attempt is dropped
        live.add("stdout", "dropped too\n")
        assert live.end() is None
        live.begin(jb)  # the next attempt writes nothing at first, then something
        live.add_bytes("stdout", "caf\xe9 ".encode()[:-2])  # "café" cut inside its é
        live.add_bytes("stdout", "caf\xe9 ".encode()[-2:] + b"ok\n")
        item = live.end()
        assert item is not None and backend.write_output([item]) == [True]
    finally:
        live.close()
    assert backend.output(a, 1) == []
    assert "".join(c.text for c in backend.output(b, 1)) == "caf\xe9 ok\n"


def test_nul_and_lone_surrogates_are_stored_as_replacement_characters(backend: Backend) -> None:
    from jobq.pool.capture import LiveOutput

    a = enqueue(backend, type="a")  # type: ignore[arg-type]
    job = claim_one(backend, a, T0)  # type: ignore[arg-type]
    live = LiveOutput(backend.location)
    try:
        live.begin(job)
        live.add("stdout", "nul\x00 lone \udc80 end\n")  # a Python handler can print both
        live.add_bytes("stderr", b"bin\x00\xff\n")
        live.progress(*check_progress(0.5, "half\x00way \ud800"))
        item = live.end()
        assert item is not None and backend.write_output([item]) == [True]
    finally:
        live.close()
    chunks = backend.output(a, 1)
    assert [c.text for c in chunks] == ["nul\ufffd lone \ufffd end\n", "bin\ufffd\ufffd\n"]
    assert backend.progress_of([a])[a].message == "half\ufffdway \ufffd"
