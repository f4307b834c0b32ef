"""Statement fragments of filters on payload fields and creation time (jobq/where.py), apart
from sql.py only to keep modules short; the SQL audit reads every sql*.py of the store."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    from ...where import Condition

# ---- filters on payload fields and creation time (jobq/where.py): `where_sql` builds the
# conditions from the fixed fragments below; every path and value is a named parameter.
# json_extract runs first so that, SQLite's AND being short-circuit, the second parse of the
# payload (json_type: a number is never the string "42") is paid only by rows that compare
# true. coalesce: a missing field is false, never NULL, so `!=` (NOT of `=`) keeps it.
_JSON_TYPES = {
    "number": "IN ('integer', 'real')",
    "string": "= 'text'",
    "true": "= 'true'",
    "false": "= 'false'",
    "null": "= 'null'",
}
_COMPARE = {"=": " = ", "!=": " = ", "<": " < ", "<=": " <= ", ">": " > ", ">=": " >= "}
SINCE = "created_at >= :since"
UNTIL = "created_at < :until"


def json_path(path: tuple[str | int, ...]) -> str:
    """The SQLite JSON path of a parsed payload path: ("user", 0) → `$."user"[0]`."""
    return "$" + "".join("[" + str(s) + "]" if isinstance(s, int) else '."' + s + '"' for s in path)


def where_sql(conditions: tuple[Condition, ...], params: dict[str, object]) -> list[str]:
    """SQL conditions for `conditions` (jobq.where), their parameters added to `params`."""
    out: list[str] = []
    for n, c in enumerate(conditions):
        p, v = "w" + str(n) + "p", "w" + str(n) + "v"
        params[p] = json_path(c.path)
        test = "coalesce(json_type(payload, :" + p + "), '') " + _JSON_TYPES[c.kind]
        if c.kind in ("number", "string"):
            params[v] = c.value
            compare = "json_extract(payload, :" + p + ")" + _COMPARE[c.op] + ":" + v
            test = "coalesce(" + compare + ", 0) AND " + test
        out.append(("NOT (" if c.op == "!=" else "(") + test + ")")
    return out
