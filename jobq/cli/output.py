"""Rendering for the CLI: aligned tables and detail views for people, JSON for programs.

Every string read from a queue file is untrusted (payloads, types, queue and worker names,
errors, tracebacks, output): it goes through `jobq.safetext` here before it reaches a terminal,
and the result is written as plain text, never as Rich markup. JSON is written with
`ensure_ascii=True`, so escape characters reach the terminal only as `\\u001b` text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..diagnose import Diagnosis
from ..model import Attempt, FailedAttempt, Job, JobEdit, JobState, QueueStats, WorkerInfo
from ..safetext import safe_block, safe_line
from ..values import format_duration as span
from ..values import format_iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..liveoutput import JobProgress


def to_json(value: object, indent: int | None = 2) -> str:
    """JSON for `--json` output: ASCII only (escapes every control and bidi character), every
    time an ISO 8601 UTC string with microseconds (`json_times`)."""
    import json  # here, not at the top: `jobq ls` start-up

    return json.dumps(json_times(value), ensure_ascii=True, indent=indent, allow_nan=False)


def _is_time(key: str, value: object) -> bool:
    return (
        (key.endswith(("_at", "_until")) or key == "at")
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    )


def json_times(value: object) -> object:
    """`value` with every time field (`…_at`, `…_until`: seconds since the epoch) as ISO 8601
    UTC with microseconds, `2026-12-02T00:23:44.123456Z`. A job's own data (payload, result) is
    left as it is, whatever its keys are called."""
    if isinstance(value, dict):
        return {
            k: format_iso(v) if _is_time(k, v)
            else v if "payload" in k or "result" in k
            else json_times(v)
            for k, v in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [json_times(v) for v in value]
    return value


def iso(ts: float | None) -> str:
    """A Unix time as ISO 8601 UTC to the second, or '-'."""
    if ts is None:
        return "-"
    from datetime import datetime, timezone  # here: `jobq ls` start-up (issue 15)

    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def relative(ts: float | None, now: float) -> str:
    """'in 4s', '3m05s ago', 'now', or '-'."""
    if ts is None:
        return "-"
    delta = ts - now
    if abs(delta) < 0.5:
        return "now"
    return f"in {span(delta)}" if delta > 0 else f"{span(-delta)} ago"


def when(ts: float | None, now: float) -> str:
    """ISO time followed by the relative time, e.g. '2026-01-31T14:00:00Z (in 4s)'."""
    return "-" if ts is None else f"{iso(ts)} ({relative(ts, now)})"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; cells must already be safe single lines."""
    body = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *body]:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _attempts(job: Job) -> str:
    return job.tries()


def _job_when(job: Job, now: float) -> str:
    if job.state is JobState.PENDING:
        return relative(job.run_at, now) if job.run_at > now else "due"
    if job.state is JobState.RUNNING:
        return f"for {span(now - job.started_at)}" if job.started_at is not None else "-"
    return relative(job.finished_at, now)


def job_dict(job: Job, progress: Mapping[int, JobProgress]) -> dict[str, object]:
    """A job's `--json` object; a running job's has `progress` (null: none reported)."""
    d: dict[str, object] = dict(job.to_dict())
    if job.state is JobState.RUNNING:
        p = progress.get(job.id)
        d["progress"] = None if p is None else p.to_dict()
    return d


def progress_text(p: JobProgress | None, width: int = 40) -> str:
    """A running job's progress as `jobq ls` and `show` print it: "40% 40 of 100 resized"."""
    if p is None:
        return "-"
    return p.percent() + (" " + safe_line(p.message, width) if p.message else "")


