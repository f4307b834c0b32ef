"""Filters on payload fields and creation time (jobq/where.py): the parser, and every store's SQL
checked against the pure-Python rule (`jobq.where.matches`) on a table and on random payloads."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobq import InvalidInput, Queue
from jobq.where import Condition, matches, parse_colon, parse_condition, parse_time
from tests.conftest import ROOT


@pytest.fixture
def q(location: str) -> Iterator[Queue]:
    with Queue(location) as queue:
        yield queue


# ---- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "op", "value", "kind"),
    [
        ("payload.user.id=42", ("user", "id"), "=", 42, "number"),
        ("payload.n!=4.5", ("n",), "!=", 4.5, "number"),
        ("payload.n<-3", ("n",), "<", -3, "number"),
        ("payload.n<=1e3", ("n",), "<=", 1000.0, "number"),
        ("payload.n>0", ("n",), ">", 0, "number"),
        ("payload.n>=0.5", ("n",), ">=", 0.5, "number"),
        ('payload.id="42"', ("id",), "=", "42", "string"),
        ("payload.kind=test", ("kind",), "=", "test", "string"),
        ("payload.kind=a b=c", ("kind",), "=", "a b=c", "string"),
        ('payload.kind=">x"', ("kind",), "=", ">x", "string"),
        ("payload.s=007", ("s",), "=", "007", "string"),  # not a JSON number: text
        ("payload.s=", ("s",), "=", "", "string"),
        ("payload.ok=true", ("ok",), "=", True, "true"),
        ("payload.ok!=false", ("ok",), "!=", False, "false"),
        ("payload.x=null", ("x",), "=", None, "null"),
        ("payload.items.0.sku=A-1", ("items", 0, "sku"), "=", "A-1", "string"),
        ("payload.a_b.c-d.E9=1", ("a_b", "c-d", "E9"), "=", 1, "number"),
        ("payload.-1=1", ("-1",), "=", 1, "number"),  # a key, not an index from the end
        ("payload=3", (), "=", 3, "number"),
    ],
)
def test_parse_condition(text: str, path: tuple[object, ...], op: str, value: object,
                         kind: str) -> None:  # fmt: skip
    c = parse_condition(text)
    assert (c.path, c.op, c.value, c.kind) == (path, op, value, kind)
    assert type(c.value) is type(value)
    assert parse_condition(str(c)) == c  # str() is the CLI form, and it round-trips


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("user.id=42", "payload.NAME"),
        ("payload..id=1", "segments"),
        ("payload.a b=1", "segments"),
        ("payload.a[0]=1", "segments"),
        ("payload.a.*=1", "segments"),
        ("payload.é=1", "segments"),
        ("payload.a", "OP one of"),
        ("payload.a~1", "OP one of"),
        ("payload.a==1", "one operator of"),
        ("payload.a=>1", "one operator of"),
        ("payload.a=!x", "one operator of"),
        ("payload.a<true", "compares numbers or strings"),
        ("payload.a>=null", "compares numbers or strings"),
        ("payload.a=1e999", "out of range"),
        ("payload.a=99999999999999999999", "64 bits"),
        ('payload.a="x', "one JSON string"),
        ('payload.a="x"y"', "one JSON string"),
    ],
)
def test_parse_condition_refuses(text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_condition(text)
    message = str(e.value)
    assert why in message and "\n" not in message and message.startswith("bad --where")


@pytest.mark.parametrize(
    ("token", "cli"),
    [
        ("payload.user.id:42", "payload.user.id=42"),
        ("payload.n:>9", "payload.n>9"),
        ("payload.n:>=9", "payload.n>=9"),
        ("payload.n:<9", "payload.n<9"),
        ("payload.n:<=9", "payload.n<=9"),
        ("payload.kind:!=test", "payload.kind!=test"),
        ("payload.kind:=>x", 'payload.kind=">x"'),  # an explicit = lets a value start with >
        ("payload.kind:", "payload.kind="),
    ],
)
def test_parse_colon_is_the_cli_form(token: str, cli: str) -> None:
    c = parse_colon(token)
    assert c == parse_condition(cli)
    assert parse_colon(c.colon()) == c  # colon() is what the dashboard shows back


@pytest.mark.parametrize("token", ["payload.n", "payload.x y:1", "payload.n:<true", "pay.x:1"])
def test_parse_colon_refuses(token: str) -> None:
    with pytest.raises(InvalidInput):
        parse_colon(token)


def test_parse_time() -> None:
    now = 1_800_000_000.0
    assert parse_time("2h", now) == now - 7200
    assert parse_time("30m", now, "--until") == now - 1800
    expected = datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc).timestamp()
    assert parse_time("2027-01-15T08:00:00Z", now) == expected
    assert parse_time("2027-01-15T08:00:00", now) == expected  # naive means UTC
    with pytest.raises(InvalidInput, match="cannot parse --since 'soon'"):
        parse_time("soon", now)


# ---- every store against the Python rule ---------------------------------------------------

PAYLOADS: list[object] = [
    {"user": {"id": 42}, "kind": "test", "n": 10},
    {"user": {"id": 42.0}, "kind": "prod", "n": 9},
    {"user": {"id": "42"}, "kind": "Test", "n": -1.5},
    {"user": {"id": 7}, "n": 1e3},
    {"user": None, "kind": None, "n": "10"},
    {"user": [42], "kind": "", "n": True},
    {"items": [{"sku": "A-1", "qty": 2}, {"sku": "B", "qty": 0}], "0": "key"},
    {"items": {"0": {"sku": "A-1"}}, "-1": 5},
    {"ok": True, "off": False, "s": "zebra", "t": "Zebra", "u": "ünïcode"},
    {"ok": 1, "off": 0, "s": "apple", "n": 10.0},
    [1, {"a": 2}],
    "just a string",
    42,
    {},
]
CONDITIONS = [
    "payload.user.id=42", "payload.user.id!=42", 'payload.user.id="42"', "payload.user.id<43",
    "payload.user.id>=42", "payload.user.id>7", "payload.user=null", "payload.user!=null",
    "payload.kind=test", "payload.kind!=test", "payload.kind<prod", "payload.kind>=Test",
    "payload.kind=", "payload.n>9", "payload.n<=9", "payload.n=10", "payload.n!=10",
    "payload.n=true", "payload.n>-2", "payload.items.0.sku=A-1", "payload.items.1.qty<1",
    "payload.items.0.sku!=A-1", "payload.0=key", "payload.-1=5", "payload.ok=true",
    "payload.ok!=true", "payload.off=false", "payload.ok=1", "payload.s>Zebra", "payload.s<b",
    "payload.u>u", "payload.1.a=2", "payload=42", "payload=just a string", "payload=null",
    "payload.missing!=1", "payload.missing=null", "payload.missing<1",
]  # fmt: skip


def _expected(ids: list[int], payloads: list[object], conds: list[Condition]) -> list[int]:
    return [i for i, p in zip(ids, payloads, strict=True) if all(matches(c, p) for c in conds)]


def test_python_rule_examples() -> None:
    """The rule itself, on the cases a user asks about (the SQL is then held to it)."""
    c = parse_condition
    assert matches(c("payload.n>9"), {"n": 10}) and not matches(c("payload.n>9"), {"n": "10"})
    assert matches(c("payload.id=42"), {"id": 42.0}) and not matches(
        c("payload.id=42"), {"id": "42"}
    )
    assert matches(c("payload.kind!=test"), {}) and matches(c("payload.kind!=test"), {"kind": 1})
    assert not matches(c("payload.n<1"), {}) and not matches(c("payload.n<1"), {"n": None})
    assert not matches(c("payload.ok=1"), {"ok": True}) and matches(
        c("payload.x=null"), {"x": None}
    )
    assert not matches(c("payload.x=null"), {}) and not matches(c("payload.a.0=1"), {"a": {"0": 1}})


def test_table_of_payloads_and_conditions(q: Queue) -> None:
    """Each condition alone, and each pair (AND), selects on the store exactly the jobs the
    Python rule selects."""
    ids = [q.enqueue("t", p) for p in PAYLOADS]
    conds = [parse_condition(t) for t in CONDITIONS]
    for c in conds:
        got = [j.id for j in q.list(where=[c], order="oldest", limit=100)]
        assert got == _expected(ids, PAYLOADS, [c]), str(c)
        assert q.count(where=[c]) == len(got), str(c)
        assert q.matching_ids(where=[c]) == got, str(c)
    for a, b in itertools.combinations(conds[::3], 2):
        got = [j.id for j in q.list(where=[a, b], order="oldest", limit=100)]
        assert got == _expected(ids, PAYLOADS, [a, b]), f"{a} AND {b}"


def test_conditions_travel_as_parameters(q: Queue) -> None:
    """Quotes, semicolons and SQL in a value are compared literally, never run."""
    nasty = "x'); DROP TABLE jobs; --\"%_\\"
    ids = [q.enqueue("t", {"s": nasty}), q.enqueue("t", {"s": "x"})]
    assert [j.id for j in q.list(where=[f"payload.s={nasty}"])] == ids[:1]
    assert [j.id for j in q.list(where=[f"payload.s!={nasty}"])] == ids[1:]
    assert q.count() == 2


def test_filters_combine_with_state_type_queue_search(q: Queue) -> None:
    a = q.enqueue("email.send", {"user": {"id": 42}}, queue="mail")
    q.enqueue("resize", {"user": {"id": 42}})
    q.enqueue("email.send", {"user": {"id": 1}}, queue="mail")
    q.cancel(q.enqueue("email.send", {"user": {"id": 42}}, queue="mail"))
    got = q.list("pending", type="email.*", queue="mail", where=["payload.user.id=42"])
    assert [j.id for j in got] == [a]
    assert q.count(search="user", where=["payload.user.id=42"], type="email.*") == 2


def test_since_and_until_bound_created_at(q: Queue) -> None:
    """since: created_at >= since; until: created_at < until."""
    t0 = 1_700_000_000.0  # in the past: "1h" below must not reach back to these
    ids = [q.insert([q.new_job("t", {"i": i}, now=t0 + i * 60)], t0 + i * 60)[0] for i in range(5)]
    assert [j.id for j in q.list(since=t0 + 60, order="oldest")] == ids[1:]
    assert [j.id for j in q.list(until=t0 + 180, order="oldest")] == ids[:3]
    assert q.count(since=t0 + 60, until=t0 + 180) == 2
    assert q.count(since=t0 + 60, until=t0 + 180, where=["payload.i!=1"]) == 1
    now = time.time()
    recent = q.enqueue("t", {"i": 9})
    assert [j.id for j in q.list(since=parse_time("1h", now))] == [recent]


@pytest.mark.parametrize("order", ["newest", "oldest", "claim", "finished"])
def test_pagination_with_a_filter(q: Queue, order: str) -> None:
    """Keyset pages of a filtered list cover exactly the matching jobs, each once, in order."""
    ids = q.enqueue_many([("t", {"n": i % 3, "pad": "x" * (i % 5)}) for i in range(60)])
    for job_id in ids[::4]:
        q.set_priority(job_id, 5)
    state = None
    if order == "finished":
        q.cancel_many(ids)
        state = "cancelled"
    elif order == "claim":
        state = "pending"
    want = {i for i, n in zip(ids, range(60), strict=True) if n % 3 != 1}
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        page = q.list(state, where=["payload.n!=1"], limit=7, order=order, after=after)
        seen += [j.id for j in page]
        pages += 1
        if len(page) < 7:
            break
        last = page[-1]
        after = {"claim": (last.priority, last.run_at, last.id),
                 "finished": (last.finished_at or 0.0, last.id)}.get(order, last.id)  # fmt: skip
    assert set(seen) == want and len(seen) == len(want) and pages >= 6
    unpaged = q.list(state, where=["payload.n!=1"], limit=100, order=order)
    assert seen == [j.id for j in unpaged]


# ---- random payloads and conditions: SQL == Python ------------------------------------------

KEYS = ["a", "b", "0", "-1"]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(-1e15, 1e15, allow_nan=False).map(lambda f: 0.0 if f == 0 else f)
    | st.sampled_from(["", "a", "A", "b", "10", "42", "zz", "é"])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
_values = st.sampled_from(
    ["0", "1", "42", "-1.5", "10", "true", "false", "null", "a", "b", '"10"', "", "é"]
)
_paths = st.lists(st.sampled_from(["a", "b", "0", "1", "-1"]), min_size=0, max_size=3).map(
    lambda segs: ".".join(["payload", *segs])
)


@st.composite
def _condition(draw: st.DrawFn) -> Condition:
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    value = draw(_values)
    if op in ("<", "<=", ">", ">=") and value in ("true", "false", "null"):
        op = "="
    return parse_condition(draw(_paths) + op + value)


_counter = itertools.count()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(_json, min_size=1, max_size=8),
    conds=st.lists(_condition(), min_size=1, max_size=2),
)
def test_sql_agrees_with_python(q: Queue, payloads: list[object], conds: list[Condition]) -> None:
    name = f"h{next(_counter)}"  # each example in its own queue of the one store
    ids = q.enqueue_many([{"type": "t", "payload": p, "queue": name} for p in payloads])
    got = q.matching_ids(queue=name, where=conds)
    stored = [j.payload for j in q.backend.get_many(ids)]  # a None payload is stored as {}
    assert got == _expected(list(ids), stored, conds), [str(c) for c in conds]


# ---- the CLI ----------------------------------------------------------------------------------


def _jobq(location: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "jobq", "--db", location, *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_ls_where_since_until(location: str) -> None:
    with Queue(location) as q:
        a = q.enqueue("t", {"user": {"id": 42}, "kind": "prod"})
        b = q.enqueue("t", {"user": {"id": 42}, "kind": "test"})
        c = q.enqueue("t", {"user": {"id": 43}})
    r = _jobq(location, "ls", "--where", "payload.user.id=42", "--where", "payload.kind!=test",
              "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [j["id"] for j in json.loads(r.stdout)] == [a]
    r = _jobq(location, "ls", "--where=payload.kind!=test", "--since", "1h", "--json")
    assert [j["id"] for j in json.loads(r.stdout)] == [c, a]
    r = _jobq(location, "ls", "--until", "1h", "--json")
    assert (r.returncode, json.loads(r.stdout)) == (0, [])
    r = _jobq(location, "ls", "--since", "2000-01-01T00:00:00Z", "--until", "2h")
    assert r.returncode == 0 and r.stdout == "" and "no matching jobs" in r.stderr
    assert b


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "user.id=1"], "bad --where 'user.id=1'"),
        (["--where", "payload.a;b=1"], "bad --where 'payload.a;b=1'"),
        (["--where", "payload.a~1"], "bad --where"),
        (["--where", "payload.a<null"], "compares numbers or strings"),
        (["--since", "yesterday"], "cannot parse --since 'yesterday'"),
        (["--until", "5x"], "cannot parse --until '5x'"),
    ],
)
def test_ls_bad_filter_is_one_line_exit_2(location: str, args: list[str], message: str) -> None:
    with Queue(location) as q:
        q.enqueue("t", {})
    r = _jobq(location, "ls", *args)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_the_fast_parser_keeps_every_where() -> None:
    """`jobq ls` runs without typer (jobq.cli.fast): a repeated option keeps each value, in
    order, and a missing one is None as typer passes it."""
    from jobq.cli import fast, jobs

    params = fast.params_of(jobs.ls)
    assert params is not None
    got = fast.parse(params, ["--where", "payload.a=1", "-w", "payload.b>2", "--since=1h"])
    assert got is not None
    assert (got["where"], got["since"], got["until"]) == (["payload.a=1", "payload.b>2"], "1h",
                                                          None)  # fmt: skip
    got = fast.parse(params, ["--json"])
    assert got is not None and got["where"] is None


def test_ls_without_a_filter_imports_nothing_more(tmp_path: Path) -> None:
    """`jobq ls` start-up stays lean: jobq.where loads only when a filter is used."""
    code = (
        "import sys; from jobq.cli.app import main\n"
        "try:\n    main(['--db', sys.argv[1], 'ls'])\nexcept SystemExit:\n    pass\n"
        "print('jobq.where' in sys.modules)"
    )
    db = str(tmp_path / "q.db")
    Queue(db).close()
    out = subprocess.run([sys.executable, "-c", code, db], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
