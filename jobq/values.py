"""Validation of user-supplied values: job types, priorities, durations, times and JSON payloads.

Everything here raises `InvalidInput` with a one-line message; nothing touches the queue file.
`json` and `re` are imported on first use: `jobq ls`, `stats`, `wait` … never need them, and the
two cost ~3 ms of a ~35 ms start (issue 15).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .basics import DEFAULT_PAYLOAD_LIMIT, DEFAULT_QUEUE, PRIORITY_NAMES, NewJob
from .errors import InvalidInput

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from typing import NoReturn

    from .basics import JSONValue

MAX_TYPE_LENGTH = 200
MAX_QUEUE_LENGTH = 200
# Python refuses int() of more than 4300 digits by default (CVE-2020-10735); apply the same
# limit on every version so a payload means the same thing everywhere.
MAX_INT_DIGITS = 4300
MAX_DEPTH = 500


def _name(kind: str, value: object, max_len: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{kind} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{kind} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{kind} is {len(value)} characters long; the limit is {max_len}")
    # isprintable() is False for controls, format characters (bidi overrides, zero-width),
    # surrogates, unassigned code points and every separator but the ASCII space
    if not value.isprintable() or " " in value:
        raise InvalidInput(
            f"{kind} {value!r} contains whitespace or control characters; use printable characters"
        )
    return value


def validate_type(value: object) -> str:
    """Return `value` if it is a valid job type: 1–200 printable characters, no whitespace."""
    return _name("job type", value, MAX_TYPE_LENGTH)


def validate_queue(value: object) -> str:
    """Return `value` if it is a valid queue name (same rules as a job type)."""
    return _name("queue name", value, MAX_QUEUE_LENGTH)


def parse_priority(value: object) -> int:
    """Turn an integer, a digit string or a name (low, normal, high, critical) into a priority."""
    if isinstance(value, bool):
        raise InvalidInput(f"priority must be an integer or one of {_names()}, not {value!r}")
    if isinstance(value, int):
        if not -(2**31) <= value < 2**31:
            raise InvalidInput(f"priority {value} is out of range (±2147483647)")
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in PRIORITY_NAMES:
            return PRIORITY_NAMES[text]
        import re

        if re.fullmatch(r"[+-]?\d{1,10}", text):
            return parse_priority(int(text))
        raise InvalidInput(f"unknown priority {value!r}: use an integer or one of {_names()}")
    raise InvalidInput(f"priority must be an integer or one of {_names()}, not {value!r}")


def _names() -> str:
    return ", ".join(f"{k} ({v})" for k, v in PRIORITY_NAMES.items())


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)"


def parse_duration(value: object, what: str = "duration", *, unit: bool = False) -> float:
    """Parse `30`, `30s`, `5m`, `2h`, `7d`, `1h30m` or a number of seconds into seconds (>= 0).

    With `unit`, a bare number is refused: where a slip costs data (`prune --older-than 7`
    meant 7 days, not 7 seconds) the unit must be written.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a number of seconds or like 30s, 5m, 2h, 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        import re

        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            if unit:
                raise InvalidInput(
                    f"{what} {value!r} needs a unit: e.g. {text}d, {text}h, {text}m or {text}s"
                )
            seconds = float(text)
        elif text and re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+", text):
            seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(_DURATION, text))
        else:
            raise InvalidInput(f"cannot parse {what} {value!r}: use e.g. 30s, 5m, 2h, 7d")
    else:
        raise InvalidInput(f"{what} must be a number of seconds or like 30s, 5m, 2h, 7d")
    if not math.isfinite(seconds) or seconds < 0 or seconds > 100 * 365 * 86400:
        raise InvalidInput(f"{what} {value!r} is out of range")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human duration in whole seconds (below zero: 0s): 42s, 3m05s, 2h10m, 3d4h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def format_iso(ts: float) -> str:
    """A Unix time as ISO 8601 UTC with microseconds: `2026-12-02T00:23:44.123456Z` (the form
    of every time in `--json` output, and one `--at` accepts)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(value: object) -> float:
    """Parse an ISO 8601 time (naive means UTC) or a Unix timestamp into a Unix timestamp."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = float(value)
    elif isinstance(value, str):
        from datetime import datetime, timezone  # only --at needs it

        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise InvalidInput(
                    f"cannot parse time {value!r}: use ISO 8601, e.g. 2026-01-31T14:00:00Z"
                ) from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            ts = parsed.timestamp()
    else:
        raise InvalidInput(f"time must be an ISO 8601 string or a Unix timestamp, not {value!r}")
    if not math.isfinite(ts) or not 0 <= ts < 253402300800:
        raise InvalidInput(f"time {value!r} is out of range")
    return ts


