"""`jobq enqueue --ndjson`: a batch of jobs, one JSON object per line, enqueued all or nothing.

Two readers share one contract. `strict_lines` checks every line with `values.parse_json` and
names the first bad line and what is wrong with it. `fast_runs` reads the common batch (lines
without unique keys, short enough that no payload can reach the size limit) at C speed: one
scanner call per line, and one serialisation per run of jobs that differ only in payload. It
accepts only what the strict reader accepts and builds the same jobs; whenever it is not sure
(any error, an unusual line) it gives up, and the strict reader runs instead and says what is
wrong. Bad input is therefore reported exactly as before, only good input got faster.
"""

from __future__ import annotations

import gc
import json
import os
import sys

from . import bulk
from .basics import NewJob, same_batch
from .errors import InvalidInput
from .values import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    _no_duplicates,
    _parse_int,
    _reject_constant,
    decode_utf8,
    encode_json,
    parse_json,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from typing import Any

    from .queue import Queue

    # (template, payloads, count): `count` jobs with every field of `template` but the payload,
    # whose payloads are given by the JSON array text `payloads` (see the backend's enqueue_runs).
    Run = tuple[NewJob, str, int]

FIELDS = frozenset(
    {"type", "payload", "priority", "queue", "delay", "run_at", "max_attempts", "timeout",
     "unique_key", "after"}
)  # fmt: skip
_LEAN = frozenset({"type", "payload"})
_ABSENT = object()

# Compact re-serialisation makes a payload longer than its text only through floats: "1e15"
# becomes "1000000000000000.0" (4.5x); a character is at most 4 bytes of UTF-8. A line of at most
# limit / 20 characters can therefore not hold a payload over the limit.
_GROWTH = 20


def decode(data: bytes) -> str:
    """The batch as text, or InvalidInput naming the line with the first bad UTF-8 byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        decode_utf8(data.split(b"\n")[line - 1], f"line {line}")  # raises, naming the byte
        raise  # pragma: no cover - decode_utf8 raised above


def strict_lines(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Every non-blank line as (line number, fields); InvalidInput names the first bad line."""
    lines: list[tuple[int, dict[str, Any]]] = []
    for n, raw in enumerate(text.split("\n"), 1):
        if not raw.strip(" \t\r"):
            continue
        try:
            value = parse_json(raw, "line")
            if not isinstance(value, dict):
                raise InvalidInput("each line must be a JSON object")
            unknown = set(value) - FIELDS
            if unknown:
                raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}")
            if "type" not in value:
                raise InvalidInput("missing field 'type'")
        except InvalidInput as e:
            raise InvalidInput(f"line {n}: {e}") from None
        lines.append((n, dict(value)))
    return lines


def strict_jobs(q: Queue, lines: list[tuple[int, dict[str, Any]]], now: float) -> list[NewJob]:
    """Validate the fields of every line into a job; InvalidInput names the first bad line."""
    jobs: list[NewJob] = []
    for n, fields in lines:
        try:  # new_job / build_job validate every value, whatever its JSON type
            if fields.keys() <= _LEAN:
                jobs.append(q.build_job((fields["type"], fields.get("payload")), now))
                continue
            kwargs = {k: v for k, v in fields.items() if k not in _LEAN}
            jobs.append(q.new_job(fields["type"], fields.get("payload"), now=now, **kwargs))
        except InvalidInput as e:
            raise InvalidInput(f"line {n}: {e}") from None
    return jobs


def _scanner() -> Any:
    # The strict reader's rules, with hooks only where C cannot apply them: NaN and Infinity are
    # refused by a hook that only runs when one appears; a float too large for a double parses
    # as inf and is refused when the payload is serialised (or by the field's own validator);
    # integers go through CPython's own digit limit when it is the same as jobq's.
    digits = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    return json.JSONDecoder(
        parse_int=None if 0 < digits <= MAX_INT_DIGITS else _parse_int,
        parse_constant=_reject_constant,
        object_pairs_hook=_no_duplicates,
    ).scan_once  # type: ignore[attr-defined]


def fast_parse(
    text: str, limit: int, lines: list[str] | None = None
) -> list[dict[str, Any]] | None:
    """Every non-blank line as a JSON value, or None: use the strict reader. (`lines`: the text
    split at newlines, where the caller has it already.)"""
    if "unique_key" in text:
        return None  # unique keys look up existing jobs one by one: the strict path's work
    return fast_parse_lines(text.split("\n") if lines is None else lines, limit)


