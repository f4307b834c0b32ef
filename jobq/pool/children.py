"""The supervisor's side of its worker children: start, reap, kill, and end the jobs of a child
that can no longer finish them.

- A dead child is noticed at once: its running job ends `crashed` ("worker exited: signal 9",
  attempt counted), jobs it had claimed but not started are released, and its place is free for
  a new child (after `RESPAWN_BACKOFF` if it died just after it started).
- A child whose job overran its timeout or was asked to cancel is killed with its command's
  process group, then its job is recorded `timeout` / `cancelled`.
- A child stopped (SIGSTOP, traced) for a whole lease loses its jobs, as a dead pool's would.
- Children that exit before they are ready `MAX_START_FAILURES` times in a row stop the pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from ..backend import Ending
from ..errors import JobqError, TemporaryFailure
from .child import child_main
from .guardian import kill_group as _kill_group
from .settings import PoolSettings
from .slots import DEADLINE, DONE, GEN, JOB, PGID, READY, STARTED, SharedSlots, Slot, create

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..backend import Backend

log = logging.getLogger("jobq.pool")

RESPAWN_BACKOFF = 1.0  # a child that died within this many seconds of starting waits this long
# children that die before they are ready this many times in a row: the pool exits, so that
# systemd (or the shell) shows why instead of a respawn every second for ever
MAX_START_FAILURES = 5

_HAVE_PROC = os.path.exists("/proc/self/stat")

# (id, token, worker_id, started_at, timeout, cancel_requested, attempts): Backend.running_of
RunningRow = tuple[int, str, str, float, float, bool, int]
# what a child's slot said: (job it was running or 0, jobs it ran whose success is unrecorded)
Progress = tuple[int, frozenset[int]]


@dataclass(eq=False)
class ChildHandle:
    """The supervisor's handle on one worker child."""

    index: int
    worker_id: str
    proc: BaseProcess
    stop_w: Connection
    started: float
    # (reason, job id, detail) when the supervisor killed the child on purpose
    killed: tuple[str, int, float] | None = None
    stopped_since: float | None = None  # monotonic time it was first seen SIGSTOPped


@dataclass(eq=False)
class StartFailures:
    """Children in a row that exited before they were ready, and what the last one said."""

    count: int = 0
    error: str = ""

    def record(self, code: int, was_ready: bool, on_purpose: bool, message: str) -> None:
        """Count a child's exit (`code` as multiprocessing reports it: < 0 for a signal)."""
        # exited with a status of its own before it was ready (a signal is someone else's doing)
        if code > 0 and not was_ready and not on_purpose:
            self.count += 1
            self.error = message or f"a worker child exited (status {code}) before it was ready"
        elif was_ready:
            self.count = 0

    def check(self) -> None:
        """Raise JobqError once too many children in a row failed at start-up."""
        if self.count >= MAX_START_FAILURES:
            raise JobqError(
                f"worker children keep failing at start-up ({self.count} in a "
                f"row): {self.error or 'see the log above'}"
            )


