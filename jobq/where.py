"""The filter language on payload fields and creation time, shared by the CLI and the dashboard.

A condition is `payload.PATH OP VALUE` (CLI: `--where 'payload.user.id=42'`; dashboard:
`payload.user.id:42`, `payload.n:>9`, `payload.kind:!=test`):

- PATH: `payload` then dot-separated segments of `[A-Za-z0-9_-]+`. A segment of digits only is
  an array index (`payload.items.0.sku`: the first item), never an object key; any other segment
  is an object key, never an array index. `payload` alone is the whole payload.
- OP: `=`, `!=`, `<`, `<=`, `>`, `>=`.
- VALUE: a JSON number compares as a number (`payload.n>9` matches 10; `=42` matches 42 and
  42.0, not the string "42"); `true`, `false`, `null` are the JSON literals; a JSON string in
  double quotes (`"42"`) is that string; anything else is the text itself, as a string.

A field matches `=`, `<`, `<=`, `>`, `>=` only when it exists and holds a value of the same kind
(number, string, true/false, null); strings compare by code point. `!=` is exactly "not `=`": a
job whose payload lacks the field, or holds another kind there, matches `!=` (so
`payload.kind!=test` keeps jobs that have no kind). `<`…`>=` take a number or a string only.

The stores turn conditions into SQL with every path and value bound as a parameter
(jobq/store/*/sql.py: `where_sql`); `matches` here is the same rule in Python, for tests and
for anything that filters jobs already loaded.

Time bounds (`--since`, `--until`, dashboard `since:`/`until:`) are on a job's `created_at`
(when it was enqueued): a duration back from now (`30m`, `2h`, `7d`) or an ISO 8601 time.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass

from .errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    Scalar = int | float | str | bool | None

OPERATORS = ("!=", "<=", ">=", "=", "<", ">")  # two-character ones first: `<=` is not `<`
ORDERING = ("<", "<=", ">", ">=")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPLIT = re.compile(r"([^=!<>]*)(!=|<=|>=|=|<|>)(.*)", re.DOTALL)
_INT64 = 2**63
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Condition:
    """One `payload.PATH OP VALUE` test.

    `path` holds object keys (str) and array indexes (int); `kind` is what the value is:
    "number", "string", "true", "false" or "null".
    """

    path: tuple[str | int, ...]
    op: str
    value: int | float | str | bool | None
    kind: str
    raw: str = dataclasses.field(compare=False)  # the value as written, for `describe`

    def field(self) -> str:
        """The path as written: `payload.user.id`."""
        return ".".join(["payload", *(str(s) for s in self.path)])

    def __str__(self) -> str:
        raw = self.raw
        if self.op == "=" and raw.startswith(("=", "<", ">", "!")):
            raw = json.dumps(self.value)  # `payload.s=">x"`: the CLI refuses `=>x` as a typo
        return f"{self.field()}{self.op}{raw}"

    def colon(self) -> str:
        """The dashboard form: `payload.n:>9`, `payload.kind:test` for `=`."""
        op = "" if self.op == "=" and not self.raw.startswith(OPERATORS) else self.op
        return f"{self.field()}:{op}{self.raw}"


def _bad(what: str, text: str, why: str) -> InvalidInput:
    return InvalidInput(f"bad {what} {text!r}: {why}")


def parse_path(text: str, what: str = "--where", whole: str = "") -> tuple[str | int, ...]:
    """`payload.user.id` → ("user", "id"); digits-only segments become array indexes.
    (`whole`: the text the error names, if not `text`.)"""
    parts = text.split(".")
    text = whole or text
    if parts[0] != "payload":
        raise _bad(what, text, "a field is payload.NAME[.NAME…], e.g. payload.user.id")
    path: list[str | int] = []
    for seg in parts[1:]:
        if not _SEGMENT.fullmatch(seg):
            raise _bad(
                what, text, "path segments are letters, digits, _ and - (e.g. payload.a.0.b)"
            )
        path.append(int(seg) if seg.isdigit() else seg)
    return tuple(path)


def parse_value(raw: str, what: str = "--where") -> tuple[Scalar, str]:
    """The value and its kind: a JSON number, true/false/null, a "quoted" string, or text."""
    if raw == "true":
        return True, "true"
    if raw == "false":
        return False, "false"
    if raw == "null":
        return None, "null"
    if _NUMBER.fullmatch(raw):
        number = json.loads(raw)
        if isinstance(number, float) and not math.isfinite(number):
            raise _bad(what, raw, "the number is out of range")
        if isinstance(number, int) and not -_INT64 <= number < _INT64:
            raise _bad(what, raw, "integers must fit in 64 bits")
        return number, "number"
    if raw.startswith('"'):
        try:
            text = json.loads(raw)
        except ValueError:
            text = None
        if not isinstance(text, str):
            raise _bad(what, raw, 'a quoted value must be one JSON string, e.g. "42"')
        return text, "string"
    return raw, "string"


def _build(path_text: str, op: str, raw: str, what: str, whole: str) -> Condition:
    path = parse_path(path_text, what, whole)
    value, kind = parse_value(raw, what)
    if op in ORDERING and kind not in ("number", "string"):
        raise _bad(what, whole, f"{op} compares numbers or strings, not {raw}")
    return Condition(path, op, value, kind, raw)


def parse_condition(text: str) -> Condition:
    """Parse the CLI form `payload.PATH OP VALUE` (raises InvalidInput)."""
    m = _SPLIT.fullmatch(text)
    if m is None:
        raise _bad("--where", text, "use payload.PATH OP VALUE with OP one of = != < <= > >=")
    path_text, op, raw = m.groups()
    if op == "=" and raw.startswith(("=", "<", ">", "!")):  # `==`, `=>`, `=<`, `=!`: a typo
        raise _bad("--where", text, 'one operator of = != < <= > >=; quote a text that starts'
                   ' with one as a JSON string ("…")')  # fmt: skip
    return _build(path_text, op, raw, "--where", text)


def parse_conditions(texts: Iterable[str | Condition] | None) -> tuple[Condition, ...]:
    """Parse several `--where` values (Conditions pass through)."""
    return tuple(t if isinstance(t, Condition) else parse_condition(t) for t in texts or ())


def parse_colon(token: str) -> Condition:
    """Parse the dashboard form `payload.PATH:[OP]VALUE` (no OP: `=`; raises InvalidInput)."""
    path_text, colon, rest = token.partition(":")
    if not colon:
        raise _bad(
            "filter", token, "use payload.PATH:VALUE, e.g. payload.user.id:42 or payload.n:>9"
        )
    op = next((o for o in OPERATORS if rest.startswith(o)), "=")
    raw = rest[len(op) :] if rest.startswith(op) else rest
    return _build(path_text, op, raw, "filter", token)


def parse_time(text: str, now: float, what: str = "--since") -> float:
    """A time bound: a duration back from `now` (10m, 2h, 7d) or an ISO 8601 time."""
    from .values import parse_at, parse_duration

    try:
        return now - parse_duration(text, what)
    except InvalidInput:
        pass
    try:
        return parse_at(text)
    except InvalidInput:
        raise InvalidInput(
            f"cannot parse {what} {text!r}: use a duration (10m, 2h, 7d) or an ISO 8601 time"
        ) from None


def lookup(payload: object, path: tuple[str | int, ...]) -> object:
    """The value at `path` in a decoded payload, or `MISSING`."""
    node = payload
    for seg in path:
        if isinstance(seg, int):
            if not isinstance(node, list) or seg >= len(node):
                return _MISSING
            node = node[seg]
        else:
            if not isinstance(node, dict) or seg not in node:
                return _MISSING
            node = node[seg]
    return node


def _kind(value: object) -> str | None:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return None  # an object, an array, or missing


def matches(cond: Condition, payload: object) -> bool:
    """Whether a decoded payload satisfies `cond` (the rule the SQL of every store follows)."""
    found = lookup(payload, cond.path)
    same = _kind(found) == cond.kind
    if cond.op in ("=", "!="):
        equal = same and (cond.kind in ("true", "false", "null") or found == cond.value)
        return equal if cond.op == "=" else not equal
    if not same:
        return False
    a, b = found, cond.value
    assert isinstance(a, (int, float, str)) and isinstance(b, (int, float, str))
    if cond.op == "<":
        return a < b  # type: ignore[operator]
    if cond.op == "<=":
        return a <= b  # type: ignore[operator]
    if cond.op == ">":
        return a > b  # type: ignore[operator]
    return a >= b  # type: ignore[operator]
