"""Why a job is not running yet, and which failures look alike: backend-neutral diagnoses.

`diagnose_job` is the one answer to "why is it waiting", used by `jobq show`, `jobq ls` and
the dashboard. It takes plain values (the job, the registered pools, the paused queues, now) and
mirrors the claim's rules exactly: a pool claims a job when the job is due, its queue is not
paused, the pool is alive and running, takes the job's queue (or every queue), has a handler
for its type and, when started with `--type GLOB`s, the type matches one of them (SQLite GLOB:
case-sensitive `*`, `?`, `[...]`, `[^...]`).

Texts name values read from the queue file (types, queues, pool names): callers make them safe
for a terminal (`jobq.safe_line`) before showing them.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from functools import lru_cache

from .basics import JobState
from .model import FailedAttempt, Job, WorkerInfo, record
from .values import format_duration as _span

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    import re

    from .basics import JSONValue
    from .limits import LimitStatus

__all__ = [
    "Diagnosis",
    "ErrorGroup",
    "WaitReason",
    "diagnose_job",
    "exception_line",
    "fingerprint",
    "first_frame",
    "glob_match",
    "group_errors",
    "pool_alive",
    "pool_takes",
]


class WaitReason(str, enum.Enum):
    """What a pending or running job is waiting for (the `code` of a Diagnosis)."""

    DEPENDENCY = "dependency"  # waiting for jobs it runs after (`enqueue --after`) to succeed
    SCHEDULED = "scheduled"  # not due yet, never tried
    BACKOFF = "backoff"  # not due yet: waiting to retry after a failed attempt
    PAUSED = "queue_paused"
    NO_POOL = "no_pool"  # no live, running pool at all
    NO_POOL_FOR_QUEUE = "no_pool_for_queue"
    NO_POOL_FOR_TYPE = "no_pool_for_type"
    LIMITED = "limited"  # due, but a limit across pools (jobq limit) holds it back
    BUSY = "busy"  # every pool that would claim it has all its workers busy
    DUE = "due"  # a pool with a free worker should claim it in a moment
    RUNNING = "running"
    CANCELLING = "cancelling"  # running, and a cancel was requested
    POOL_DEAD = "pool_dead"  # running under a pool that stopped heartbeating
    LEASE_EXPIRED = "lease_expired"  # running, its pool alive, but the lease ran out


@record
class Diagnosis:
    """Why a job is where it is: a stable code and one line for a person."""

    code: WaitReason
    text: str

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used by `jobq show --json` (`"waiting"`)."""
        return {"code": self.code.value, "text": self.text}


# ---- pools ------------------------------------------------------------------------------------


def pool_alive(pool: WorkerInfo, now: float) -> bool:
    """Whether a registered pool is alive (the one liveness test every view uses)."""
    return pool.alive(now)


# A GLOB pattern as tokens, one per character it matches but "*": "*", "?", a literal
# character, or a set (ranges, negated); None: the pattern matches nothing (an unterminated set).
_Token = str | tuple[tuple[tuple[str, str], ...], bool]


@lru_cache(maxsize=256)
def _glob_tokens(pattern: str) -> tuple[_Token, ...] | None:
    out: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c != "[":
            out.append(c if c in "*?" else "=" + c)
            continue
        j = i
        negate = j < n and pattern[j] == "^"
        if negate:
            j += 1
        k = j + 1 if j < n and pattern[j] == "]" else j  # a leading ] is a member
        while k < n and pattern[k] != "]":
            k += 1
        if k >= n:  # SQLite: an unterminated set matches nothing
            return None
        # As SQLite's patternCompare reads a set: every character is a member as it is read;
        # "-" and a next character (not the closing "]") then make a range from the character
        # before, which a reversed range leaves at that one member. A leading "]", a "-" with
        # no character before it (first, or just after a range) and a "-" last are members.
        body, members, m = pattern[j:k], [], 0
        prior: str | None = None
        if k > j and pattern[j] == "]":
            members.append(("]", "]"))
            m = 1
        while m < len(body):
            ch = body[m]
            if ch == "-" and prior is not None and m + 1 < len(body):
                if prior <= body[m + 1]:
                    members.append((prior, body[m + 1]))
                prior, m = None, m + 2
            else:
                members.append((ch, ch))
                prior, m = ch, m + 1
        out.append((tuple(members), negate))
        i = k + 1
    return tuple(out)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """The pattern as a Python regular expression (PostgreSQL's claim translates this one)."""
    import re

    tokens = _glob_tokens(pattern)
    if tokens is None:
        return re.compile("(?!)")
    out = []
    for t in tokens:
        if isinstance(t, tuple):
            members, negate = t
            if members:
                body = "".join(re.escape(a) if a == b else f"{re.escape(a)}-{re.escape(b)}"
                               for a, b in members)  # fmt: skip
                out.append(("[^" if negate else "[") + body + "]")
            else:
                out.append("." if negate else "(?!)")
        else:
            out.append(".*" if t == "*" else "." if t == "?" else re.escape(t[1]))
    return re.compile("".join(out), re.S)