def validate_positive_int(value: object, what: str, minimum: int = 1) -> int:
    """Return `value` as an int >= `minimum` or raise InvalidInput."""
    if isinstance(value, bool) or not isinstance(value, int):
        import re

        if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value.strip()):
            value = int(value.strip())
        else:
            raise InvalidInput(f"{what} must be an integer >= {minimum}, not {value!r}")
    if not minimum <= value <= 1_000_000_000:
        raise InvalidInput(f"{what} must be an integer >= {minimum}, not {value}")
    return value


_TYPES_SEEN: set[str] = set()  # enqueue_many of 100k jobs of one type validates it once


def _seen_type(value: object) -> str:
    name = validate_type(value)
    if len(_TYPES_SEEN) < 10_000:
        _TYPES_SEEN.add(name)
    return name


def new_job(
    type: object,
    payload_json: str = "{}",
    *,
    queue: object = DEFAULT_QUEUE,
    priority: object = 0,
    run_at: float | None = None,
    max_attempts: object = None,
    timeout: object = None,
    unique_key: object = None,
) -> NewJob:
    """A NewJob from fields as a caller gives them (names, strings, numbers), each validated
    (raises InvalidInput); `payload_json` must already be canonical and within the size limit."""
    if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
        raise InvalidInput("unique key must be a non-empty string")
    return NewJob(
        type=type if type.__class__ is str and type in _TYPES_SEEN else _seen_type(type),
        payload_json=payload_json,
        queue=queue if queue is DEFAULT_QUEUE else validate_queue(queue),
        priority=parse_priority(priority),
        run_at=run_at,
        max_attempts=None if max_attempts is None
        else validate_positive_int(max_attempts, "max_attempts"),
        timeout=None if timeout is None else parse_duration(timeout, "timeout"),
        unique_key=unique_key,
    )  # fmt: skip


# ---- JSON -------------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise InvalidInput(f"invalid JSON: {name} is not allowed (JSON has no NaN or Infinity)")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(f"invalid JSON: number {text[:40]} is out of range for a float")
    return value


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise InvalidInput(
            f"invalid JSON: integer with {digits} digits (the limit is {MAX_INT_DIGITS})"
        )
    return int(text)


