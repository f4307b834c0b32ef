"""`jobq enqueue`: its one implementation, and a small argv parser that runs it without typer.

`jobq enqueue` is called in shell loops, so its start-up matters: importing typer costs more than
the whole insert. `jobq.cli.main` hands an enqueue command line to `parse()` here first; whatever
this parser does not understand (`--help`, a typo, a missing value) goes to the typer app instead,
so every message a person sees still comes from one place. This module must not import typer,
click or rich (a test checks `sys.modules`).
"""

from __future__ import annotations

import os
import sys
import time

from .. import config
from ..basics import DEFAULT_PAYLOAD_LIMIT, DEFAULT_QUEUE, NewJob
from ..errors import InvalidInput
from ..values import (
    decode_utf8,
    new_job,
    parse_at,
    parse_duration,
    payload_from_text,
    validate_positive_int,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO


class EnqueueArgs:
    """The options of `jobq enqueue`, as typed on the command line (strings, unparsed).

    A plain class, not a dataclass: this module is on the start-up path of every enqueue.
    """

    def __init__(
        self,
        type: str | None = None,
        payload: str | None = None,
        priority: str | None = None,
        queue: str | None = None,
        delay: str | None = None,
        at: str | None = None,
        max_attempts: str | None = None,
        timeout: str | None = None,
        unique_key: str | None = None,
        ndjson: str | None = None,
        json: bool = False,
        after: list[str] | None = None,
    ) -> None:
        self.type = type
        self.payload = payload
        self.priority = priority
        self.queue = queue
        self.delay = delay
        self.at = at
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.unique_key = unique_key
        self.ndjson = ndjson
        self.json = json
        self.after = after  # each `--after` value: an id or ids separated by commas


# option -> attribute of EnqueueArgs; each takes a value
_OPTIONS = {
    "--payload": "payload",
    "--priority": "priority",
    "--queue": "queue",
    "--delay": "delay",
    "--at": "at",
    "--max-attempts": "max_attempts",
    "--timeout": "timeout",
    "--unique-key": "unique_key",
    "--ndjson": "ndjson",
}


def split_global(argv: list[str]) -> tuple[str | None, list[str]] | None:
    """Split `[--db PATH] COMMAND ARGS…` into (db, [COMMAND, ARGS…]); None if anything else
    precedes the command."""
    db: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--db" and i + 1 < len(argv):
            db = argv[i + 1]
            i += 2
        elif arg.startswith("--db="):
            db = arg[len("--db=") :]
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return db, argv[i:]
    return None


def parse(args: list[str]) -> EnqueueArgs | None:
    """Parse the arguments after `enqueue`; None when the typer app should handle them."""
    out = EnqueueArgs()
    positional_only = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if positional_only or arg == "-" or not arg.startswith("-"):
            if out.type is not None:
                return None
            out.type = arg
            continue
        if arg == "--":
            positional_only = True
            continue
        if arg == "--json":
            out.json = True
            continue
        name, eq, value = arg.partition("=")
        if name == "--after":  # repeatable
            if not eq:
                if i >= len(args):
                    return None
                value = args[i]
                i += 1
            out.after = [*(out.after or []), value]
            continue
        attr = _OPTIONS.get(name)
        if attr is None:
            return None
        if not eq:
            if i >= len(args):
                return None
            value = args[i]
            i += 1
        setattr(out, attr, value)
    return out


def payload_limit() -> int:
    """The payload size limit in bytes: JOBQ_PAYLOAD_LIMIT or 1 MiB."""
    text = os.environ.get(config.ENV_PAYLOAD_LIMIT)
    if not text:
        return DEFAULT_PAYLOAD_LIMIT
    try:
        return validate_positive_int(text, config.ENV_PAYLOAD_LIMIT)
    except InvalidInput:
        raise InvalidInput(
            f"{config.ENV_PAYLOAD_LIMIT} must be a number of bytes, not {text!r}"
        ) from None


def _read_limited(stream: BinaryIO, limit: int, what: str) -> str:
    # a payload may be at most `limit` bytes once compacted; refuse to read far beyond that
    data = stream.read(4 * limit + 1)
    if len(data) > 4 * limit:
        raise InvalidInput(f"{what} is over the payload limit of {limit:,} bytes")
    return decode_utf8(data, what)


def read_payload(spec: str, stdin: BinaryIO, limit: int) -> str:
    """The canonical payload JSON for `--payload JSON|-|@FILE`."""
    if spec == "-":
        text = _read_limited(stdin, limit, "stdin")
    elif spec.startswith("@"):
        path = spec[1:]
        try:
            with open(path, "rb") as f:
                text = _read_limited(f, limit, f"payload file {path!r}")
        except OSError as e:
            raise InvalidInput(f"cannot read payload file {path!r}: {e.strerror}") from None
    else:
        text = spec
    canonical = payload_from_text(text, limit)
    # null means no payload, as on every path (q.enqueue(t, None), "payload": null): {}
    return "{}" if canonical == "null" else canonical


def parse_after(values: list[str]) -> tuple[int, ...]:
    """The job ids of `--after` values (each an id, or ids separated by commas)."""
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not text.isascii() or not text.isdigit() or len(text) > 19:
                raise InvalidInput(f"--after: {text[:40]!r} is not a job id")
            ids.append(int(text))
    from ..values import validate_after

    try:
        return validate_after(ids)
    except InvalidInput as e:
        raise InvalidInput(f"--{e}") from None


def _validated(a: EnqueueArgs, limit: int, stdin: BinaryIO, now: float) -> NewJob:
    # Everything is checked before the queue file is opened, so bad input creates nothing.
    if a.delay is not None and a.at is not None:
        raise InvalidInput("give either --delay or --at, not both")
    run_at: float | None = None
    if a.delay is not None:
        run_at = now + parse_duration(a.delay, "delay")
    elif a.at is not None:
        run_at = parse_at(a.at)
    if a.unique_key is not None and not a.unique_key:
        raise InvalidInput("unique key must not be empty")
    job = new_job(
        a.type,
        "{}" if a.payload is None else read_payload(a.payload, stdin, limit),
        queue=DEFAULT_QUEUE if a.queue is None else a.queue,
        priority=0 if a.priority is None else a.priority,
        run_at=run_at,
        max_attempts=a.max_attempts,
        timeout=a.timeout,
        unique_key=a.unique_key,
    )
    return job._replace(after=parse_after(a.after)) if a.after else job


def _ndjson_data(a: EnqueueArgs, stdin: BinaryIO) -> bytes:
    given = [f"--{k.replace('_', '-')}" for k in _OPTIONS.values() if k != "ndjson"
             and getattr(a, k) is not None]  # fmt: skip
    if a.after:
        given.append("--after")
    if a.type is not None or given:
        extra = "TYPE" if a.type is not None else given[0]
        raise InvalidInput(f"--ndjson takes every field from its lines; drop {extra}")
    if a.ndjson == "-":
        return stdin.read()
    # @FILE as for --payload; a bare FILE is still read (the older spelling)
    path = str(a.ndjson)[1:] if str(a.ndjson).startswith("@") else str(a.ndjson)
    if not path:
        raise InvalidInput("--ndjson takes - (stdin) or @FILE")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InvalidInput(f"cannot read --ndjson file {path!r}: {e.strerror}") from None


def enqueue(
    db: str | None,
    a: EnqueueArgs,
    *,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run `jobq enqueue` (one job, or `--ndjson` lines in one transaction); return the exit code.

    Prints only the new ids on stdout (or `{"id": N}` / `{"ids": [...]}` with `--json`). When
    `--unique-key` finds a pending or running job of the same type with that key, nothing is
    inserted: its id is printed all the same (`{"id": N, "existing": true}` with `--json`), a
    note on stderr says so, and the exit code is 0. `--after ID` (repeatable, or IDs separated
    by commas) makes the job wait until all of those succeeded. Raises JobqError; bad input
    (an `--after` job that does not exist included) raises InvalidInput before anything is
    written.
    """
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    limit = payload_limit()
    now = time.time()
    if a.ndjson is not None:
        from .. import ndjson

        ids = ndjson.enqueue(db, _ndjson_data(a, stdin), limit, now)
        if a.json:
            stdout.write('{"ids": [' + ", ".join(map(str, ids)) + "]}\n")
        else:
            stdout.write("\n".join(map(str, ids)) + "\n" if ids else "")
        return 0
    if a.type is None:
        raise InvalidInput("give a job TYPE, or --ndjson - to read jobs from stdin")
    job = _validated(a, limit, stdin, now)
    from ..queue import Queue

    existing: str | None = None  # the state of the job that already holds the unique key
    with Queue(db, payload_limit=limit) as q:
        if job.unique_key is None:
            job_id = q.insert([job], now)[0]
        else:
            job_id, existing = q.insert_unique(job, now)
    if existing is None:
        stdout.write(f'{{"id": {job_id}}}\n' if a.json else f"{job_id}\n")
        return 0
    stdout.write(f'{{"id": {job_id}, "existing": true}}\n' if a.json else f"{job_id}\n")
    from ..safetext import safe_line

    sys.stderr.write(f"jobq: job {job_id} ({safe_line(job.type)}) with unique key "
                     f"{safe_line(job.unique_key, 200)} is already {existing}\n")  # fmt: skip
    return 0