class Children:
    """A pool's worker children, by place (0 … concurrency-1), and their shared slots."""

    def __init__(
        self,
        store: Backend,
        settings: PoolSettings,
        ctx: BaseContext,
        db_path: str,
        pool_id: str,
        probe: Callable[[BaseProcess], bool] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.ctx = ctx
        self.db_path = db_path
        self.pool_id = pool_id
        # alive and not stopped: only such a child's leases are renewed (a fake in unit tests)
        self.probe = probe or _running_normally
        # in a file, so that the next pool can tell what each child was doing should this whole
        # pool die (jobq.pool.slots)
        self.shared: SharedSlots = create(pool_id, settings.concurrency)
        self.by_index: dict[int, ChildHandle] = {}
        self.generation = 0
        self.done_before = 0  # jobs finished by children that have exited
        self.start_failures = StartFailures()
        self.spawn_after: dict[int, float] = {}
        # exited children whose jobs could not be ended yet (the queue was away): retried by
        # each reap, since no rescuer takes back its own pool's jobs
        self.unended: list[tuple[ChildHandle, str, float, Progress]] = []

    def __len__(self) -> int:
        return len(self.by_index)

    def slot(self, child: ChildHandle) -> Slot:
        """The child's row of the shared array."""
        return Slot(self.shared, child.index)

    def handles(self) -> list[ChildHandle]:
        """The children alive (as far as the last reap knows)."""
        return list(self.by_index.values())

    # ---- what the slots say -------------------------------------------------------------------

    def busy(self) -> bool:
        """Whether any child runs a job now."""
        return any(self.slot(c).get(JOB) for c in self.by_index.values())

    def running_count(self) -> int:
        """How many children run a job now."""
        return sum(1 for c in self.by_index.values() if self.slot(c).get(JOB))

    def all_ready(self) -> bool:
        """Whether every child has opened the queue and loaded its handlers."""
        return all(self.slot(c).get(READY) for c in self.by_index.values())

    def done(self) -> int:
        """Jobs finished by this pool's children, past and present."""
        return self.done_before + sum(int(self.slot(c).get(DONE)) for c in self.by_index.values())

    def healthy(self) -> set[str]:
        """Worker ids of the children that are alive and not stopped."""
        return {c.worker_id for c in self.by_index.values() if self.probe(c.proc)}

    def running_rows(self) -> list[RunningRow]:
        """The running jobs leased by this pool's children."""
        return self.store.running_of(self.pool_id + "/")

    # ---- start and stop -----------------------------------------------------------------------

    def spawn(self, index: int) -> None:
        """Start a child in place `index`."""
        self.store.check_identity(force=True)  # a new child must not open a new file
        self.generation += 1
        worker_id = f"{self.pool_id}/{self.generation}"
        Slot(self.shared, index).reset()
        Slot(self.shared, index).set(GEN, float(self.generation))
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
        self.by_index[index] = ChildHandle(index, worker_id, proc, stop_w, time.monotonic())
        log.debug("started worker %s (pid %s)", worker_id, proc.pid)

    def empty_places(self) -> list[int]:
        """Places without a child."""
        return [i for i in range(self.settings.concurrency) if i not in self.by_index]

    def respawn(self, mono: float) -> None:
        """Start children in empty places, except where a child died just after it started."""
        for i in self.empty_places():
            if mono >= self.spawn_after.get(i, 0.0):
                self.spawn(i)

    def ask_to_stop(self) -> None:
        """Tell every child to stop claiming and exit after its job."""
        for child in self.by_index.values():
            with contextlib.suppress(OSError):
                child.stop_w.send_bytes(b"stop")

    def reap(self) -> None:
        """Notice children that exited and end their jobs."""
        for child in list(self.by_index.values()):
            if child.proc.exitcode is None and child.proc.is_alive():
                continue
            child.proc.join()
            self._child_exited(child)
        while self.unended:
            child, why, when, progress = self.unended[0]
            try:
                self.end_jobs_of(child, why, when, progress)
            except TemporaryFailure:
                return  # still away: the next reap tries again
            self.unended.pop(0)

    def _child_exited(self, child: ChildHandle) -> None:
        slot = self.slot(child)
        pgid = int(slot.get(PGID))
        if pgid:
            _kill_group(pgid)  # a command's grandchildren outlive a killed child otherwise
        self.done_before += int(slot.get(DONE))
        code = child.proc.exitcode if child.proc.exitcode is not None else -1
        how = f"signal {-code}" if code < 0 else f"status {code}"
        was_ready = bool(slot.get(READY))
        del self.by_index[child.index]
        message = _start_failure_message(child.stop_w)
        child.stop_w.close()
        why, now = f"worker exited: {how}", time.time()
        # what the slot says now: a new child in this place will reset it
        progress = (int(slot.get(JOB)), slot.unrecorded())
        try:
            ended = self.end_jobs_of(child, why, now, progress)
        except TemporaryFailure:
            self.unended.append((child, why, now, progress))  # the next reap tries again
            ended = 1  # not a silent exit: its jobs are known to be held
        if code != 0 and child.killed is None:
            if not ended:
                log.warning("worker %s exited (%s)", child.worker_id, how)
            if time.monotonic() - child.started < RESPAWN_BACKOFF:
                self.spawn_after[child.index] = time.monotonic() + RESPAWN_BACKOFF
        self.start_failures.record(code, was_ready, child.killed is not None, message)

    def end_jobs_of(
        self, child: ChildHandle, why: str, now: float, progress: Progress | None = None
    ) -> int:
        """End the attempts a child holds now that it cannot finish them (it died, or it has
        been stopped for a whole lease): what it ran is charged, what it never started is
        released. The slot (or `progress`, read from it earlier: the job it ran, the jobs it
        finished unrecorded) tells which, whatever the wall clock says. Returns how many."""
        if progress is None:
            slot = self.slot(child)
            progress = (int(slot.get(JOB)), slot.unrecorded())
        current, ran = progress
        rows = [r for r in self.store.running_of(child.worker_id) if r[2] == child.worker_id]
        # the jobs it never started go back together, in one transaction, after the others
        release: list[tuple[int, str]] = []
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
                release.append((job_id, token))
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
                release.append((job_id, token))
        if release:
            reason = child.killed[0] if child.killed is not None else f"not started: {why}"
            self.store.release_many(release, now, reason)
        return len(rows)

    def check_stopped(self, mono: float, now: float) -> None:
        """A child SIGSTOPped (or traced) for a whole lease loses its jobs, as a dead pool's
        would: they run elsewhere, and its late writes are fenced when it resumes."""
        for child in self.by_index.values():
            if self.probe(child.proc):
                child.stopped_since = None
                continue
            if child.stopped_since is None:
                child.stopped_since = mono
            elif mono - child.stopped_since >= self.settings.lease_seconds:
                n = self.end_jobs_of(child, "worker stopped: no heartbeat for a whole lease", now)
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

    def kill(self, child: ChildHandle, reason: str, job_id: int = 0, detail: float = 0.0) -> None:
        """SIGKILL a child and its command's process group; its exit is recorded by reap."""
        if child.killed is None:
            child.killed = (reason, job_id, detail)
        pgid = int(self.slot(child).get(PGID))
        # the child first: killing its command first would let it record "command killed"
        if child.proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.proc.pid, signal.SIGKILL)
        if pgid:
            _kill_group(pgid)

    def kill_all(self, reason: str) -> None:
        """Kill every child, wait for them, and end their jobs (released: `reason`)."""
        for child in list(self.by_index.values()):
            self.kill(child, reason)
        for child in list(self.by_index.values()):
            child.proc.join(5.0)
        self.reap()

    # ---- timeouts and cancels -----------------------------------------------------------------

    def check_deadlines(self, mono: float) -> None:
        """Kill the children whose job overran its timeout (`mono`: the system-wide monotonic
        clock the children's deadlines are on)."""
        for child in self.by_index.values():
            slot = self.slot(child)
            job_id = slot.get(JOB)
            deadline = slot.get(DEADLINE)
            started = slot.get(STARTED)
            if job_id and deadline and mono > deadline and slot.get(JOB) == job_id:
                log.warning("job %d overran its timeout (%gs): killing worker %s",
                            int(job_id), deadline - started, child.worker_id)  # fmt: skip
                self.kill(child, "timeout", int(job_id), deadline - started)

    def check_cancels(self, rows: Sequence[RunningRow]) -> None:
        """Kill the children whose running job an operator asked to cancel."""
        by_worker = {c.worker_id: c for c in self.by_index.values()}
        for job_id, _token, wid, _started, _timeout, cancel, _attempts in rows:
            child = by_worker.get(wid)
            if cancel and child is not None and int(self.slot(child).get(JOB)) == job_id:
                log.info("job %d: cancel requested, stopping worker %s", job_id, wid)
                self.kill(child, "cancel", job_id)


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
