"""The queue file's identity: replaced, deleted, moved, symlinked; read commands that must not
create a file (issue "Engine correctness", items 8, 10 and 13).

Pools and dashboards run as real processes (`jobq work`, `jobq tui` on a pseudo-terminal); the
file is replaced under them the way people do it (mv, rm, ln -sfn).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, wait_until

from jobq import FileReplaced, Queue
from jobq.store import Store

EXIT_TEMPFAIL = 75


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name in [n for n in env if n.startswith("JOBQ_")]:
        del env[name]
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra)
    return env


def _jobq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobq", *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


class _Pool:
    """`jobq work` in its own process group, killed at teardown if still running."""

    def __init__(self, db: str, log: Path, *args: str, **env: str) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobq", "--db", db, "work", "-c", "2", *args],
                env=_env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def exited(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def start_pool(tmp_path: Path) -> Iterator[Callable[..., _Pool]]:
    started: list[_Pool] = []

    def start(db: str, *args: str, **env: str) -> _Pool:
        pool = _Pool(db, tmp_path / f"pool{len(started)}.log", *args, **env)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.kill()


def _state(db: str, job_id: int) -> str | None:
    with Queue(db, create=False) as q:
        job = q.get(job_id)
        return job.state.value


def _ids(db: str) -> list[int]:
    out = _jobq("--db", db, "ls", "--json")
    assert out.returncode == 0, out.stderr
    return sorted(j["id"] for j in json.loads(out.stdout))


def _ready_pool(start_pool: Callable[..., _Pool], db: str) -> _Pool:
    """A pool on `db` that has run a job, so its children are up."""
    pool = start_pool(db, "--exec", "x=true")
    with Queue(db) as q:
        job_id = q.enqueue("x")
    wait_until(lambda: _state(db, job_id) == "succeeded", 30, 0.05, "the pool ran a job")
    return pool


def _retarget(link: Path, target: Path) -> None:
    """`ln -sfn target link`: atomically, as a rename over the link."""
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _stops_with_75(pool: _Pool, db: str) -> None:
    wait_until(lambda: pool.exited() is not None, 20, 0.05, "the pool stopped")
    assert pool.exited() == EXIT_TEMPFAIL, pool.text()
    errors = [line for line in pool.text().splitlines() if "ERROR MainProcess" in line]
    assert len(errors) == 1 and db in errors[0], pool.text()
    assert "Traceback" not in pool.text()


# ---- a pool whose path no longer names its file stops with 75 ------------------------------

FAULTS = ["renamed-over", "deleted", "directory-renamed", "symlink-retargeted"]


@pytest.mark.parametrize("fault", FAULTS)
def test_pool_stops_with_75_when_its_path_no_longer_names_its_file(
    tmp_path: Path, start_pool: Callable[..., _Pool], fault: str
) -> None:
    home = tmp_path / "d"
    home.mkdir()
    real = home / "a.db"
    db = str(real)
    if fault == "symlink-retargeted":
        db = str(tmp_path / "link.db")
        Path(db).symlink_to(real)
    pool = _ready_pool(start_pool, db)
    other = tmp_path / "other.db"
    Queue(str(other)).close()
    if fault == "renamed-over":
        os.replace(other, real)
    elif fault == "deleted":
        real.unlink()
    elif fault == "directory-renamed":
        home.rename(tmp_path / "moved")
    else:
        _retarget(Path(db), other)
    _stops_with_75(pool, db)


def test_restore_a_backup_while_the_pool_runs(
    tmp_path: Path, start_pool: Callable[..., _Pool]
) -> None:
    """README "Restore a backup", second way: move the backup into place under a running pool."""
    db = str(tmp_path / "q.db")
    pool = _ready_pool(start_pool, db)  # job 1, succeeded
    with Queue(db) as q:
        held = q.enqueue("y")  # job 2: no handler in this pool, stays pending
    backup = str(tmp_path / "backup.db")
    assert _jobq("--db", db, "backup", backup).returncode == 0
    with Queue(db) as q:
        later = q.enqueue("x")  # job 3: only in the live file
    wait_until(lambda: _state(db, later) == "succeeded", 30, 0.05, "job 3 ran")
    assert _ids(db) == [1, 2, 3]

    shutil.copy(backup, db + ".restoring")
    os.replace(db + ".restoring", db)
    _stops_with_75(pool, db)

    # the restored file, and nothing of the replaced one's write-ahead log mixed into it
    assert _ids(db) == [1, 2]
    doctor = _jobq("--db", db, "doctor", "--json")
    assert json.loads(doctor.stdout)["ok"] is True, doctor.stdout
    # what systemd does next: start the pool again; it works on the restored file
    again = start_pool(db, "--exec", "x=true", "--exec", "y=true", "--burst")
    assert again.proc.wait(60) == 0, again.text()
    assert _state(db, held) == "succeeded"
    assert _ids(db) == [1, 2]


def test_after_rm_the_next_enqueue_gets_a_new_file_that_a_new_pool_works(
    tmp_path: Path, start_pool: Callable[..., _Pool]
) -> None:
    db = str(tmp_path / "q.db")
    pool = _ready_pool(start_pool, db)
    os.unlink(db)
    _stops_with_75(pool, db)
    out = _jobq("--db", db, "enqueue", "x")
    assert (out.returncode, out.stdout.strip()) == (0, "1"), out.stderr
    assert _ids(db) == [1]  # a new queue: nothing of the deleted one's log leaked into it
    again = start_pool(db, "--exec", "x=true", "--burst")
    assert again.proc.wait(60) == 0, again.text()
    assert _state(db, 1) == "succeeded"


def test_a_crashed_writers_log_never_leaks_into_a_new_file(tmp_path: Path) -> None:
    """The file is deleted after a writer died holding committed frames in the -wal: creating a
    new file there would read them back (SQLite finds the log by name). Refused, exit 75."""
    db = str(tmp_path / "q.db")
    code = (
        "import os, sys; from jobq import Queue\n"
        "q = Queue(sys.argv[1]); q.enqueue('old'); os._exit(0)  # no close: the log stays\n"
    )
    subprocess.run([sys.executable, "-c", code, db], env=_env(), check=True, timeout=60)
    assert os.path.getsize(db + "-wal") > 0
    os.unlink(db)
    out = _jobq("--db", db, "enqueue", "new")
    assert out.returncode == EXIT_TEMPFAIL, (out.stdout, out.stderr)
    assert out.stderr.startswith("jobq: error: ") and out.stderr.count("\n") == 1
    assert "-wal" in out.stderr
    assert not os.path.exists(db)


def test_dashboard_exits_75_when_its_file_is_replaced(tmp_path: Path) -> None:
    import pty

    db = str(tmp_path / "q.db")
    with Queue(db) as q:
        q.enqueue("before.replace")
    other = str(tmp_path / "other.db")
    Queue(other).close()
    pid, fd = pty.fork()
    if pid == 0:  # the child: `jobq tui --read-only` on the pty
        os.environ.update(_env(TERM="xterm-256color"))
        os.execv(sys.executable, [sys.executable, "-m", "jobq", "--db", db, "tui", "--read-only"])
    exited: list[int] = []
    try:
        import fcntl
        import termios

        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        # the job's row, not the tab's title: the title is drawn before the loader has opened
        # the file, and a loader that opened it only after the replace would never see one
        out = _read_until(fd, lambda b: b"before.replace" in b, 30)
        assert b"before.replace" in out
        os.replace(other, db)

        def gone() -> bool:
            nonlocal out
            out += _read_until(fd, lambda b: False, 0.2)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                exited.append(os.waitstatus_to_exitcode(status))
            return bool(exited)

        wait_until(gone, 20, 0.0, "the dashboard exited")
        assert exited == [EXIT_TEMPFAIL], out[-2000:]
        assert b"jobq: error: " + db.encode() + b" was replaced" in out
    finally:
        if not exited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def _read_until(fd: int, done: Callable[[bytes], bool], timeout: float) -> bytes:
    """Read the pty until `done(output)`, its other end closes, or `timeout` seconds pass."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(out):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break  # EIO: the child closed the pty
            if not chunk:
                break
            out += chunk
    return out


