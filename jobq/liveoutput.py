"""Live output and progress of running jobs: the records, the limits, and `Job.progress`'s hook.

A pool keeps what a running attempt writes (a command's stdout and stderr, a Python handler's
prints and `logging` records) in the queue, in chunks flushed at most once per FLUSH_EVERY while
it runs and once when it ends (jobq.pool.capture). Per attempt, the first OUTPUT_HEAD bytes are
kept as they come; past them, only the last OUTPUT_TAIL bytes, written when the attempt ends
after one marker line `[output truncated: N bytes dropped]`: about 1 MiB in all, the start (what
the job set out to do) and the end (how it ended) of a runaway log. Output is kept as text,
decoded as UTF-8 with replacement characters.

A Python handler reports progress with `job.progress(0.4, "40 of 100 resized")`; the pool
installs the hook that receives it (`install`) for the duration of the attempt, and stores the
latest value with the next flush.
"""

from __future__ import annotations

import math

from .model import record  # not dataclasses: `jobq ls` start-up (jobq.model)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .backend import Backend
    from .model import Job

FLUSH_EVERY = 1.0  # seconds between two writes of a running attempt's output and progress
OUTPUT_HEAD = 960 * 1024  # bytes of an attempt's output kept from its start
OUTPUT_TAIL = 64 * 1024  # and, past them, from its end
PROGRESS_MESSAGE_LIMIT = 200  # characters of a progress message kept
STREAMS = ("stdout", "stderr", "log", "jobq")  # `jobq`: the pool's own marker lines


def truncated_marker(dropped: int) -> str:
    """The line that stands for the output dropped between the kept start and end."""
    return f"[output truncated: {dropped} bytes dropped]\n"


@record
class OutputChunk:
    """One flushed piece of a running attempt's output: `seq` orders them within the attempt."""

    job_id: int
    attempt: int
    seq: int
    at: float
    stream: str  # stdout, stderr, log (a Python handler's logging) or jobq (a marker)
    text: str

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of `jobq logs --json`-like uses."""
        return {"job_id": self.job_id, "attempt": self.attempt, "seq": self.seq, "at": self.at,
                "stream": self.stream, "text": self.text}  # fmt: skip


@record
class JobProgress:
    """The latest progress a handler reported for an attempt of a job."""

    job_id: int
    attempt: int
    fraction: float
    message: str | None
    at: float

    def percent(self) -> str:
        """The fraction as people read it: "40%"."""
        return f"{math.floor(self.fraction * 100):d}%"

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of the `progress` field of `jobq ls --json` and `jobq show --json`."""
        return {"fraction": self.fraction, "message": self.message, "attempt": self.attempt,
                "at": self.at}  # fmt: skip


def clean_text(text: str) -> str:
    """`text` as every backend can store it: a NUL (which PostgreSQL text refuses) becomes
    U+FFFD, and so does a lone surrogate (which is not UTF-8; a handler may print one)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def check_progress(fraction: object, message: object = None) -> tuple[float, str | None]:
    """The checked progress: a fraction in [0, 1] (ValueError otherwise; TypeError for what is
    not a number) and a message cut to PROGRESS_MESSAGE_LIMIT characters."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"progress is a number from 0 to 1, not {type(fraction).__name__}")
    value = float(fraction)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"progress is a number from 0 to 1, not {fraction!r}")
    if message is not None and not isinstance(message, str):
        raise TypeError(f"a progress message is a str, not {type(message).__name__}")
    if message is not None and len(message) > PROGRESS_MESSAGE_LIMIT:
        message = message[: PROGRESS_MESSAGE_LIMIT - 1] + "…"
    return value, None if message is None else clean_text(message)


_reporters: dict[tuple[int, str | None], Callable[[float, str | None], None]] = {}


def install(job_id: int, token: str | None, reporter: Callable[[float, str | None], None]) -> None:
    """Route `progress()` of the job holding this lease to `reporter` (the pool, per attempt)."""
    _reporters[(job_id, token)] = reporter  # one dict operation: atomic, no lock needed


def uninstall(job_id: int, token: str | None) -> None:
    """Stop routing progress of this attempt (it has ended)."""
    _reporters.pop((job_id, token), None)


def report(job_id: int, token: str | None, fraction: object, message: object = None) -> None:
    """Check a progress report and hand it to the attempt's reporter; RuntimeError outside a
    worker running this attempt (a Job read with `jobq.Queue.get`, or after its attempt ended)."""
    value, text = check_progress(fraction, message)
    reporter = _reporters.get((job_id, token))
    if reporter is None:
        raise RuntimeError(
            f"job {job_id}: progress() reports only from its handler while a jobq worker runs it"
        )
    reporter(value, text)


PAGE = 1000  # chunks read per query
FOLLOW_FALLBACK = 1.0  # seconds: a wake-up is a hint; this catches anything a waker missed
FOLLOW_STEP = 0.05  # after a wake-up, let the commit settle (and a busy pool's commits pile up)


def attempt_ended(job: Job, attempt: int) -> bool:
    """Whether attempt number `attempt` of `job` is over (or will never run: the job finished
    before it started)."""
    if job.attempts > attempt:
        return True
    if job.attempts == attempt:
        return job.state.value != "running"
    return job.state.value in ("succeeded", "failed", "cancelled")


def read_output(backend: Backend, job_id: int, attempt: int, after: int = 0) -> list[OutputChunk]:
    """Every chunk of an attempt's output with seq > `after`, in order."""
    out: list[OutputChunk] = []
    while True:
        page = backend.output(job_id, attempt, after=after, limit=PAGE)
        out += page
        if len(page) < PAGE:
            return out
        after = page[-1].seq


def follow_output(
    backend: Backend, job_id: int, attempt: int | None, location: str
) -> Iterator[OutputChunk]:
    """The output of an attempt as it is written, until the attempt ends (JobNotFound for a job
    that is not there, or is deleted meanwhile). `attempt` None: the running attempt, or for a
    pending job the next one (waited for), or for a finished job its last one.

    Wakes on the backend's waker (the pool's flushes are commits), never busy-polls: the state
    is read before the output, so the read after the attempt's end is seen has all of it (the
    pool writes an attempt's last output before it records its end).
    """
    import time

    from .errors import JobNotFound

    def get() -> Job:
        job = backend.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id} in {location}")
        return job

    waker = backend.waker()  # armed before the first read
    try:
        job = get()
        if attempt is None:
            attempt = job.attempts + 1 if job.state.value == "pending" else max(job.attempts, 1)
        cursor = 0
        seen_running = False
        while True:
            # an attempt given back uncounted (a shutdown, a snooze) runs again under the same
            # number, and its output starts again: for this follower, that attempt has ended
            given_back = seen_running and job.attempts < attempt
            seen_running = seen_running or (
                job.attempts == attempt and job.state.value == "running"
            )
            ended = given_back or attempt_ended(job, attempt)
            page = read_output(backend, job_id, attempt, cursor)
            if page:
                cursor = page[-1].seq
                yield from page
            if ended:
                return
            if waker.wait(FOLLOW_FALLBACK):
                time.sleep(FOLLOW_STEP)
                waker.drain()
            job = get()
    finally:
        waker.close()