def _one(t: _Token, ch: str) -> bool:
    if isinstance(t, tuple):
        return any(a <= ch <= b for a, b in t[0]) is not t[1]
    return t == "?" or t[1] == ch


def glob_match(pattern: str, text: str) -> bool:
    """Whether `text` matches `pattern` as SQLite's GLOB does (what the claim uses), without
    `re` (`jobq ls` start-up): every token but "*" matches one character, so one backtrack
    point, the last "*", is enough."""
    tokens = _glob_tokens(pattern)
    if tokens is None:
        return False
    ti = pi = 0
    star, mark = -1, 0
    while ti < len(text):
        if pi < len(tokens) and tokens[pi] == "*":
            star, mark = pi, ti
            pi += 1
        elif pi < len(tokens) and _one(tokens[pi], text[ti]):
            ti += 1
            pi += 1
        elif star >= 0:
            pi, mark = star + 1, mark + 1
            ti = mark
        else:
            return False
    while pi < len(tokens) and tokens[pi] == "*":
        pi += 1
    return pi == len(tokens)


def _globby(name: str) -> bool:
    return "*" in name or "?" in name or "[" in name


def _claim_filter(pool: WorkerInfo) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(handler names, --type globs) of a pool."""
    if pool.type_globs is not None:
        return pool.types, pool.type_globs
    # Registered before globs had their own column: `types` held both.
    names = tuple(t for t in pool.types if not _globby(t))
    return names, tuple(t for t in pool.types if _globby(t))


def pool_takes(pool: WorkerInfo, job: Job) -> str | None:
    """None if the pool's filters let it claim the job; else why not: 'queue' or 'type'."""
    if pool.queues and job.queue not in pool.queues:
        return "queue"
    names, globs = _claim_filter(pool)
    if pool.type_globs is None and not names:  # old record of globs only: no names to check
        ok = any(glob_match(g, job.type) for g in globs)
    else:
        ok = job.type in names and (not globs or any(glob_match(g, job.type) for g in globs))
    return None if ok else "type"


def _why_not_type(pool: WorkerInfo, job: Job) -> str:
    names, globs = _claim_filter(pool)
    if job.type in names or (pool.type_globs is None and not names):
        return f"pool {_q(pool.name)} takes only --type " + " ".join(_q(g) for g in globs)
    shown = ", ".join(_q(t) for t in names[:4]) + (", …" if len(names) > 4 else "")
    return f"pool {_q(pool.name)} has no handler for it (handlers: {shown or 'none'})"


# ---- the diagnosis ----------------------------------------------------------------------------


