"""The supervisor of `jobq work`: starts N worker children and keeps them honest.

Each child claims and runs jobs itself (`jobq.worker`). The supervisor loop wakes every
`TICK` seconds, or at once when a child exits or a signal arrives, and:

- notices a dead child at once: its running job ends `crashed` ("worker exited: signal 9",
  attempt counted), jobs it had claimed but not started are released, and a new child starts;
- kills a child (and its command's process group) whose job overran its timeout or was asked
  to cancel, then records `timeout` / `cancelled`;
- renews the leases of children that are alive and not stopped (a SIGSTOPped child's leases
  expire, so that another pool may rescue its jobs), every lease/3;
- rescues expired leases of dead pools, heartbeats the pool row, prunes history when a
  retention is set, and talks to systemd (READY, STATUS, WATCHDOG, STOPPING).

Signal handlers only set flags. SIGTERM/SIGINT: children stop claiming and finish their job for
up to `shutdown_timeout`; then the rest are killed and their jobs released (back to pending,
attempt not used up). A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TypeVar

from .. import lifecycle
from ..backend import (
    ClaimFilter,
    Ending,
    Role,
    absolute_location,
    display_location,
    open_backend,
)
from ..errors import JobqError, TemporaryFailure
from ..handlers import Handler
from .child import (
    DEADLINE,
    DONE,
    JOB,
    PGID,
    READY,
    SLOT_SIZE,
    STARTED,
    SharedArray,
    Slot,
    child_main,
    setup_logging,
)
from .loader import describe, load_handlers
from .settings import PoolSettings
from .systemd import Notifier

log = logging.getLogger("jobq.pool")

TICK = 0.25  # seconds between supervisor checks while nothing happens
HEARTBEAT_EVERY = 5.0  # pool row heartbeat (a write: kept rare so an idle pool stays idle)
RESCUE_EVERY = 2.0  # expired-lease rescue (capped by lease/2)
PRUNE_EVERY = 60.0
STATUS_EVERY = 2.0
RESPAWN_BACKOFF = 1.0  # a child that died within this many seconds of starting waits this long
# children that die before they are ready this many times in a row: the pool exits, so that
# systemd (or the shell) shows why instead of a respawn every second for ever
MAX_START_FAILURES = 5

_HAVE_PROC = os.path.exists("/proc/self/stat")

RunningRow = tuple[int, str, str, float, float, bool, int]


@dataclass(eq=False)
class _Child:
    index: int
    worker_id: str
    proc: BaseProcess
    stop_w: Connection
    started: float
    # (reason, job id, detail) when the supervisor killed the child on purpose
    killed: tuple[str, int, float] | None = None
    stop_sent: bool = False
    stopped_since: float | None = None  # monotonic time it was first seen SIGSTOPped


@dataclass(eq=False)
class _Timers:
    renew: float = 0.0
    rescue: float = 0.0
    heartbeat: float = 0.0
    prune: float = 0.0
    status: float = 0.0
    watchdog: float = 0.0
    running_check: float = 0.0
    rate_mark: tuple[float, int] = (0.0, 0)
    rate: float = 0.0
    spawn_after: dict[int, float] = field(default_factory=dict)


T = TypeVar("T")


def run_pool(settings: PoolSettings) -> int:
    """Run a worker pool until it is stopped (or, with burst, until nothing is left); the exit
    code: 0 after a clean stop, else the JobqError's code."""
    setup_logging(settings.log_level)
    try:
        pool = Pool(settings)
    except JobqError as e:
        log.error("%s", e)
        return e.exit_code
    try:
        return pool.run()
    except JobqError as e:
        log.error("%s", e)
        return e.exit_code