def jobs_table(
    jobs: Sequence[Job],
    now: float,
    waiting: Mapping[int, Diagnosis | None] | None = None,
    progress: Mapping[int, JobProgress] | None = None,
) -> str:
    """`jobq ls`: one line per job; pending jobs show the scheduled/retrying view, and WAITING
    the code of why a pending or running job is where it is (`jobq show` has the sentence).
    PROGRESS, when a listed running job reported some, is its handler's latest."""
    why = {} if waiting is None else waiting
    rows = [
        [
            str(j.id),
            j.view(now) + (" (cancel requested)" if j.cancel_requested else ""),
            safe_line(j.type, 40),
            safe_line(j.queue, 20),
            str(j.priority),
            _attempts(j),
            _job_when(j, now),
            _code(why.get(j.id)),
            safe_line(j.payload_json, 40),
            safe_line(j.last_error, 60),
        ]
        for j in jobs
    ]
    headers = ["ID", "STATE", "TYPE", "QUEUE", "PRIO", "TRIES", "WHEN", "WAITING", "PAYLOAD",
               "LAST ERROR"]  # fmt: skip
    if progress:
        headers.insert(7, "PROGRESS")
        for j, row in zip(jobs, rows, strict=True):
            row.insert(7, progress_text(progress.get(j.id), 24))
    return table(headers, rows)


def _code(d: Diagnosis | None) -> str:
    return "-" if d is None else d.code.value


def _pretty(text: str | None) -> str:
    """Pretty-print JSON text for reading (non-ASCII kept, then made safe)."""
    from ..prettyjson import indent

    if text is None:
        return "-"
    # Most payloads are small: indented without importing json (~3 ms of start-up); past
    # 32 KiB the json module is faster (a 900 KB list of numbers: 0.09 s against 0.32 s)
    pretty = indent(text) if len(text) <= 32 * 1024 else None
    if pretty is not None:
        return safe_block(pretty)
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return safe_block(text)
    return safe_block(json.dumps(value, ensure_ascii=False, indent=2))


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def job_detail(
    job: Job,
    attempts: Sequence[Attempt],
    now: float,
    waiting: Diagnosis | None = None,
    progress: JobProgress | None = None,
    after: Sequence[tuple[int, JobState | None]] = (),
    dependents: Sequence[tuple[int, JobState]] = (),
) -> str:
    """`jobq show`: every field, payload and result pretty-printed, then each attempt; for a
    pending or running job, a `waiting:` line says why it is where it is; the jobs it runs
    after and those that run after it, with their states."""
    fields = [
        ("id", str(job.id)),
        ("type", safe_line(job.type)),
        ("queue", safe_line(job.queue)),
        ("state", job.view(now) + (" (cancel requested)" if job.cancel_requested else "")),
        ("priority", str(job.priority)),
        ("attempts", _attempts(job)),
        ("timeout", job.timeout_text()),
        ("unique key", safe_line(job.unique_key) or "-"),
        ("created", when(job.created_at, now)),
        ("run at", when(job.run_at, now)),
        ("started", when(job.started_at, now)),
        ("finished", when(job.finished_at, now)),
        ("worker", safe_line(job.worker_id) or "-"),
        ("lease until", when(job.lease_until, now)),
        ("last error", safe_line(job.last_error, 500) or "-"),
    ]  # fmt: skip
    if job.state is JobState.RUNNING:
        fields.insert(4, ("progress", progress_text(progress, 200)))
    if waiting is not None:
        fields.insert(4, ("waiting", f"{safe_line(waiting.text, 1000)} [{waiting.code.value}]"))
    if after:
        fields.append(("after", _links(after)))
    if dependents:
        fields.append(("dependents", _links(dependents)))
    width = max(len(k) for k, _ in fields)
    out = [f"{k.ljust(width)}  {v}" for k, v in fields]
    out += ["", "payload:", _indent(_pretty(job.payload_json))]
    if job.result_json is not None:
        out += ["", "result:", _indent(_pretty(job.result_json))]
    out += ["", f"attempts history ({len(attempts)}):"]
    for a in attempts:
        out.append(
            f"  #{a.attempt}  {a.outcome.value}  {iso(a.started_at)} → {iso(a.finished_at)}"
            f" ({span(a.finished_at - a.started_at)})  worker {safe_line(a.worker_id, 80) or '-'}"
        )
        if a.error:
            out.append(f"    error: {safe_line(a.error, 500)}")
        if a.traceback:
            out += ["    traceback:", _indent(safe_block(a.traceback).rstrip("\n"), "      ")]
        if a.output:
            out += ["    output:", _indent(safe_block(a.output).rstrip("\n"), "      ")]
    return "\n".join(out)


def _links(jobs: Sequence[tuple[int, JobState | None]], shown: int = 20) -> str:
    words = [f"{i} ({'deleted' if s is None else s.value})" for i, s in jobs[:shown]]
    return ", ".join(words) + (f" and {len(jobs) - shown} more" if len(jobs) > shown else "")