def diagnose_job(
    job: Job,
    pools: Sequence[WorkerInfo],
    paused: Collection[str],
    now: float,
    limits: Sequence[LimitStatus] = (),
    after: Sequence[tuple[int, JobState | None]] = (),
) -> Diagnosis | None:
    """Why a pending job is not running, or how a running one is doing; None when finished.

    `limits` are the queue's limits across pools (`Queue.limits()`); `after` is the job's
    dependencies with their states (`Queue.dependencies`): those that have not succeeded hold
    it back.
    """
    if job.state is JobState.RUNNING:
        return _running(job, pools, now)
    if job.state is not JobState.PENDING:
        return None
    found: list[Diagnosis] = []  # every reason that holds, the one to act on first
    unmet = [(i, s) for i, s in after if s is not JobState.SUCCEEDED]
    if unmet:
        found.append(Diagnosis(WaitReason.DEPENDENCY, waiting_for(unmet)))
    if job.queue in paused:
        found.append(Diagnosis(WaitReason.PAUSED, f"queue {_q(job.queue)} is paused"))
    pool_reason, able = _pools_for(job, pools, now)
    if pool_reason is not None:
        found.append(pool_reason)
    if job.run_at > now:
        at = f"at {_iso(job.run_at)} (in {_span(job.run_at - now)})"
        if job.attempts:
            limit = job.max_attempts if job.max_attempts is not None else "?"
            found.append(Diagnosis(WaitReason.BACKOFF, f"retry {job.attempts + 1}/{limit} {at}"))
        else:
            found.append(Diagnosis(WaitReason.SCHEDULED, f"scheduled {at}"))
    if found:
        return Diagnosis(found[0].code, "; ".join(d.text for d in found))
    if limits:
        from .limits import describe_hold

        held = describe_hold(job.type, job.queue, limits, now)
        if held is not None:
            return Diagnosis(WaitReason.LIMITED, held)
    free = [p for p in able if len(p.current_jobs) < p.concurrency]
    if not free:
        used = sum(len(p.current_jobs) for p in able)
        slots = sum(p.concurrency for p in able)
        who = f"pool {_q(able[0].name)} is" if len(able) == 1 else f"all {len(able)} pools are"
        return Diagnosis(WaitReason.BUSY, f"every worker that can run it is busy: {who} full "
                         f"({used}/{slots}); it runs when one frees up")  # fmt: skip
    return Diagnosis(WaitReason.DUE, f"due now: a free worker of pool {_q(free[0].name)} "
                     "should claim it in a moment")  # fmt: skip


def waiting_for(unmet: Sequence[tuple[int, JobState | None]], shown: int = 3) -> str:
    """ "waiting for job 12 (running)", "waiting for jobs 12 (running), 13 (pending)": the
    first `shown` of the dependencies that have not succeeded, and how many more."""
    words = [f"{i} ({'deleted' if s is None else s.value})" for i, s in unmet[:shown]]
    more = f" and {len(unmet) - shown} more" if len(unmet) > shown else ""
    return f"waiting for job{'s' if len(unmet) > 1 else ''} {', '.join(words)}{more}"


def _pools_for(
    job: Job, pools: Sequence[WorkerInfo], now: float
) -> tuple[Diagnosis | None, list[WorkerInfo]]:
    """The pool-side reason the job cannot be claimed (or None) and the pools that would."""
    alive = [p for p in pools if pool_alive(p, now)]
    running = [p for p in alive if p.status == "running"]  # a stopping pool claims nothing
    if not running:
        text = "no worker pool is running"
        if alive:
            text += f" (pool {_q(alive[0].name)} is stopping)"
        else:
            # the most recent dead pool that would have taken it says what used to run it
            gone = [p for p in pools if pool_takes(p, job) is None and p.status != "stopped"]
            if gone:
                last = max(gone, key=lambda p: p.heartbeat_at)
                text += (f" (pool {_q(last.name)} that took it last heartbeated "
                         f"{_span(now - last.heartbeat_at)} ago)")  # fmt: skip
        return Diagnosis(WaitReason.NO_POOL, text), []
    by_queue = [p for p in running if pool_takes(p, job) != "queue"]
    if not by_queue:
        takes = "; ".join(f"{_q(p.name)}: " + ", ".join(_q(x) for x in p.queues)
                          for p in running[:3])  # fmt: skip
        return Diagnosis(WaitReason.NO_POOL_FOR_QUEUE, f"no live pool takes queue {_q(job.queue)} "
                         f"(queues taken: {takes})"), []  # fmt: skip
    able = [p for p in by_queue if pool_takes(p, job) is None]
    if not able:
        why = "; ".join(_why_not_type(p, job) for p in by_queue[:3])
        return Diagnosis(WaitReason.NO_POOL_FOR_TYPE,
                         f"no live pool handles type {_q(job.type)}: {why}"), []  # fmt: skip
    return None, able