# ---- the identity check itself (one stat, in the store) ------------------------------------


@pytest.mark.parametrize(
    "change, replaced",
    [
        ("nothing", False),
        ("symlink-to-a-symlink-of-the-same-file", False),
        ("real-file-replaced-behind-the-symlink", True),
        ("symlink-retargeted", True),
        ("symlink-deleted", True),
    ],
)
def test_check_identity_follows_the_path_as_given(
    tmp_path: Path, change: str, replaced: bool
) -> None:
    real = tmp_path / "real.db"
    link = tmp_path / "link.db"
    link.symlink_to("real.db")  # relative
    store = Store(str(link))
    other = tmp_path / "other.db"
    Queue(str(other)).close()
    try:
        store.check_identity(force=True)
        if change == "symlink-to-a-symlink-of-the-same-file":
            (tmp_path / "hop.db").symlink_to(real)
            _retarget(link, tmp_path / "hop.db")
        elif change == "real-file-replaced-behind-the-symlink":
            os.replace(other, real)
        elif change == "symlink-retargeted":
            _retarget(link, other)
        elif change == "symlink-deleted":
            link.unlink()
        if replaced:
            with pytest.raises(FileReplaced, match=str(link)):
                store.check_identity(force=True)
        else:
            store.check_identity(force=True)
    finally:
        store.close()