def fast_parse_lines(lines: list[str], limit: int) -> list[dict[str, Any]] | None:
    """`fast_parse` of lines without unique keys (a batch's, or a chunk of them)."""
    longest = max(map(len, lines), default=0)
    if longest * _GROWTH > limit:
        return None
    # Nesting needs two characters a level: short lines cannot be too deep to parse.
    deep = longest > 2 * MAX_DEPTH
    scan = _scanner()
    parsed: list[dict[str, Any]] = []
    append = parsed.append
    try:
        for raw in lines:
            if raw:
                if deep and raw.count("{") + raw.count("[") > MAX_DEPTH:
                    return None
                fields, end = scan(raw, 0)
                if end != len(raw) and raw[end:].strip(" \t\r"):
                    return None
                append(fields)
    except (ValueError, StopIteration, RecursionError):
        return None  # InvalidInput is a ValueError
    return parsed


def fast_runs(q: Queue, parsed: list[Any], now: float) -> list[Run] | None:
    """The parsed lines as runs of jobs that differ only in payload, or None: use the strict
    reader."""
    if parsed and set(map(type, parsed)) != {dict}:
        return None
    n = len(parsed)
    payloads = [f.get("payload", _ABSENT) for f in parsed]
    absent = payloads.count(_ABSENT)
    try:
        types = [f["type"] for f in parsed]
        if sum(map(len, parsed)) == 2 * n - absent:
            # every line holds type and at most payload: one validation per distinct type
            known = {t: q.new_job(t, None, payload_json="{}", now=now) for t in set(types)}
            templates = [known[t] for t in types]
            single = len(known) == 1
        elif all(map(FIELDS.issuperset, parsed)):
            if any("after" in f for f in parsed):
                return None  # dependencies look up their jobs one by one: the strict path's work
            templates = [
                q.new_job(f["type"], None, payload_json="{}", now=now,
                          **{k: v for k, v in f.items() if k not in _LEAN})
                for f in parsed
            ]  # fmt: skip
            single = False
        else:
            return None
    except (ValueError, TypeError, KeyError):
        return None  # InvalidInput is a ValueError; TypeError: an unhashable type
    if absent or None in payloads:  # no payload, or null: the empty object, as everywhere else
        payloads = [{} if p is None or p is _ABSENT else p for p in payloads]
    runs: list[Run] = []
    for i, k in [(0, n)] if single else same_batch(templates):
        # objects as they are, any other payload in a one-element array (the backend's enqueue_runs)
        array = encode_json([p if type(p) is dict else [p] for p in payloads[i:k]])
        if array is None:
            return None  # NaN, inf or a lone surrogate: the strict reader names the line
        runs.append((templates[i], array, k - i))
    return runs


def _pipelined(q: Queue, lines: list[str], limit: int, now: float) -> list[int] | None:
    def build(start: int, end: int) -> list[Run] | None:
        parsed = fast_parse_lines(lines[start:end], limit)
        return None if parsed is None else fast_runs(q, parsed, now)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.001)  # this process's own: take the GIL back soon after an insert
    try:
        return bulk.pipelined(q, build, len(lines), now)
    finally:
        sys.setswitchinterval(switch)


def _exists(db: str | None) -> bool:
    from .backend import parse_location
    from .config import resolve_db_path

    path = resolve_db_path(db)
    return parse_location(path).kind != "sqlite" or os.path.exists(path)


def enqueue(db: str | None, data: bytes, limit: int, now: float) -> list[int] | range:
    """Enqueue every line of the batch in one durable transaction; return the new ids in order.

    Raises InvalidInput naming the first bad line; a batch with bad JSON does not create a
    queue file.
    """
    from .queue import Queue

    text = decode(data)
    # A batch allocates a few objects per line and no cycles: the cyclic collector would only
    # walk the growing heap again and again (a quarter of the parse time at 50,000 lines).
    collecting = gc.isenabled()
    gc.disable()
    try:
        lines = text.split("\n")
        if len(lines) > bulk.PIPELINE_FROM and "unique_key" not in text and _exists(db):
            # Into a queue that exists, the lines are read on a helper thread while this one
            # inserts (jobq.bulk). Into a new file they are read whole first: a batch with bad
            # JSON does not create it.
            with Queue(db, payload_limit=limit) as q:
                ids = _pipelined(q, lines, limit, now)
                if ids is not None:
                    return ids
                jobs = strict_jobs(q, strict_lines(text), now)
                return q.insert(jobs, now) if jobs else []
        parsed = fast_parse(text, limit, lines)
        strict = strict_lines(text) if parsed is None else None
        with Queue(db, payload_limit=limit) as q:
            runs = None if parsed is None else fast_runs(q, parsed, now)
            if runs is not None:
                return q.insert_runs(runs, now)
            jobs = strict_jobs(q, strict_lines(text) if strict is None else strict, now)
            return q.insert(jobs, now) if jobs else []
    finally:
        if collecting:
            gc.enable()
