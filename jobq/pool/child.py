"""A worker child: claims jobs, runs them, records how they ended.

A child is started by the supervisor (`jobq.pool`) through `child_main`, a top-level function
that takes plain picklable values, so every multiprocessing start method works; it opens its own
connection to the queue file. It reports to the supervisor through one row of a shared array of
doubles (see `Slot`): the job it is running, when it started, its deadline, the process group of
a command handler, and how many jobs it finished. The supervisor uses that row to enforce
timeouts and cancellations by killing the child, and to renew only leases of live children.

Speed comes from batching: a child claims up to `k` jobs in one transaction and records their
successes in one transaction. `k` adapts to the jobs' duration (1 for slow jobs, up to
`MAX_BATCH` for tiny ones) so that a batch never holds jobs another child could run for long.
A claimed job that has not started when the child must stop is released (not counted).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, TypeVar

from ..backend import ClaimFilter, Ending, Role, absolute_location, is_url, open_backend
from ..control import Backoff, backoff_delay
from ..errors import DatabaseBusy, FileReplaced, JobqError, ServerUnavailable, TemporaryFailure
from ..handlers import Handler
from ..model import Job
from .capture import LiveOutput
from .commands import command_env, run_command, set_parent_death_signal
from .executor import Executor, Result
from .loader import load_handlers
from .settings import PoolSettings
from .slots import (
    BEAT,
    DEADLINE,
    DONE,
    MAX_BATCH,
    PGID,
    PID,
    READY,
    UNRECORDED,
    UNRECORDED_N,
    SharedSlots,
    Slot,
)

if TYPE_CHECKING:
    from ..backend import Backend, OutputWrite

log = logging.getLogger("jobq.worker")

# A batch should take about this long: long enough to amortise a transaction over many tiny
# jobs, short enough that claimed-but-waiting jobs are not starved.
BATCH_TARGET = 0.010
# Successes are recorded at the latest this long after the first of them finished.
FLUSH_AFTER = 0.020

T = TypeVar("T")
SPIN_AFTER_WAKE = 0.05  # seconds of 0.2 ms claim retries after a wake-up
# An idle child wakes this long after the earliest run_at it could claim (select's timeout is
# rounded; waking a hair early would find nothing due and sleep again).
DUE_SLACK = 0.0002


def setup_logging(level: str) -> None:
    """Log jobq's events to stderr, one line each."""
    logger = logging.getLogger("jobq")
    if not any(getattr(h, "_jobq", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(processName)s: %(message)s")
        )
        handler._jobq = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False  # handlers' own logging is captured per job, ours is not


def child_main(
    db_path: str,
    worker_id: str,
    shared: SharedSlots,
    index: int,
    stop_conn: Connection,
    parent_pid: int,
    settings: PoolSettings,
) -> None:
    """Entry point of a worker child process."""
    # die with the supervisor; it may already be gone before prctl took effect
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)
    # Ctrl-C reaches the whole process group: the supervisor decides how to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    setup_logging(settings.log_level)
    logging.getLogger().setLevel(settings.log_level.upper())  # handlers' logging, captured
    try:
        child = _start(db_path, worker_id, Slot(shared, index), stop_conn, parent_pid, settings)
    except JobqError as e:
        _report_start_failure(stop_conn, worker_id, str(e))
        sys.exit(e.exit_code)
    except Exception as e:  # an --app module failing in the child only: say why, then exit 1
        _report_start_failure(stop_conn, worker_id, f"{type(e).__name__}: {e}")
        raise
    signal.signal(signal.SIGTERM, child.on_sigterm)
    try:
        child.run()
    except FileReplaced as e:  # the supervisor notices it too, and stops the pool (exit 75)
        log.error("worker %s stops: %s", worker_id, e)
        sys.exit(e.exit_code)
    finally:
        child.close()


def _start(
    db_path: str,
    worker_id: str,
    slot: Slot,
    stop_conn: Connection,
    parent_pid: int,
    settings: PoolSettings,
) -> Child:
    """Build the Child, waiting (with backoff) while the queue is temporarily away: a child
    respawned while its server restarts must not count as a start-up failure, or a pool would
    give up on a server that is back a few seconds later."""
    delay = 0.1
    while True:
        try:
            return Child(db_path, worker_id, slot, stop_conn, parent_pid, settings)
        except TemporaryFailure as e:
            if stop_conn.poll() or os.getppid() != parent_pid:
                raise
            if delay == 0.1:
                log.warning("worker %s waits for the queue: %s", worker_id, e)
            time.sleep(delay)
            delay = min(2.0, delay * 2)