def error_line(e: FailedAttempt) -> str:
    """One failed attempt on one line (for `jobq errors` and `errors -f`)."""
    a = e.attempt
    return (
        f"{iso(a.finished_at)}  job {a.job_id}  {safe_line(e.type, 60)}  "
        f"attempt {a.attempt}  {a.outcome.value}: {safe_line(a.error, 300) or '-'}"
    )


def stats_text(s: QueueStats) -> str:
    """`jobq stats`: counts per state, queue and type, and the last minute's throughput."""
    states = [st.value for st in JobState]
    out = ["  ".join(f"{st} {s.by_state.get(st, 0)}" for st in states)]
    out.append(f"(pending: scheduled {s.scheduled}, retrying {s.retrying})")
    out.append(f"last minute: {s.finished_last_minute} finished, {s.failed_last_minute} failed")
    paused = ", ".join(safe_line(q, 60) for q in s.paused_queues) or "none"
    out.append(f"paused queues: {paused}")
    for title, groups in (("QUEUE", s.by_queue), ("TYPE", s.by_type)):
        out.append("")
        out.append(_group_table(title, groups, states, set(s.paused_queues)
                                if title == "QUEUE" else set()))  # fmt: skip
    return "\n".join(out)


def _group_table(
    title: str, groups: Mapping[str, Mapping[str, int]], states: list[str], paused: set[str]
) -> str:
    rows = [
        [safe_line(name, 60) + (" (paused)" if name in paused else "")]
        + [str(counts.get(st, 0)) for st in states]
        for name, counts in sorted(groups.items())
    ]
    return table([title, *[st.upper() for st in states]], rows)


def worker_status(w: WorkerInfo, now: float) -> str:
    """The pool's status word (running, stopping, stopped, dead): see WorkerInfo.status_at."""
    return w.status_at(now)


def workers_table(workers: Sequence[WorkerInfo], now: float) -> str:
    """`jobq workers`: one line per registered pool."""
    rows = [
        [
            safe_line(w.name, 40),
            safe_line(w.host, 40),
            str(w.pid),
            worker_status(w, now),
            iso(w.started_at),
            relative(w.heartbeat_at, now),
            str(w.concurrency),
            ",".join(safe_line(q, 30) for q in w.queues) or "*",
            _types(w),
            str(w.jobs_done),
            " ".join(map(str, w.current_jobs)) or "-",
        ]
        for w in workers
    ]
    headers = ["NAME", "HOST", "PID", "STATUS", "STARTED", "HEARTBEAT", "CONC", "QUEUES",
               "TYPES", "DONE", "CURRENT JOBS"]  # fmt: skip
    return table(headers, rows)


def _types(w: WorkerInfo) -> str:
    names = ",".join(safe_line(t, 30) for t in w.types) or "*"
    if not w.type_globs:
        return names
    return names + " (--type " + ",".join(safe_line(g, 30) for g in w.type_globs) + ")"


def doctor_text(report: Mapping[str, object]) -> str:
    """`jobq doctor`: one `key: value` line per item of the report (names from the file made
    safe too: a table can be called anything)."""
    out = []
    for key, value in report.items():
        if isinstance(value, Mapping):
            out.append(f"{key}:")
            out += [
                f"  {safe_line(str(k), 200)}: {safe_line(str(v), 200)}" for k, v in value.items()
            ]
        elif isinstance(value, list):
            out.append(f"{key}: " + ", ".join(safe_line(str(v), 200) for v in value))
        else:
            out.append(f"{key}: {safe_line(str(value), 500)}")
    return "\n".join(out)


def edits_text(edits: Sequence[JobEdit]) -> str:
    """`jobq show`'s payload edits (`jobq edit`): when, who, and the payload each replaced."""
    if not edits:
        return ""
    out = ["", f"payload edits ({len(edits)}):"]
    for e in edits:
        retried = ", retried" if e.retried else ""
        out.append(f"  {iso(e.at)}  by {safe_line(e.user, 80)}@{safe_line(e.host, 120)}{retried}"
                   "; the payload before:")  # fmt: skip
        out.append(_indent(_pretty(e.old_payload_json), "    "))
    return "\n".join(out)
