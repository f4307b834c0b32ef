"""The supervisor of `jobq work`: starts N worker children and keeps them honest.

Each child claims and runs jobs itself (`child`). The supervisor loop wakes every `TICK`
seconds, or at once when a child exits or a signal arrives, and:

- reaps dead children, ends their jobs and starts new ones; kills a child whose job overran
  its timeout or was asked to cancel (`children`);
- renews the leases of healthy children, rescues expired leases of dead pools, heartbeats the
  pool row, prunes history when a retention is set, bounds the WAL, and talks to systemd
  (READY, STATUS, WATCHDOG, STOPPING) (`maintenance`).

Signal handlers only set flags. SIGTERM/SIGINT: children stop claiming and finish their job for
up to `shutdown_timeout`; then the rest are killed and their jobs released (back to pending,
attempt not used up). A second signal stops at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType
from typing import TypeVar

from .. import lifecycle
from ..backend import ClaimFilter, Role, absolute_location, display_location, open_backend
from ..errors import JobqError, TemporaryFailure
from ..handlers import ON_FAILURE, Handler
from .child import setup_logging
from .children import Children, RunningRow
from .hooks import FailureHooks
from .loader import describe, load_handlers, schedules_from_file
from .maintenance import (
    Every,
    Heartbeat,
    PoolCounts,
    Pruner,
    Renewer,
    Rescuer,
    Roller,  # the per-minute history (jobq.rollup)
    SystemdStatus,
)
from .scheduler import Scheduler
from .settings import PoolSettings
from .systemd import Notifier

log = logging.getLogger("jobq.pool")

TICK = 0.25  # seconds between supervisor checks while nothing happens

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


def serve_metrics(location: str, host: str, port: int) -> object:
    """Start serving /metrics (jobq.metrics) or raise a one-line JobqError."""
    from ..metrics import serve

    try:
        return serve(location, host, port)
    except OSError as e:
        raise JobqError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from None


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
        if settings.metrics is not None:
            self.metrics_server = serve_metrics(self.db_path, *settings.metrics)
        host = lifecycle.host_name()
        name = (settings.name or host).replace("/", "_")
        # 4 random bytes: pools on many hosts share one server, and containers often give every
        # pool the same pid (1) and, with --name, the same name; a shared id would mix their jobs
        self.pool_id = f"{name}:{os.getpid()}:{secrets.token_hex(4)}"
        self.name = settings.name or host
        self.host = host
        self.ctx = multiprocessing.get_context(settings.start_method)
        self.children = Children(self.store, settings, self.ctx, self.db_path, self.pool_id)
        self.signals = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.here = lifecycle.host_key()
        self.running_check = Every(TICK)  # timeouts and cancels, while a job runs
        self.renewer = Renewer(self.store, settings.lease_seconds)
        self.rescuer = Rescuer(self.store, self.here, self.pool_id, settings.lease_seconds)
        self.heartbeat = Heartbeat(self.store, self.pool_id)
        self.pruner = Pruner(self.store, settings.retention)
        self.roller = Roller(self.store, settings.retention)
        self.hooks = FailureHooks(self.store, self.pool_id, settings.on_failure, ON_FAILURE)
        self.scheduler = Scheduler(self.store, schedules_from_file(settings.handlers_file))
        self.notifier = Notifier.from_environ()  # removed from os.environ: children lack it
        self.systemd = SystemdStatus(self.notifier)
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
        for every in (self.heartbeat, self.renewer, self.rescuer, self.pruner):
            every.every.last = mono
        self.systemd.rate_mark = (mono, 0)
        try:
            self.scheduler.apply(now)
            self.hooks.start()
            self._guarded(self._rescue)  # a dead pool's jobs first: a burst run must see them
            for i in range(s.concurrency):
                self.children.spawn(i)
            while True:
                if self.signals and not self.stopping:
                    self._begin_shutdown()
                if self.signals >= 2:
                    log.warning("second signal: stopping now")
                    self.children.kill_all("interrupted: worker pool stopped at once")
                    break
                self._guarded(self.children.reap)
                if self.stopping:
                    if not self.children:
                        break
                    if time.monotonic() >= self.stop_deadline:
                        log.warning(
                            "shutdown timeout (%gs) reached: interrupting %d running job(s)",
                            s.shutdown_timeout, self.children.running_count(),
                        )  # fmt: skip
                        self.children.kill_all("interrupted: shutdown timeout reached")
                        break
                elif not self._guarded(self._respawn, True):
                    break  # burst: nothing left to do
                self.children.start_failures.check()
                self._guarded(self._periodic)
                self._sleep()
        finally:
            self._finish()
            self._restore_signals(saved)
        return 0

    def _sleep(self) -> None:
        timeout = TICK
        left = self.systemd.watchdog_left(time.monotonic())
        if left is not None:
            timeout = max(0.0, min(timeout, left))
        handles: list[object] = [c.proc.sentinel for c in self.children.by_index.values()]
        handles.append(self._wake_r)
        wait(handles, timeout)  # type: ignore[arg-type]
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _periodic(self) -> None:
        self.store.check_identity()  # FileReplaced: not retried by _guarded; run_pool exits 75
        mono = time.monotonic()
        children = self.children
        rows: list[RunningRow] | None = None
        if children.busy() and self.running_check.due(mono):
            children.check_deadlines(time.monotonic())
            rows = children.running_rows()
            children.check_cancels(rows)
        if self.renewer.every.due(mono):
            try:
                rows = rows if rows is not None else children.running_rows()
                self.renewer.renew(rows, children.healthy(), time.time())
            except TemporaryFailure:
                # the queue is away (a server restarting): try again in a second, not in a
                # third of a lease, or a short outage would cost the leases
                self.renewer.every.last = mono - self.renewer.every.period + 1.0
                raise
        if self.rescuer.every.due(mono):
            self._rescue()
            children.check_stopped(mono, time.time())
        if self.heartbeat.every.due(mono):
            self._heartbeat("stopping" if self.stopping else "running")
        if self.pruner.due(mono):
            self.pruner.prune(time.time())
        if self.roller.every.due(mono):
            self.roller.roll(time.time())
        self.hooks.poll(mono)
        if not self.stopping:
            self.scheduler.tick(mono, time.time())
        self.store.maintain()  # e.g. SQLite: readers cannot starve checkpoints
        if self.notifier.enabled:
            self.systemd.tick(mono, self._counts(), children.all_ready())

    def _respawn(self) -> bool:
        """Start children in empty places; False when a burst pool is done."""
        if not self.children.empty_places():
            return True
        if self.settings.burst and not self._has_work():
            return bool(self.children)
        self.children.respawn(time.monotonic())
        return True

    def _rescue(self) -> None:
        self.hooks.rescued(self.rescuer.rescue(time.time()))

    def _has_work(self) -> bool:
        s = self.settings
        self._rescue()  # a burst run must not leave while a dead pool holds jobs it could run
        return self.store.has_claimable(
            time.time(),
            ClaimFilter(tuple(self.types), tuple(s.type_globs) or None, tuple(s.queues) or None),
        )

    def _begin_shutdown(self) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.settings.shutdown_timeout
        log.info("stopping: letting %d running job(s) finish (up to %gs)",
                 self.children.running_count(), self.settings.shutdown_timeout)  # fmt: skip
        self.notifier.notify("STOPPING=1")
        self.children.ask_to_stop()
        self._heartbeat("stopping")

    def _finish(self) -> None:
        if self.children:
            try:
                self.children.kill_all("interrupted: worker pool stopped")
            except TemporaryFailure as e:
                log.warning("%s: the jobs of this pool's children are taken back when their "
                            "leases expire", e)  # fmt: skip
        self._heartbeat("stopped")
        self._guarded(lambda: self.hooks.poll(float("inf")))  # the last failures, then drain
        self.hooks.stop()
        self.children.shared.unlink()
        self.notifier.close()
        self.store.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        log.info("pool %s stopped after %d job(s)", self.pool_id, self.children.done())

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

    def _heartbeat(self, status: str) -> None:
        self.heartbeat.beat(time.time(), self.children.done(), status)

    def _counts(self) -> PoolCounts:
        c = self.children
        return PoolCounts(len(c), c.running_count(), c.done(), self.stopping)