def _report_start_failure(conn: Connection, worker_id: str, message: str) -> None:
    """Log why this child cannot start and tell the supervisor, which gives up after a few."""
    log.error("worker %s cannot start: %s", worker_id, message)
    with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
        conn.send_bytes(message.encode("utf-8", "replace")[:2000])


class Child:
    """The claim-run-record loop of one worker child."""

    def __init__(
        self,
        db_path: str,
        worker_id: str,
        slot: Slot,
        stop_conn: Connection,
        parent_pid: int,
        settings: PoolSettings,
    ) -> None:
        self.db_path = absolute_location(db_path)
        self.worker_id = worker_id
        self.slot = slot
        self.stop_conn = stop_conn
        self.parent_pid = parent_pid
        self.settings = settings
        self.handlers: dict[str, Handler] = load_handlers(
            settings.apps, settings.execs, settings.handlers_file
        )
        self.types = sorted(self.handlers)
        # each handler's limits, fixed on a job when it is claimed (lifecycle: effective limits)
        self.limits = {t: (h.max_attempts, h.timeout) for t, h in self.handlers.items()}
        self.globs = list(settings.type_globs) or None
        self.queues = list(settings.queues) or None
        self.filter = ClaimFilter(tuple(self.types), None if self.globs is None
                                  else tuple(self.globs), None if self.queues is None
                                  else tuple(self.queues))  # fmt: skip
        self.store = open_backend(db_path, Role.WORKER)
        # The first claim after a wake-up spins on a handle that never waits for a lock (see
        # claim): the producer that woke us usually still holds it for a moment. A server has
        # no such lock (claims skip locked rows): one connection per child is enough there.
        self.spin_store = (
            self.store if is_url(self.db_path) else open_backend(db_path, Role.WORKER_SPIN)
        )
        self.woken = False
        # armed before the first claim: no commit after this point can be missed
        self.waker = self.store.waker()
        self.executor = Executor()
        self.live = LiveOutput(self.db_path)
        self.outputs: list[OutputWrite] = []  # ended attempts' last output, written with a batch
        self.batch = 1
        self.temp_delay = 0.0  # backoff after disk-full / busy errors
        self.done = 0
        self.successes: list[tuple[int, str, str | None, str | None]] = []
        self.first_success = 0.0
        self.run_time: dict[str, float] = {}  # per type: a moving average of its run time
        self.sigterm = False
        slot.set(PID, os.getpid())
        slot.set(BEAT, time.time())
        slot.set(READY, 1.0)

    def on_sigterm(self, signum: int, frame: object) -> None:
        """SIGTERM sent to the child itself: finish the running job, then exit."""
        self.sigterm = True

    def close(self) -> None:
        """Release what the child holds."""
        self.live.close()
        self.waker.close()
        if self.spin_store is not self.store:
            self.spin_store.close()
        self.store.close()

    def should_stop(self) -> bool:
        """Whether the supervisor asked us to stop, or died."""
        return self.sigterm or self.stop_conn.poll() or os.getppid() != self.parent_pid

    def run(self) -> None:
        """Claim and run jobs until told to stop (or, with --burst, until nothing is due)."""
        limit = self.settings.max_jobs_per_child
        while not self.should_stop():
            self.store.check_identity()  # a stat at most once a second
            try:
                woken, self.woken = self.woken, False
                jobs = self.claim(
                    self.batch if not limit else min(self.batch, limit - self.done), woken
                )
            except TemporaryFailure as e:
                # disk full or a lock held too long: claim nothing now, try again later
                self.slot.set(BEAT, time.time())
                self.backoff(e)
                continue
            self.temp_delay = 0.0
            self.slot.set(BEAT, time.time())
            if not jobs:
                if self.settings.burst and not self.held_back():
                    return
                self.idle_wait()
                continue
            self.run_batch(jobs)
            if limit and self.done >= limit:
                log.info("worker %s recycles after %d jobs", self.worker_id, self.done)
                return

    def held_back(self) -> bool:
        """Whether due jobs we could run were left by an empty claim: held by a limit across
        pools (or just taken by another claim). A burst child then waits for them, as an idle
        child does, instead of exiting to be respawned at once by the supervisor."""
        try:
            return self.store.has_claimable(time.time(), self.filter)
        except TemporaryFailure:
            return True  # cannot tell now: idle_wait, then claim again

    def claim(self, limit: int, woken: bool) -> list[Job]:
        """Lease up to `limit` jobs.

        Just after a wake-up the producer that woke us usually still holds the write lock (we
        see its WAL write before its fsync ends), and SQLite's busy handler would sleep a whole
        millisecond or more before retrying. With the turnstile (the default) we queue up behind
        the producer and go in the moment it leaves; without it, first spin briefly on a
        connection without a busy handler, retrying every 0.2 ms, then wait the ordinary way.
        """
        if woken and self.spin_store is not self.store:
            deadline = time.monotonic() + SPIN_AFTER_WAKE
            while time.monotonic() < deadline:
                try:
                    return self._claim_on(self.spin_store, limit)
                except DatabaseBusy:
                    time.sleep(0.0002)
        return self._claim_on(self.store, limit)

    def _claim_on(self, store: Backend, limit: int) -> list[Job]:
        return store.claim(self.worker_id, time.time(), self.settings.lease_seconds, self.filter,
                           limit=limit, limits=self.limits)  # fmt: skip

    def idle_wait(self) -> None:
        """Sleep until the queue file changes, the earliest job we could claim is due, the
        supervisor speaks, or the fallback poll."""
        timeout = self.settings.poll_interval
        try:
            # a scheduled or backed-off job, or the next start a rate limit allows
            due = self.store.next_run_at(self.filter, time.time())
        except TemporaryFailure:
            due = time.time() + 1.0  # cannot tell now: look again soon
        if due is not None:
            # a hair past run_at, so that the claim's `run_at <= now` holds when we wake
            timeout = min(timeout, max(due - time.time(), 0.0) + DUE_SLACK)
        fd = self.waker.fileno()
        if fd < 0:  # no descriptor (no inotify; a server connection being re-established)
            if self.waker.wait(min(timeout, 0.5)):
                self.woken = True
            return
        stop = self.stop_conn.fileno()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd, stop], [], [], left)
            if fd in ready and self.waker.drain():
                # a commit to the queue file: a new job, or one due sooner than `due`
                self.woken = True
                return
            if not ready or stop in ready:
                return
            # not a commit (SQLite: another file in the directory, e.g. the turnstile's -lock,
            # written by every writer, empty claims included; PostgreSQL: a server message that
            # is not a notification): not a reason to claim, or idle children would wake each
            # other forever

    def run_batch(self, jobs: Sequence[Job]) -> None:
        """Run claimed jobs one after the other, then record the successes together."""
        t0 = time.monotonic()
        ran = 0
        for i, job in enumerate(jobs):
            if i and self.should_stop():
                self.flush()
                self.release(jobs[i:])
                return
            # a retried job may be the one that killed our predecessor, and a job not known to
            # be quick may run for long: record the successes before it, not after it
            if self.successes and (
                job.attempts > 1
                or time.monotonic() - self.first_success > FLUSH_AFTER
                or self.run_time.get(job.type, FLUSH_AFTER) >= FLUSH_AFTER
            ):
                self.flush()
            self.run_one(job)
            ran += 1
        self.flush()
        per_job = (time.monotonic() - t0) / max(ran, 1)
        fit = max(1, min(MAX_BATCH, int(BATCH_TARGET / max(per_job, 1e-6))))
        # grow gradually while batches come back full and fast; shrink at once
        self.batch = min(fit, self.batch * 2) if ran == self.batch else min(fit, self.batch)

    def run_one(self, job: Job) -> None:
        """Run one job and record a failure at once (successes are batched).

        The slot names the job from just before its handler starts until its outcome is
        recorded (or queued with the batch's successes): should this child die anywhere in
        between, the supervisor charges the attempt, since the handler may have run.
        """
        handler = self.handlers[job.type]
        timeout = job.timeout if job.timeout is not None else 0.0  # fixed by the claim
        # CLOCK_MONOTONIC is system-wide: the supervisor compares this deadline with its own
        # clock, and a wall-clock jump neither kills a healthy job nor spares an overrun one
        started = time.monotonic()
        self.slot.begin(job.id, started, started + timeout if timeout > 0 else 0.0)
        self.live.begin(job)
        try:
            if handler.command is not None:
                result = run_command(
                    handler.command,
                    payload_json=job.payload_json,
                    env=command_env(job.id, job.type, job.attempts, self.db_path),
                    on_start=lambda pgid: self.slot.set(PGID, pgid),
                    guard=True,
                    live=self.live.add_bytes,
                    progress=self.live.progress,
                )
            else:
                assert handler.func is not None
                result = self.executor.run(handler.func, job, self.live.add)
        finally:
            rest = self.live.end()
        took = time.monotonic() - started
        mean = self.run_time.get(job.type)
        self.run_time[job.type] = took if mean is None else 0.8 * mean + 0.2 * took
        if rest is not None:
            self.outputs.append(rest)  # written before the attempt's end (its lease) is
        self.slot.set(PGID, 0.0)
        self.slot.set(DEADLINE, 0.0)  # ran out in time: recording it is no overrun
        assert job.lease_token is not None
        if result.ok:
            if len(self.successes) >= MAX_BATCH:
                self.flush()
            if not self.successes:
                self.first_success = time.monotonic()
            self.slot.set(UNRECORDED + len(self.successes), float(job.id))
            self.successes.append((job.id, job.lease_token, result.result_json, result.output))
            self.slot.set(UNRECORDED_N, float(len(self.successes)))
            self.slot.end()
            return
        self.flush()
        self.record_failure(job, result, handler.backoff)
        self.slot.end()

    def record_failure(self, job: Job, result: Result, backoff: Backoff | None = None) -> None:
        """Record a failed attempt: retried after backoff (the handler's, else the default), or
        failed for good; or a snooze (jobq.Snooze): due again later, the attempt not counted."""
        assert job.lease_token is not None
        token = job.lease_token
        how = Ending.SNOOZE if result.snooze is not None else Ending.FAIL
        delay = result.snooze if result.snooze is not None else backoff_delay(backoff, job.attempts)
        state = self.persist(
            lambda: self.store.end_attempt(
                job.id,
                token,
                time.time(),
                how,
                result.error or "failed",
                traceback=result.traceback,
                output=result.output,
                retryable=result.retryable,
                delay=delay,
            )
        )
        self.count_done(1)
        if state is None:
            log.warning("lease lost: job %d (%s) failed but another worker owns it now",
                        job.id, job.type)  # fmt: skip
        else:
            log.info("job %d (%s) attempt %d failed: %s -> %s",
                     job.id, job.type, job.attempts, result.error, state.value)  # fmt: skip

    def flush(self) -> None:
        """Record the ended attempts' last output, then the batched successes, in one
        transaction each."""
        if self.outputs:
            outputs, self.outputs = self.outputs, []
            for item, ok in zip(outputs, self.persist(lambda: self.store.write_output(outputs)),
                                strict=True):  # fmt: skip
                if not ok:
                    log.warning("lease lost: job %d: its output was not recorded", item[0])
        if not self.successes:
            return
        done, self.successes = self.successes, []
        oks = self.persist(lambda: self.store.complete_many(done, time.time()))
        self.slot.set(UNRECORDED_N, 0.0)
        self.count_done(len(done))
        for (job_id, _t, _r, _o), ok in zip(done, oks, strict=True):
            if not ok:
                log.warning("lease lost: job %d finished but another worker owns it now; "
                            "its result was not recorded", job_id)  # fmt: skip
        if log.isEnabledFor(logging.DEBUG):
            log.debug("recorded %d successes", len(done))

    def persist(self, write: Callable[[], T]) -> T:
        """Run a write that records a finished attempt, retrying while the disk is full or the
        file stays locked: a result is never dropped for a temporary failure. The supervisor
        keeps renewing our leases meanwhile (we keep heartbeating); if one expires anyway the
        late write is fenced and the job simply runs again."""
        while True:
            try:
                value = write()
            except TemporaryFailure as e:
                if os.getppid() != self.parent_pid:
                    raise  # orphaned: exit; the rescuer re-runs the job
                self.slot.set(BEAT, time.time())
                self.backoff(e)
                continue
            self.temp_delay = 0.0
            return value

    def backoff(self, e: TemporaryFailure) -> None:
        """Wait a little longer after each consecutive temporary failure (0.1 s … 5 s)."""
        if self.temp_delay == 0.0:
            log.warning("%s; retrying", e)
        self.temp_delay = min(5.0, max(0.1, self.temp_delay * 2))
        if isinstance(e, ServerUnavailable):
            # the waker reconnects on its own backoff (<= 2 s) and wakes us when the server is
            # back: the pool resumes then, not up to 5 s later
            self.waker.wait(self.temp_delay)
            return
        time.sleep(self.temp_delay)

    def count_done(self, n: int) -> None:
        """Count finished attempts where the supervisor can read them."""
        self.done += n
        self.slot.set(DONE, float(self.done))

    def release(self, jobs: Sequence[Job]) -> None:
        """Give back claimed jobs that never started (their attempt is not used up), in one
        transaction: a stopping child holding a batch claim must not pay a commit per job."""
        leases: list[tuple[int, str]] = []
        for job in jobs:
            assert job.lease_token is not None
            leases.append((job.id, job.lease_token))
        try:
            states = self.store.release_many(leases, time.time(), "not started: worker stopping")
        except TemporaryFailure as e:
            # the supervisor releases what we still hold when we exit (or the lease expires)
            log.warning("cannot release %d job(s) now (%s): the supervisor will", len(leases), e)
            return
        for job, state in zip(jobs, states, strict=True):
            if state:
                log.info("released job %d (%s): not started before stop", job.id, job.type)