# ---- a path through symlinks: side files and watches beside the real file -------------------

LINKS = ["absolute", "relative", "link-to-a-link"]


def _linked(tmp_path: Path, kind: str) -> tuple[str, Path]:
    """(path to give jobq, directory of the real file): in different directories."""
    real_dir = tmp_path / "data"
    real_dir.mkdir()
    Queue(str(real_dir / "real.db")).close()
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    link = link_dir / "q.db"
    if kind == "absolute":
        link.symlink_to(real_dir / "real.db")
    elif kind == "relative":
        link.symlink_to(Path("..") / "data" / "real.db")
    else:
        (tmp_path / "hop.db").symlink_to(Path("data") / "real.db")
        link.symlink_to(tmp_path / "hop.db")
    return str(link), real_dir


@pytest.mark.parametrize("kind", LINKS)
def test_side_files_live_beside_the_real_file(tmp_path: Path, kind: str) -> None:
    path, real_dir = _linked(tmp_path, kind)
    out = _jobq("--db", path, "enqueue", "x")  # through the turnstile: creates the -lock
    assert out.returncode == 0, out.stderr
    with Queue(path) as q:
        q.enqueue("y")
        assert os.path.exists(real_dir / "real.db-wal")
    assert os.path.exists(real_dir / "real.db-lock")
    beside_links = sorted(p.name for p in Path(path).parent.iterdir())
    assert beside_links == ["q.db"], beside_links


@pytest.mark.parametrize("kind", LINKS)
def test_a_watch_through_a_symlink_sees_commits(tmp_path: Path, kind: str) -> None:
    path, _ = _linked(tmp_path, kind)
    with Queue(path) as q, q.waker() as waker:
        out = _jobq("--db", path, "enqueue", "x")
        assert out.returncode == 0, out.stderr
        assert waker.wait(10.0), "no wake-up for a commit through the symlink"


def test_a_pool_through_a_symlink_wakes_at_once(
    tmp_path: Path, start_pool: Callable[..., _Pool]
) -> None:
    """enqueue -> done took 3-4.5 s through a symlink (the fallback poll), 7 ms without."""
    path, _ = _linked(tmp_path, "relative")
    # the fallback poll is every 30 s here: only a wake-up can make a job start sooner
    start_pool(path, "--exec", "z=true", JOBQ_POLL_INTERVAL="30")
    worst = 0.0
    with Queue(path) as q:
        first = q.enqueue("z")  # claimed as soon as a child is up
        wait_until(lambda: q.get(first).state.value == "succeeded", 30, 0.01, "the pool is up")
        for _ in range(3):
            t0 = time.monotonic()
            job_id = q.enqueue("z")
            wait_until(lambda: q.get(job_id).state.value == "succeeded", 20, 0.005)  # noqa: B023
            worst = max(worst, time.monotonic() - t0)
    assert worst < 2.5, f"enqueue -> done took {worst:.2f} s"


# ---- read commands never create a file -----------------------------------------------------

READERS = [
    ["ls"], ["show", "1"], ["wait", "1", "--timeout", "1s"], ["stats"], ["workers"], ["errors"],
    ["doctor"], ["backup", "OUT"], ["retry", "1"], ["cancel", "1"], ["priority", "1", "5"],
    ["prune", "--older-than", "1d"], ["tui", "--read-only"],
]  # fmt: skip


@pytest.mark.parametrize("where", ["missing-file", "missing-directory"])
@pytest.mark.parametrize("args", READERS, ids=lambda a: a[0])
def test_read_commands_never_create_a_file(tmp_path: Path, args: list[str], where: str) -> None:
    db = tmp_path / ("q.db" if where == "missing-file" else "typo/q.db")
    args = [str(tmp_path / "out.db") if a == "OUT" else a for a in args]
    out = _jobq("--db", str(db), *args)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert f"no queue file at {db}" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("what", ["directory", "not-jobq", "empty"])
@pytest.mark.parametrize("args", [["ls"], ["tui", "--read-only"], ["tui"]], ids=" ".join)
def test_every_command_refuses_a_file_that_is_not_a_queue(
    tmp_path: Path, args: list[str], what: str
) -> None:
    db = tmp_path / "q.db"
    if what == "directory":
        db.mkdir()
    else:
        db.write_bytes(b"" if what == "empty" else b"hello, not a database\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = _jobq("--db", str(db), *args)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.startswith(f"jobq: error: {db} ") and out.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if what != "directory":
        assert db.read_bytes() == (b"" if what == "empty" else b"hello, not a database\n")