def _running(job: Job, pools: Sequence[WorkerInfo], now: float) -> Diagnosis:
    pool_id = (job.worker_id or "").split("/", 1)[0]
    pool = next((p for p in pools if p.id == pool_id), None)
    lease = job.lease_until
    if pool is None or not pool_alive(pool, now):
        if pool is None:
            gone = f"its pool {_q(pool_id)} is not registered"
        else:
            gone = (f"its pool {_q(pool.name)} is dead (last heartbeat "
                    f"{_span(now - pool.heartbeat_at)} ago)")  # fmt: skip
        rescuers = [p for p in pools if p is not pool and pool_alive(p, now)
                    and p.status == "running"]  # fmt: skip
        if not rescuers:
            then = "no pool is running to rescue it"
        elif pool is None and lease is not None and lease > now:
            then = f"a live pool will rescue it when its lease ends (in {_span(lease - now)})"
        else:
            then = "a live pool will rescue it within seconds"
        return Diagnosis(WaitReason.POOL_DEAD, f"{gone}; {then}")
    if lease is not None and lease < now:
        return Diagnosis(WaitReason.LEASE_EXPIRED, f"its lease ran out {_span(now - lease)} ago "
                         f"on pool {_q(pool.name)}; it will be taken back")  # fmt: skip
    if job.cancel_requested:
        return Diagnosis(
            WaitReason.CANCELLING, f"cancel requested: pool {_q(pool.name)} will stop it"
        )
    took = f" for {_span(now - job.started_at)}" if job.started_at is not None else ""
    return Diagnosis(WaitReason.RUNNING, f"running on pool {_q(pool.name)}{took} "
                     f"(attempt {job.tries()})")  # fmt: skip


def _q(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def _iso(ts: float) -> str:
    from datetime import datetime, timezone  # here: `jobq ls` start-up (issue 15)

    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- failures that look alike -----------------------------------------------------------------


@record
class ErrorGroup:
    """Failed attempts that look alike: same type, exception line and first frame."""

    type: str
    error: str
    frame: str
    count: int
    job_ids: tuple[int, ...]
    last_at: float


# (`re` caches the compiled patterns; importing it here would cost `jobq ls` start-up)
_FRAME = r'(?m)^\s*File "([^"]*)", line \d+, in (\S+)'
# jobq's own frames that wrap every handler call: never what tells two failures apart
_RUNTIME = r"[/\\]jobq[/\\](pool[/\\](executor|child|supervisor)|handlers)\.py$"
_NUMBERS = r"0x[0-9a-fA-F]+|\d+"


def exception_line(error: str | None, traceback: str | None) -> str:
    """The line that names the exception: the traceback's last line, else the error."""
    if traceback:
        lines = [ln for ln in traceback.strip().splitlines() if ln.strip()]
        if lines and not lines[-1].startswith(" "):
            return lines[-1].strip()
    return (error or "").strip().split("\n", 1)[0]


def first_frame(traceback: str | None) -> str:
    """`file:function` of the first frame past jobq's runner ('' for stderr tails)."""
    import re

    for m in re.finditer(_FRAME, traceback or ""):
        path, func = m.group(1), m.group(2)
        if not re.search(_RUNTIME, path):
            return f"{path.rsplit('/', 1)[-1]}:{func}"
    return ""


def fingerprint(type_: str, error: str | None, traceback: str | None) -> tuple[str, str, str]:
    """How failures are grouped: type, exception line (numbers masked), first frame."""
    import re

    line = re.sub(_NUMBERS, "N", exception_line(error, traceback))
    return (type_, line, first_frame(traceback))


def group_errors(errors: Sequence[FailedAttempt]) -> list[ErrorGroup]:
    """Group failed attempts by fingerprint, biggest group first."""
    groups: dict[tuple[str, str, str], list[FailedAttempt]] = {}
    for e in errors:
        a = e.attempt
        groups.setdefault(fingerprint(e.type, a.error, a.traceback), []).append(e)
    out = []
    for (type_, _line, frame), items in groups.items():
        first = items[0].attempt  # newest first
        ids = tuple(dict.fromkeys(i.attempt.job_id for i in items))
        out.append(ErrorGroup(type_, exception_line(first.error, first.traceback), frame,
                              len(items), ids, first.finished_at))  # fmt: skip
    out.sort(key=lambda g: (-g.count, -g.last_at))
    return out
