"""Failure hooks: `jobq work --on-failure CMD` and `@jobq.on_failure` functions, run when a job
ends `failed` for good.

They run in the supervisor, on a thread of their own, one job at a time, after the failure is
committed: a slow or failing hook never delays a child, a claim or a record, and never changes a
job. Which pool runs the hook: the pool whose worker ran the failed attempt (the supervisor reads
new failed attempts from the queue, so a child's failure and a timeout or crash the supervisor
recorded are found the same way), or the pool whose rescue failed the job.

A command gets the job as JSON on stdin (`jobq show --json`'s fields, with its attempt history),
runs without a shell in a session of its own, and is killed (its whole group) after HOOK_TIMEOUT;
a non-zero exit is logged with its last stderr line. At most QUEUE_LIMIT jobs wait for their
hooks (more are logged and skipped: the jobs stay failed in the queue, `jobq errors` lists them);
at shutdown the pool waits up to DRAIN_TIMEOUT for the hooks already queued.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from ..basics import JobState
from ..safetext import safe_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..backend import Backend
    from ..model import Job

log = logging.getLogger("jobq.hooks")

HOOK_TIMEOUT = 60.0
QUEUE_LIMIT = 10_000
DRAIN_TIMEOUT = 5.0
POLL_EVERY = 0.5
_BATCH = 10_000  # failed attempts read per poll

HookFunc = Callable[["Job"], object]


class FailureHooks:
    """Finds this pool's jobs that ended failed and runs the hooks for each, in order."""

    def __init__(
        self,
        store: Backend,
        pool_id: str,
        commands: Sequence[Sequence[str]],
        funcs: Sequence[HookFunc],
    ) -> None:
        self.store = store
        self.prefix = pool_id + "/"
        self.commands = [tuple(c) for c in commands]
        self.funcs = list(funcs)
        self.cursor = 0
        self.next_poll = 0.0
        self.jobs: queue.Queue[Job | None] = queue.Queue(QUEUE_LIMIT)
        self.thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.commands or self.funcs)

    def start(self) -> None:
        """Begin after the newest failed attempt of now: earlier failures are not this run's."""
        if not self.enabled:
            return
        newest = self.store.errors(limit=1)
        self.cursor = newest[0].attempt.id if newest else 0
        self.thread = threading.Thread(target=self._run, name="jobq-hooks", daemon=True)
        self.thread.start()

    def poll(self, mono: float) -> None:
        """Queue the hooks of this pool's failures committed since the last poll."""
        if not self.enabled or mono < self.next_poll:
            return
        self.next_poll = mono + POLL_EVERY
        rows = self.store.errors(after=self.cursor, limit=_BATCH)
        if not rows:
            return
        self.cursor = max(r.attempt.id for r in rows)
        ours = sorted((r for r in rows if (r.attempt.worker_id or "").startswith(self.prefix)),
                      key=lambda r: r.attempt.id)  # fmt: skip
        self._queue_failed([r.attempt.job_id for r in ours])

    def rescued(self, results: Sequence[tuple[int, JobState]]) -> None:
        """Queue the hooks of the jobs this pool's rescue failed."""
        if self.enabled:
            self._queue_failed([i for i, state in results if state is JobState.FAILED])

    def _queue_failed(self, job_ids: list[int]) -> None:
        if not job_ids:
            return
        by_id = {j.id: j for j in self.store.get_many(job_ids)}
        for job_id in dict.fromkeys(job_ids):
            job = by_id.get(job_id)
            if job is None or job.state is not JobState.FAILED:
                continue  # retried meanwhile, or pruned: nothing failed for good
            try:
                self.jobs.put_nowait(job)
            except queue.Full:
                log.warning("failure hooks are %d jobs behind: skipping job %d", QUEUE_LIMIT,
                            job.id)  # fmt: skip

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Let the queued hooks finish for up to `timeout` seconds, then leave them."""
        if self.thread is None:
            return
        with contextlib.suppress(queue.Full):
            self.jobs.put(None, timeout=timeout)
        self.thread.join(timeout)
        left = self.jobs.qsize()
        if self.thread.is_alive() and left:
            log.warning("stopping with %d job(s) whose failure hooks did not run", left)
        elif self._thread_store is not None:
            self._thread_store.close()

    # ---- the hook thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            for func in self.funcs:
                try:
                    func(job)
                except Exception as e:  # a user's hook: its failure is logged, never fatal
                    log.error("failure hook %s for job %d raised %s: %s",
                              getattr(func, "__qualname__", func), job.id, type(e).__name__,
                              safe_line(str(e), 300))  # fmt: skip
            if self.commands:
                document = self._document(job)
                for argv in self.commands:
                    run_hook(argv, document, job.id)

    def _document(self, job: Job) -> bytes:
        d = job.to_dict()
        try:
            d["attempts_history"] = [a.to_dict() for a in self.store_for_thread().attempts(job.id)]
        except Exception as e:  # the history is a courtesy: the hook runs without it
            log.warning("failure hook for job %d: history unavailable (%s)", job.id, e)
        return json.dumps(d, ensure_ascii=False).encode()

    _thread_store: Backend | None = None

    def store_for_thread(self) -> Backend:
        """The hook thread's own read connection (a connection is not shared across threads)."""
        if self._thread_store is None:
            from ..backend import Role, open_backend

            self._thread_store = open_backend(self.store.location, Role.READER)
        return self._thread_store


def run_hook(argv: Sequence[str], document: bytes, job_id: int) -> int | None:
    """Run one hook command with `document` on stdin; its exit status (None: killed, timed out
    or not started). Never raises."""
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    except OSError as e:
        log.error("failure hook %r for job %d could not start: %s", argv[0], job_id,
                  e.strerror or e)  # fmt: skip
        return None
    started = time.monotonic()
    try:
        _, err = proc.communicate(document, timeout=HOOK_TIMEOUT)
    except subprocess.TimeoutExpired:
        with_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        log.error("failure hook %r for job %d ran over %gs: killed", argv[0], job_id, HOOK_TIMEOUT)
        return None
    finally:
        with_group(proc.pid, signal.SIGKILL)  # what it left behind in its session goes too
    if proc.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
        log.error("failure hook %r for job %d exited with status %d%s", argv[0], job_id,
                  proc.returncode, ": " + safe_line(last[0], 300) if last else "")  # fmt: skip
    else:
        log.info("failure hook %r for job %d done in %.2fs", argv[0], job_id,
                 time.monotonic() - started)  # fmt: skip
    return proc.returncode


def with_group(pgid: int, sig: int) -> None:
    """Signal a process group that may be gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