class Pool:
    """A supervisor and its children."""

    def __init__(self, settings: PoolSettings) -> None:
        if settings.concurrency < 1:
            raise JobqError("concurrency must be at least 1")
        self.settings = settings
        self._temp_logged = 0.0  # when a full disk / long lock was last logged
        self.db_path = absolute_location(settings.db_path)
        # validate handlers here, so a bad --app fails once and early, not in every child
        self.handlers: dict[str, Handler] = load_handlers(
            settings.apps, settings.execs, settings.handlers_file
        )
        self.types = sorted(self.handlers)
        self.store = open_backend(self.db_path, Role.WORKER)
        host = socket.gethostname()
        name = (settings.name or host).replace("/", "_")
        self.pool_id = f"{name}:{os.getpid()}:{secrets.token_hex(2)}"
        self.name = settings.name or host
        self.host = host
        self.ctx = multiprocessing.get_context(settings.start_method)
        self.shared: SharedArray = self.ctx.RawArray(
            ctypes.c_double, SLOT_SIZE * settings.concurrency
        )
        self.children: dict[int, _Child] = {}
        self.generation = 0
        self.done_before = 0  # jobs finished by children that have exited
        self.signals = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.ready_sent = False
        self.start_failures = 0  # children in a row that died before they were ready
        self.start_error = ""
        self.here = lifecycle.host_key()
        self.timers = _Timers()
        self.notifier = Notifier.from_environ()  # removed from os.environ: children lack it
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # ---- signals ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1

    def _install_signals(self) -> list[tuple[int, object]]:
        saved: list[tuple[int, object]] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            saved.append((sig, signal.signal(sig, self._on_signal)))
        saved.append((-1, signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)))
        return saved

    @staticmethod
    def _restore_signals(saved: list[tuple[int, object]]) -> None:
        for sig, old in saved:
            if sig == -1:
                signal.set_wakeup_fd(old)  # type: ignore[arg-type]
            else:
                signal.signal(sig, old)  # type: ignore[arg-type]

    # ---- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        """The supervisor loop; returns the exit code."""
        saved = self._install_signals()
        s = self.settings
        now = time.time()
        self.store.register_worker(
            self.pool_id,
            name=self.name,
            host=self.host,
            pid=os.getpid(),
            concurrency=s.concurrency,
            queues=list(s.queues),
            types=self.types,
            type_globs=list(s.type_globs),
            now=now,
            proc_key=lifecycle.proc_key(),
        )
        log.info(
            "pool %s: %d children on %s; handlers: %s%s",
            self.pool_id, s.concurrency, display_location(self.db_path), describe(self.handlers),
            " (burst)" if s.burst else "",
        )  # fmt: skip
        mono = time.monotonic()
        t = self.timers
        t.heartbeat = t.renew = t.rescue = t.prune = mono
        t.rate_mark = (mono, 0)
        try:
            self._guarded(self._rescue)  # a dead pool's jobs first: a burst run must see them
            for i in range(s.concurrency):
                self._spawn(i)
            while True:
                if self.signals and not self.stopping:
                    self._begin_shutdown()
                if self.signals >= 2:
                    log.warning("second signal: stopping now")
                    self._kill_all("interrupted: worker pool stopped at once")
                    break
                self._guarded(self._reap)
                if self.stopping:
                    if not self.children:
                        break
                    if time.monotonic() >= self.stop_deadline:
                        log.warning(
                            "shutdown timeout (%gs) reached: interrupting %d running job(s)",
                            s.shutdown_timeout, self._running_count(),
                        )  # fmt: skip
                        self._kill_all("interrupted: shutdown timeout reached")
                        break
                elif not self._guarded(self._respawn, True):
                    break  # burst: nothing left to do
                if self.start_failures >= MAX_START_FAILURES:
                    raise JobqError(
                        f"worker children keep failing at start-up ({self.start_failures} in a "
                        f"row): {self.start_error or 'see the log above'}"
                    )
                self._guarded(self._periodic)
                self._sleep()
        finally:
            self._finish()
            self._restore_signals(saved)
        return 0

    def _sleep(self) -> None:
        timeout = TICK
        wd = self.notifier.watchdog_interval
        if wd is not None:
            timeout = max(0.0, min(timeout, self.timers.watchdog + wd - time.monotonic()))
        handles: list[object] = [c.proc.sentinel for c in self.children.values()]
        handles.append(self._wake_r)
        wait(handles, timeout)  # type: ignore[arg-type]
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _periodic(self) -> None:
        s, t = self.settings, self.timers
        self.store.check_identity()  # FileReplaced: not retried by _guarded; run_pool exits 75
        mono = time.monotonic()
        busy = any(self._slot(c).get(JOB) for c in self.children.values())
        rows: list[RunningRow] | None = None
        if busy and mono - t.running_check >= TICK:
            t.running_check = mono
            self._check_deadlines()
            rows = self._running_rows()
            self._check_cancels(rows)
        if mono - t.renew >= s.lease_seconds / 3:
            t.renew = mono
            self._renew(rows if rows is not None else self._running_rows())
        if mono - t.rescue >= min(RESCUE_EVERY, s.lease_seconds / 2):
            t.rescue = mono
            self._rescue()
            self._check_stopped(mono)
        if mono - t.heartbeat >= HEARTBEAT_EVERY:
            t.heartbeat = mono
            self._heartbeat("stopping" if self.stopping else "running")
        if s.retention is not None and mono - t.prune >= PRUNE_EVERY:
            t.prune = mono
            n = self.store.prune(time.time() - s.retention, ["succeeded", "failed", "cancelled"])
            if n:
                log.info("pruned %d finished job(s) older than %gs", n, s.retention)
        self.store.maintain()  # e.g. SQLite: readers cannot starve checkpoints
        self._notify(mono)

    # ---- children -----------------------------------------------------------------------------

    def _slot(self, child: _Child) -> Slot:
        return Slot(self.shared, child.index)

    def _spawn(self, index: int) -> None:
        self.store.check_identity(force=True)  # a new child must not open a new file
        self.generation += 1
        worker_id = f"{self.pool_id}/{self.generation}"
        Slot(self.shared, index).reset()
        # duplex: the child says on it why it could not start (see _start_failure_message)
        stop_r, stop_w = self.ctx.Pipe(duplex=True)
        proc: BaseProcess = self.ctx.Process(  # type: ignore[attr-defined]
            target=child_main,
            args=(self.db_path, worker_id, self.shared, index, stop_r, os.getpid(), self.settings),
            name=f"worker-{index + 1}",
            daemon=False,
        )
        # a Ctrl-C during start-up must not kill the child before it ignores SIGINT
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        stop_r.close()
        self.children[index] = _Child(index, worker_id, proc, stop_w, time.monotonic())
        log.debug("started worker %s (pid %s)", worker_id, proc.pid)

    def _respawn(self) -> bool:
        """Start children in empty places; False when a burst pool is done."""
        empty = [i for i in range(self.settings.concurrency) if i not in self.children]
        if not empty:
            return True
        if self.settings.burst and not self._has_work():
            return bool(self.children)
        mono = time.monotonic()
        for i in empty:
            if mono >= self.timers.spawn_after.get(i, 0.0):
                self._spawn(i)
        return True

    def _rescue(self) -> None:
        """Take back the jobs of dead pools and expired leases (never this pool's own)."""
        for job_id, state in self.store.rescue(time.time(), here=self.here, own_pool=self.pool_id):
            log.warning("rescued job %d from a dead or silent pool -> %s", job_id, state.value)

    def _has_work(self) -> bool:
        s = self.settings
        self._rescue()  # a burst run must not leave while a dead pool holds jobs it could run
        return self.store.has_claimable(
            time.time(),
            ClaimFilter(tuple(self.types), tuple(s.type_globs) or None, tuple(s.queues) or None),
        )

    def _reap(self) -> None:
        for child in list(self.children.values()):
            if child.proc.exitcode is None and child.proc.is_alive():
                continue
            child.proc.join()
            self._child_exited(child)

    def _child_exited(self, child: _Child) -> None:
        slot = self._slot(child)
        pgid = int(slot.get(PGID))
        if pgid:
            _kill_group(pgid)  # a command's grandchildren outlive a killed child otherwise
        self.done_before += int(slot.get(DONE))
        code = child.proc.exitcode if child.proc.exitcode is not None else -1
        how = f"signal {-code}" if code < 0 else f"status {code}"
        was_ready = bool(slot.get(READY))
        del self.children[child.index]
        message = _start_failure_message(child.stop_w)
        child.stop_w.close()
        ended = self._end_jobs_of(child, f"worker exited: {how}")
        if code != 0 and child.killed is None:
            if not ended:
                log.warning("worker %s exited (%s)", child.worker_id, how)
            if time.monotonic() - child.started < RESPAWN_BACKOFF:
                self.timers.spawn_after[child.index] = time.monotonic() + RESPAWN_BACKOFF
        # exited with a status of its own before it was ready (a signal is someone else's doing)
        if code > 0 and not was_ready and child.killed is None:
            self.start_failures += 1
            self.start_error = message or f"a worker child exited ({how}) before it was ready"
        elif was_ready:
            self.start_failures = 0

    def _end_jobs_of(self, child: _Child, why: str) -> int:
        """End the attempts a child holds now that it cannot finish them (it died, or it has
        been stopped for a whole lease): what it ran is charged, what it never started is
        released. The slot tells which, whatever the wall clock says. Returns how many."""
        slot = self._slot(child)
        current = int(slot.get(JOB))
        ran = slot.unrecorded()
        rows = [r for r in self.store.running_of(child.worker_id) if r[2] == child.worker_id]
        now = time.time()
        for job_id, token, _wid, _started, _timeout, _cancel, attempts in rows:
            if child.killed is not None and child.killed[1] == job_id:
                self._end_killed(child.killed, job_id, token, now)
            elif job_id in ran:
                # it ran, but its success died with the child: counted, and due again at once
                self.store.end_attempt(
                    job_id, token, now, Ending.CRASH,
                    f"{why}, after the job ran, before its success was recorded",
                )  # fmt: skip
            elif child.killed is not None:
                self.store.end_attempt(job_id, token, now, Ending.RELEASE, child.killed[0])
            elif job_id == current:
                log.warning("worker %s %s running job %d (attempt %d)",
                            child.worker_id, why.replace(": ", " (", 1) + ")", job_id,
                            attempts)  # fmt: skip
                state = self.store.end_attempt(job_id, token, now, Ending.CRASH, why)
                if state is None:
                    log.warning("lease lost: job %d was taken over before its crash was recorded",
                                job_id)  # fmt: skip
                elif state.value == "failed":
                    log.error("job %d failed for good: its worker died %d time(s)",
                              job_id, attempts)  # fmt: skip
            else:
                self.store.end_attempt(job_id, token, now, Ending.RELEASE, f"not started: {why}")
        return len(rows)

    def _check_stopped(self, mono: float) -> None:
        """A child SIGSTOPped (or traced) for a whole lease loses its jobs, as a dead pool's
        would: they run elsewhere, and its late writes are fenced when it resumes."""
        for child in self.children.values():
            if _running_normally(child.proc):
                child.stopped_since = None
                continue
            if child.stopped_since is None:
                child.stopped_since = mono
            elif mono - child.stopped_since >= self.settings.lease_seconds:
                n = self._end_jobs_of(child, "worker stopped: no heartbeat for a whole lease")
                if n:
                    log.warning("worker %s stopped for %.0fs: took back its %d job(s)",
                                child.worker_id, mono - child.stopped_since, n)  # fmt: skip

    def _end_killed(
        self, killed: tuple[str, int, float], job_id: int, token: str, now: float
    ) -> None:
        reason, _job, detail = killed
        if reason == "timeout":
            state = self.store.end_attempt(
                job_id, token, now, Ending.TIMEOUT, f"timed out after {detail:g}s"
            )
        elif reason == "cancel":
            state = self.store.end_attempt(job_id, token, now, Ending.CANCEL)
        else:
            state = self.store.end_attempt(job_id, token, now, Ending.INTERRUPT, reason)
        if state is None:
            log.warning("lease lost: job %d (%s) was taken over meanwhile", job_id, reason)
        else:
            log.info("job %d: %s -> %s", job_id, reason.split(":")[0], state.value)

    def _kill(self, child: _Child, reason: str, job_id: int = 0, detail: float = 0.0) -> None:
        """SIGKILL a child and its command's process group; its exit is recorded by _reap."""
        if child.killed is None:
            child.killed = (reason, job_id, detail)
        pgid = int(self._slot(child).get(PGID))
        # the child first: killing its command first would let it record "command killed"
        if child.proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.proc.pid, signal.SIGKILL)
        if pgid:
            _kill_group(pgid)

    def _kill_all(self, reason: str) -> None:
        for child in list(self.children.values()):
            self._kill(child, reason)
        for child in list(self.children.values()):
            child.proc.join(5.0)
        self._reap()

    def _running_count(self) -> int:
        return sum(1 for c in self.children.values() if self._slot(c).get(JOB))

    def _check_deadlines(self) -> None:
        now = time.monotonic()  # the children's deadlines are on the system-wide monotonic clock
        for child in self.children.values():
            slot = self._slot(child)
            job_id = slot.get(JOB)
            deadline = slot.get(DEADLINE)
            started = slot.get(STARTED)
            if job_id and deadline and now > deadline and slot.get(JOB) == job_id:
                log.warning("job %d overran its timeout (%gs): killing worker %s",
                            int(job_id), deadline - started, child.worker_id)  # fmt: skip
                self._kill(child, "timeout", int(job_id), deadline - started)

    def _running_rows(self) -> list[RunningRow]:
        return self.store.running_of(self.pool_id + "/")

    def _check_cancels(self, rows: Sequence[RunningRow]) -> None:
        by_worker = {c.worker_id: c for c in self.children.values()}
        for job_id, _token, wid, _started, _timeout, cancel, _attempts in rows:
            child = by_worker.get(wid)
            if cancel and child is not None and int(self._slot(child).get(JOB)) == job_id:
                log.info("job %d: cancel requested, stopping worker %s", job_id, wid)
                self._kill(child, "cancel", job_id)

    def _renew(self, rows: Sequence[RunningRow]) -> None:
        """Extend the leases of jobs held by children that are alive and not stopped."""
        healthy = {c.worker_id for c in self.children.values() if _running_normally(c.proc)}
        leases = [(r[0], r[1]) for r in rows if r[2] in healthy]
        if leases:
            n = self.store.renew(leases, time.time() + self.settings.lease_seconds)
            if n < len(leases):
                log.warning("lease lost: %d of %d lease(s) were no longer ours",
                            len(leases) - n, len(leases))  # fmt: skip

    def _begin_shutdown(self) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.settings.shutdown_timeout
        log.info("stopping: letting %d running job(s) finish (up to %gs)",
                 self._running_count(), self.settings.shutdown_timeout)  # fmt: skip
        self.notifier.notify("STOPPING=1")
        for child in self.children.values():
            with contextlib.suppress(OSError):
                child.stop_w.send_bytes(b"stop")
        self._heartbeat("stopping")

    def _finish(self) -> None:
        if self.children:
            self._kill_all("interrupted: worker pool stopped")
        self._heartbeat("stopped")
        self.notifier.close()
        self.store.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        log.info("pool %s stopped after %d job(s)", self.pool_id, self._done())

    # ---- bookkeeping --------------------------------------------------------------------------

    def _guarded(self, step: Callable[[], T], failed: T | None = None) -> T | None:
        """Run one step of the loop; a full disk or a long lock only delays it (no exit).

        What a failed step did not record is recorded by a later tick or, at worst, by the
        rescue of an expired lease: at-least-once holds either way.
        """
        try:
            return step()
        except TemporaryFailure as e:
            mono = time.monotonic()
            if mono - self._temp_logged > 10:
                log.warning("%s; retrying", e)
                self._temp_logged = mono
            return failed

    def _done(self) -> int:
        return self.done_before + sum(int(self._slot(c).get(DONE)) for c in self.children.values())

    def _heartbeat(self, status: str) -> None:
        try:
            self.store.worker_heartbeat(self.pool_id, time.time(), self._done(), status)
        except JobqError as e:
            log.warning("heartbeat failed: %s", e)

    def _notify(self, mono: float) -> None:
        n, t = self.notifier, self.timers
        if not n.enabled:
            return
        if (
            not self.ready_sent
            and not self.stopping
            and all(self._slot(c).get(READY) for c in self.children.values())
        ):
            self.ready_sent = n.notify("READY=1", "STATUS=" + self._status_line())
            t.status = mono
        wd = n.watchdog_interval
        if wd is not None and mono - t.watchdog >= wd * 0.9:
            t.watchdog = mono
            n.notify("WATCHDOG=1")
        if mono - t.status >= STATUS_EVERY:
            t.status = mono
            n.status(self._status_line())

    def _status_line(self) -> str:
        t = self.timers
        mono, done = time.monotonic(), self._done()
        mark_t, mark_n = t.rate_mark
        if mono - mark_t >= 1.0:
            t.rate = (done - mark_n) / (mono - mark_t)
            t.rate_mark = (mono, done)
        state = "stopping, " if self.stopping else ""
        return (f"{state}{len(self.children)} children, {self._running_count()} running, "
                f"{done} done, {t.rate:.1f} jobs/s")  # fmt: skip


def _running_normally(proc: BaseProcess) -> bool:
    """Alive and not stopped (SIGSTOP / traced): only such a child's leases are renewed."""
    if proc.pid is None or proc.exitcode is not None:
        return False
    if not _HAVE_PROC:
        return proc.is_alive()  # no /proc: liveness is all we can tell
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"T", b"t", b"Z", b"X")


def _start_failure_message(conn: Connection) -> str:
    """What a child that could not start said about it (worker._report_start_failure)."""
    try:
        if conn.poll():
            return conn.recv_bytes().decode("utf-8", "replace")
    except (OSError, EOFError):
        pass
    return ""


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
