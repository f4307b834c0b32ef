"""The loader thread: reads what the dashboard shows whenever the queue file changes.

It owns its own `jobq.Queue` (one connection, used by this thread only) and wakes on
- a request from the UI (tab, page, filter or detail changed): answered at once;
- a change to the file (`Queue.waker()`, confirmed by `Queue.change_token()`):
  coalesced to at most one load per `min_interval` (10 a second), and fewer while changes keep
  coming and refreshing costs more than `cpu_budget` of a core (the process's CPU time, which
  counts the UI thread's redraw too: while workers drain a big file, the dashboard must not take
  their CPU; the interval grows up to `max_interval`). The event comes when a commit's
  frames are written to the `-wal`, which is before the commit is visible: a writer publishes it
  afterwards in the `-shm` index (after its fsync), and that write to a shared map sends no event.
  So after an event that shows no change yet, the change token is checked again at growing
  intervals (1 ms doubling to `settle_step`) for up to `settle` seconds;
- a slow fallback timer (`fallback`), so countdowns and "alive" states move even when nothing is
  written. Changes from other processes never wait for it.
While the user is pressing keys (`busy`), changes are coalesced harder (at most one load per
`busy_interval`) and slow counts wait (see `Counts`): every load costs CPU in both threads (its
queries here, a redraw on the UI thread), and on a big file being drained that competes with
answering the keys.
Each query is one short read transaction: nothing stays open between loads, so the WAL can be
checkpointed while the dashboard runs. A failed load (e.g. the PostgreSQL server restarting) is
reported once and retried on the next pass; the dashboard goes on when the queue answers again.
Every pass of the loop also checks (at most once a second) that the path still names the file it
opened; if not, the loader posts the `FileReplaced` error and stops, and the app exits 75.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobq import FileReplaced, HistoryReader, JobqError, Queue

from .data import Counts, OutputTail, Request, Snapshot, load

if TYPE_CHECKING:
    from jobq import Waiter

Post = Callable[[Snapshot | str | FileReplaced], None]
_FIRST_STEP = 0.001  # a commit's fsync and -shm update usually take about a millisecond


class Loader:
    """Load `Request`s in a background thread and hand each `Snapshot` (or an error) to `post`."""

    def __init__(
        self,
        db_path: str,
        post: Post,
        clock: Callable[[], float],
        *,
        min_interval: float = 0.1,
        busy_interval: float = 2.0,
        calm_after: float = 1.0,
        fallback: float = 2.0,
        settle: float = 1.0,
        settle_step: float = 0.01,
        watch: bool = True,
        cpu_budget: float = 0.05,
        max_interval: float = 2.0,
    ) -> None:
        self.db_path = db_path
        self._post = post
        self._clock = clock
        self._min_interval = min_interval
        self._busy_interval = busy_interval
        self._calm_after = calm_after
        self._busy_until = 0.0
        self._fallback = fallback
        self._settle = settle
        self._settle_step = settle_step
        self._watch = watch
        self._cpu_budget = cpu_budget
        self._max_interval = max_interval
        self._cpu_mark = time.process_time()  # the process's CPU time when the last load began
        self._lock = threading.Lock()
        self._request = Request()
        self._forced = True
        self._stopping = False
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._thread = threading.Thread(target=self._run, name="jobq-tui-loader", daemon=True)

    def start(self, request: Request) -> None:
        """Start the thread with a first request."""
        self._request = request
        self._thread.start()

    def request(self, request: Request) -> None:
        """Load `request` now (the latest one wins if several arrive during a load)."""
        with self._lock:
            self._request = request
            self._forced = True
        self._kick()

    def refresh(self) -> None:
        """Load the current request again now (after an action of ours)."""
        with self._lock:
            self._forced = True
        self._kick()

    def busy(self) -> None:
        """The user pressed a key: for `calm_after` seconds, refresh less eagerly."""
        self._busy_until = time.monotonic() + self._calm_after

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one load)."""
        self._stopping = True
        self._kick()
        if self._thread.is_alive():
            self._thread.join(5)
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _kick(self) -> None:
        # OSError: a wake-up is already pending (pipe full), or we are closing
        with contextlib.suppress(OSError):
            os.write(self._w, b"x")

    def _run(self) -> None:
        try:
            q = Queue(self.db_path, create=False)  # make_app created it if it may
        except JobqError as e:
            self._post(str(e))
            return
        waker = q.waker() if self._watch else None
        try:
            self._loop(q, waker)
        finally:
            if waker is not None:
                waker.close()
            q.close()

    def _loop(self, q: Queue, waker: Waiter | None) -> None:
        version: int | None = None
        counts = Counts()
        output = OutputTail()  # the detail view's live output, read on from where it was
        history = HistoryReader()  # the Metrics view's rows, fetched once each
        last_load = 0.0
        settle_until = 0.0  # a wake-up showed no change yet: look again until then
        step = _FIRST_STEP
        failed = ""  # the error last posted: an outage is reported once, not every pass
        pause = 0.0  # after a failed load: wait this long (growing) before the next try
        while not self._stopping:
            # the waker's descriptor may change (a server connection is re-established after a
            # restart) or be missing for a while: ask each pass
            fd = waker.fileno() if waker is not None else -1
            fds = [self._r] if fd < 0 else [self._r, fd]
            # without a descriptor, poll the change token (one cheap query) a few times a second
            tick = self._fallback if fd >= 0 else min(self._fallback, 0.25)
            with self._lock:
                forced, self._forced = self._forced, False
                req = self._request
            try:
                q.check_identity()
                changed = q.change_token() != version
                if changed:
                    settle_until = 0.0
                due = time.monotonic() - last_load >= self._fallback
                if forced or changed or due:
                    if not forced and changed:
                        # coalesce bursts of commits (workers draining) into <= 10 loads/s,
                        # and into one per `busy_interval` while keys are being pressed
                        wait = self._interval() - (time.monotonic() - last_load)
                        if wait > 0:
                            # in short naps, so that the end of a burst of keys is noticed
                            if self._sleep(min(wait, self._min_interval)):
                                self._drain_pipe()  # a request arrived: load it at once
                            continue
                    version = q.change_token()
                    last_load = time.monotonic()
                    self._cpu_mark = time.process_time()
                    counts.defer_slow = self._is_busy()
                    self._post(load(q, req, self._clock(), counts, output, history))
                failed, pause = "", 0.0
            except FileReplaced as e:
                self._post(e)
                return
            except JobqError as e:
                if str(e) != failed or forced:
                    self._post(str(e))
                failed = str(e)
                version = None  # whatever happened meanwhile: load again once it works
                pause = min(2.0, max(0.25, pause * 2))
            now = time.monotonic()
            timeout = min(max(0.0, self._fallback - (now - last_load)), tick)
            if now < settle_until:
                timeout = min(timeout, step)
                step = min(step * 2, self._settle_step)
            if failed:
                timeout = max(timeout, pause)  # never a busy loop while the queue is away
            select.select(fds, [], [], timeout)
            if waker is not None and waker.drain():
                # the commit behind this event may not be visible yet (see the module doc)
                settle_until = time.monotonic() + self._settle
                step = _FIRST_STEP
            self._drain_pipe()

    def _is_busy(self) -> bool:
        return time.monotonic() < self._busy_until

    def _interval(self) -> float:
        """How long after the last load a change may be loaded: at once when the last load and
        its redraw were cheap, else as long as keeps this process (its queries here, the UI
        thread's redraw) within `cpu_budget` of a core since that load began. The first
        change after a quiet spell is loaded at once; the next waits for what the last cost,
        so a burst of commits (workers draining) is not redrawn at 10 a second."""
        if self._is_busy():
            return self._busy_interval
        used = time.process_time() - self._cpu_mark
        return min(self._max_interval, max(self._min_interval, used / self._cpu_budget))

    def _sleep(self, seconds: float) -> bool:
        """Sleep, but wake early (True) when the UI asks for something."""
        ready, _, _ = select.select([self._r], [], [], seconds)
        return bool(ready)

    def _drain_pipe(self) -> None:
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