def _no_duplicates(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    obj = dict(pairs)  # C speed; a shorter dict means a key appeared twice
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise InvalidInput(f"invalid JSON: duplicate key {key!r} in an object")
            seen.add(key)
    return obj


# The strict decoder, its C scanner and the compact encoder, made by `_json()` on first use
_SCAN: Callable[[str, int], tuple[JSONValue, int]] | None = None
_DECODE: Callable[[str], JSONValue] | None = None
_ENCODE: Callable[[object], str] | None = None
_DecodeError: type[ValueError] = ValueError  # json.JSONDecodeError once `_json()` ran


def _json() -> None:
    global _SCAN, _DECODE, _ENCODE, _DecodeError
    import json

    decoder = json.JSONDecoder(
        parse_float=_parse_float,
        parse_int=_parse_int,
        parse_constant=_reject_constant,
        object_pairs_hook=_no_duplicates,
    )
    _DecodeError = json.JSONDecodeError
    _DECODE = decoder.decode
    _ENCODE = _make_encoder()
    _SCAN = decoder.scan_once  # type: ignore[attr-defined]  # the C scanner decode() uses


def _depth_ok(text: str) -> bool:
    # Cheap pre-check: nesting can only be as deep as the number of brackets.
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def parse_json(text: str, what: str = "payload") -> JSONValue:
    """Parse strict JSON: no NaN/Infinity, no duplicate keys, bounded depth and integer size."""
    if not _depth_ok(text):
        raise InvalidInput(f"invalid JSON {what}: nested deeper than {MAX_DEPTH} levels")
    # Fast path (`--ndjson` calls this per line): the C scanner directly, without decode()'s
    # Python wrappers. JSON whitespace only: str.strip() would also accept e.g. U+00A0.
    body = text.strip(" \t\n\r")
    if _SCAN is None or _DECODE is None:
        _json()
    assert _SCAN is not None and _DECODE is not None
    try:
        value: JSONValue
        value, end = _SCAN(body, 0)
        if end == len(body):
            return value
    except (StopIteration, _DecodeError):
        pass  # decode() below says what is wrong, and where
    except RecursionError:
        raise InvalidInput(f"invalid JSON {what}: nested too deeply") from None
    try:
        value = _DECODE(text)
    except _DecodeError as e:
        raise InvalidInput(
            f"invalid JSON {what}: {e.msg} at line {e.lineno} column {e.colno}"  # type: ignore[attr-defined]
        ) from None
    except RecursionError:
        raise InvalidInput(f"invalid JSON {what}: nested too deeply") from None
    except ValueError as e:  # int() digit limit on Python >= 3.11, etc.
        if isinstance(e, InvalidInput):
            raise
        raise InvalidInput(f"invalid JSON {what}: {e}") from None
    return value


def _not_serialisable(o: object) -> object:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _make_encoder() -> Callable[[object], str]:
    # JSONEncoder.encode builds a new C encoder on every call; building it once halves the cost
    # of enqueue_many's payload serialisation. Falls back to the public API if the C accelerator
    # is missing.
    import json
    from json import encoder

    c_make = getattr(encoder, "c_make_encoder", None)
    if c_make is None:  # pragma: no cover - CPython always has it
        return json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
    enc = c_make(None, _not_serialisable, encoder.encode_basestring, None, ":", ",",
                 False, False, False)  # fmt: skip

    def encode(value: object) -> str:
        return "".join(enc(value, 0))

    return encode


def dump_json(value: object, what: str = "payload", limit: int | None = None) -> str:
    """Serialise `value` as compact JSON text, refusing NaN, lone surrogates and oversize values."""
    if _ENCODE is None:
        _json()
    assert _ENCODE is not None
    try:
        text = _ENCODE(value)
    except ValueError as e:
        raise InvalidInput(f"{what} is not valid JSON: {e}") from None
    except TypeError as e:
        raise InvalidInput(f"{what} is not JSON-serialisable: {e}") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply") from None
    if text.isascii():  # the common case: no surrogates possible, size is the length
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            msg = f"{what} contains a lone surrogate, which is not valid UTF-8"
            raise InvalidInput(msg) from None
    if limit is not None and size > limit:
        raise InvalidInput(f"{what} is {size:,} bytes; the limit is {limit:,} bytes")
    return text


def encode_json(value: object) -> str | None:
    """Compact JSON text of `value`, or None where `dump_json` would refuse it (NaN, inf, a lone
    surrogate, a value that is not JSON)."""
    if _ENCODE is None:
        _json()
    assert _ENCODE is not None
    try:
        text = _ENCODE(value)
    except (ValueError, TypeError, RecursionError):
        return None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return text


def payload_from_text(text: str, limit: int = DEFAULT_PAYLOAD_LIMIT) -> str:
    """Validate payload JSON text and return its canonical compact form."""
    if len(text) > 4 * limit:  # decoding would be wasted work
        raise InvalidInput(f"payload is over {limit:,} bytes (the limit)")
    return dump_json(parse_json(text), "payload", limit)


def decode_utf8(data: bytes, what: str = "input") -> str:
    """Decode UTF-8 bytes (stdin, @FILE) or raise InvalidInput naming the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{what} is not valid UTF-8 (bad byte at offset {e.start})") from None


def parse_listen(text: str, what: str = "address") -> tuple[str, int]:
    """`[HOST:]PORT` (an IPv6 host in brackets) → (host, port); the host defaults to 127.0.0.1."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host = "127.0.0.1"
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInput(f"{what} {text!r}: expected [HOST:]PORT with PORT in 1-65535")
    if sep and not host:
        raise InvalidInput(f"{what} {text!r}: the host before ':' is empty")
    return host, int(port_text)


# Job ids are SQLite rowids and PostgreSQL bigints
_MAX_ID = 2**63 - 1


def validate_after(after: object) -> tuple[int, ...]:
    """The ids of `after` (an id or a list of ids) as a sorted tuple without repeats; at most
    1000 of them."""
    items = [after] if isinstance(after, int) and not isinstance(after, bool) else after
    if not isinstance(items, (list, tuple)):
        raise InvalidInput("after must be a job id or a list of job ids")
    ids = set()
    for i in items:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 < i <= _MAX_ID:
            raise InvalidInput(f"after: {i!r} is not a job id (a positive integer)")
        ids.add(i)
    if len(ids) > 1000:
        raise InvalidInput("after: at most 1000 jobs")
    return tuple(sorted(ids))
