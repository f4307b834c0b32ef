"""The PostgreSQL backend's SQL for filters on payload fields and creation time (jobq/where.py).

Part of the statements of jobq/store/postgres/sql.py, in a module of its own only to keep that
one under the project's 500-line limit: the same rules hold (fixed fragments, every path and
value a named parameter).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...where import Condition

# ---- filters on payload fields and creation time (jobq/where.py): `where_sql` builds the
# conditions from the fixed fragments below; every path and value is a named parameter. The
# payload column is json (not jsonb): `#>` walks it, json_typeof tells a number from the
# string "42". CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and the
# ::numeric cast must only ever see a number. A CASE with ELSE false is never NULL, so `!=`
# (NOT of `=`) keeps a job that lacks the field. COLLATE "C": strings compare by code point, as
# SQLite's BINARY does, whatever the database's collation.
_JSON_TYPES = {
    "number": "'number'",
    "string": "'string'",
    "true": "'boolean'",
    "false": "'boolean'",
    "null": "'null'",
}
_COMPARE = {"=": " = ", "!=": " = ", "<": " < ", "<=": " <= ", ">": " > ", ">=": " >= "}
SINCE = "created_at >= to_timestamp(%(since)s::float8)"
UNTIL = "created_at < to_timestamp(%(until)s::float8)"


def _integer_like(segment: str) -> bool:
    digits = segment[1:] if segment.startswith("-") else segment
    return digits.isdigit()


def where_sql(conditions: tuple[Condition, ...], params: dict[str, object]) -> list[str]:
    """SQL conditions for `conditions` (jobq.where), their parameters added to `params`.

    `#>` takes a path element that looks like an integer as an array index on an array and as
    a key on an object; jobq's rule is stricter (digits index arrays only, any other segment is
    a key only), so such a step also checks the type of the value it steps into.
    """
    out: list[str] = []
    for n, c in enumerate(conditions):
        name = "w" + str(n)
        p = "%(" + name + "p)s::text[]"
        params[name + "p"] = [str(s) for s in c.path]
        checks: list[str] = []
        for k, seg in enumerate(c.path):
            if isinstance(seg, int) or _integer_like(seg):
                params[name + "g" + str(k)] = [str(s) for s in c.path[:k]]
                checks.append(
                    "json_typeof(payload #> %("
                    + name
                    + "g"
                    + str(k)
                    + ")s::text[]) = "
                    + ("'array'" if isinstance(seg, int) else "'object'")
                )
        checks.append("json_typeof(payload #> " + p + ") = " + _JSON_TYPES[c.kind])
        if c.kind == "number":
            params[name + "v"] = json.dumps(c.value)
            compare = "(payload #>> " + p + ")::numeric" + _COMPARE[c.op]
            compare += "%(" + name + "v)s::numeric"
        elif c.kind == "string":
            params[name + "v"] = c.value
            compare = "(payload #>> " + p + ') COLLATE "C"' + _COMPARE[c.op]
            compare += "%(" + name + "v)s"
        elif c.kind in ("true", "false"):
            compare = "(payload #>> " + p + ") = " + ("'true'" if c.kind == "true" else "'false'")
        else:
            compare = "true"
        test = "CASE WHEN " + " AND ".join(checks) + " THEN " + compare + " ELSE false END"
        out.append(("NOT (" if c.op == "!=" else "(") + test + ")")
    return out
