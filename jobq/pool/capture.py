"""A worker child's live output: what the running attempt writes, flushed to the queue as it runs.

The child runs one job at a time. `LiveOutput.begin(job)` starts an attempt; its handler's output
arrives through `add` (text: a Python handler's prints and logging records) or `add_bytes` (a
command's pipes, decoded as UTF-8 with replacement, a character split across two reads kept
whole), its progress through `progress`. A flusher thread, started at the first output of the
child's life, writes what has come at most once per FLUSH_EVERY (one transaction per flush, on a
connection of its own) while the attempt runs; `end()` hands back what is left, which the child
writes with its next batch of results (one transaction for the batch: a short chatty job costs
one write per batch, not one per job). An attempt that writes nothing costs nothing but two
dictionary operations (the progress hook).

Every write is fenced on the attempt's lease token: once one is refused (the lease was lost),
the attempt's output is dropped. Output is capped per attempt (jobq.liveoutput: the first
OUTPUT_HEAD bytes, then the last OUTPUT_TAIL after one marker line).
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections import deque

from .. import liveoutput
from ..errors import JobqError
from ..liveoutput import FLUSH_EVERY, OUTPUT_HEAD, OUTPUT_TAIL, clean_text, truncated_marker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..backend import Backend, OutputWrite
    from ..model import Job

log = logging.getLogger("jobq.worker")

Rows = list[tuple[int, float, str, str]]


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


class LiveOutput:
    """The live output and progress of the attempt this child is running."""

    def __init__(self, location: str, flush_every: float = FLUSH_EVERY) -> None:
        self.location = location
        self.flush_every = flush_every
        self._lock = threading.Lock()  # guards the attempt's buffers
        self._flushing = threading.Lock()  # one flush at a time, so seq follow commit order
        self._wake = threading.Condition(self._lock)
        self._job: Job | None = None
        self._thread: threading.Thread | None = None
        self._store: Backend | None = None
        self._closed = False
        self._touched = False
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}  # a command's, per stream
        self._reset()

    def _reset(self) -> None:
        self._pending: list[tuple[str, float, str]] = []  # (stream, at, text) not yet written
        self._progress: tuple[float, str | None, float] | None = None
        self._kept = 0  # bytes of the head kept (written or pending)
        self._tail: deque[tuple[str, float, str]] = deque()
        self._tail_size = 0
        self._dropped = 0
        self._seq = 0
        self._first = True  # no write of this attempt yet
        self._lost = False  # a write was refused: the lease is gone
        self._last_flush = time.monotonic()

    # ---- the attempt ----------------------------------------------------------------------

    def begin(self, job: Job) -> None:
        """Start capturing for `job`'s attempt (and route its `progress()` here)."""
        # no lock, nothing allocated: a job that writes nothing must cost (almost) nothing; the
        # buffers are reset by the attempt's first output (`_touch`)
        self._job = job
        self._touched = False
        self._lost = False  # a refusal is the previous attempt's: this one may write
        if self._decoders:
            self._decoders = {}
        liveoutput.install(job.id, job.lease_token, self.progress)

    def _touch(self) -> None:
        """The attempt's first output or progress (lock held): fresh buffers."""
        job = self._job
        self._reset()
        self._job = job
        self._touched = True

    def end(self) -> OutputWrite | None:
        """Stop capturing; what is left to write for the attempt (None: nothing)."""
        job = self._job
        if job is None:
            return None
        liveoutput.uninstall(job.id, job.lease_token)
        if not self._touched:
            self._job = None
            return None
        with self._flushing, self._lock:
            for stream in list(self._decoders):
                rest = self._decoders.pop(stream).decode(b"", final=True)
                if rest:
                    self._add(stream, rest)
            if self._dropped or self._tail:
                self._pending.append(("jobq", time.time(), truncated_marker(self._dropped)))
                self._pending.extend(self._tail)
                self._tail.clear()
            item = self._take()
            self._job = None
        return item

    def add(self, stream: str, text: str) -> None:
        """Some text the running handler wrote to `stream` (stdout, stderr or log)."""
        if not text:
            return
        with self._lock:
            if self._job is None or self._lost:
                return
            if not self._touched:
                self._touch()
            self._add(stream, text)
            if self._thread is None:
                self._start()
            self._wake.notify()

    def add_bytes(self, stream: str, data: bytes) -> None:
        """Some bytes a command wrote to `stream`."""
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        self.add(stream, decoder.decode(data))

    def progress(self, fraction: float, message: str | None) -> None:
        """The handler's latest (checked) progress: written with the next flush."""
        with self._lock:
            if self._job is None or self._lost:
                return
            if not self._touched:
                self._touch()
            self._progress = (fraction, message, time.time())
            if self._thread is None:
                self._start()
            self._wake.notify()

    def _add(self, stream: str, text: str) -> None:
        text = clean_text(text)
        now = time.time()
        size = _size(text)
        room = OUTPUT_HEAD - self._kept
        if room > 0:
            if size <= room:
                self._append(self._pending, stream, now, text)
                self._kept += size
                return
            head = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            self._append(self._pending, stream, now, head)
            self._kept = OUTPUT_HEAD
            text = text[len(head) :]
            size = _size(text)
        self._append(self._tail, stream, now, text)
        self._tail_size += size
        while self._tail_size > OUTPUT_TAIL:
            s, at, old = self._tail.popleft()
            n = _size(old)
            over = self._tail_size - OUTPUT_TAIL
            if n > over:  # keep the end of this piece
                cut = old.encode("utf-8", "replace")[over:].decode("utf-8", "ignore")
                self._tail.appendleft((s, at, cut))
                self._dropped += n - _size(cut)
                self._tail_size -= n - _size(cut)
                break
            self._dropped += n
            self._tail_size -= n

    @staticmethod
    def _append(rows: list[tuple[str, float, str]] | deque[tuple[str, float, str]],
                stream: str, at: float, text: str) -> None:  # fmt: skip
        # consecutive pieces of one stream make one row
        if rows and rows[-1][0] == stream:
            s, first_at, old = rows[-1]
            rows[-1] = (s, first_at, old + text)
        else:
            rows.append((stream, at, text))

    def _take(self) -> OutputWrite | None:
        """The pending rows and progress as one write (lock held); None when there is none."""
        job = self._job
        if job is None or self._lost or (not self._pending and self._progress is None):
            return None
        assert job.lease_token is not None
        rows: Rows = []
        for stream, at, text in self._pending:
            self._seq += 1
            rows.append((self._seq, at, stream, text))
        item = (job.id, job.lease_token, job.attempts, self._first, rows, self._progress)
        self._pending, self._progress, self._first = [], None, False
        return item

    def refused(self) -> None:
        """A write of this attempt was fenced off: drop the rest of its output."""
        with self._lock:
            self._lost = True
            self._pending.clear()
            self._tail.clear()
            self._progress = None

    # ---- the flusher thread ---------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobq-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not (self._job is not None and not self._lost
                                                and (self._pending or self._progress)):  # fmt: skip
                    self._wake.wait()
                if self._closed:
                    return
                due = self._last_flush + self.flush_every - time.monotonic()
                if due > 0:
                    self._wake.wait(due)
                    continue
            self.flush()

    def flush(self) -> None:
        """Write what the running attempt has produced so far (the flusher thread)."""
        with self._flushing:
            with self._lock:
                item = self._take()
                self._last_flush = time.monotonic()
            if item is None:
                return
            try:
                if self._store is None:
                    from ..backend import Role, open_backend

                    self._store = open_backend(self.location, Role.WORKER)
                ok = self._store.write_output([item])[0]
            except JobqError as e:  # busy, disk full, server away: this part is lost
                log.warning("job %d: live output not written: %s", item[0], e)
                return
            except Exception as e:  # a bug must not end the flusher: the job runs on regardless
                log.error("job %d: live output not written: %s: %s", item[0], type(e).__name__, e)
                return
            if not ok:
                log.warning("lease lost: job %d: live output not written", item[0])
                self.refused()

    def close(self) -> None:
        """Stop the flusher thread and close its connection."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(5)
        if self._store is not None:
            self._store.close()
