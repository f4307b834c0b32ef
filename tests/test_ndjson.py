"""`jobq enqueue --ndjson`: the fast reader accepts exactly what the strict reader accepts and
builds the same jobs; whatever it is unsure of goes to the strict reader, which names the line."""

from __future__ import annotations

import contextlib
import gc
import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobq import InvalidInput, JobqError, Queue, bulk, ndjson
from jobq.basics import NewJob
from jobq.values import MAX_INT_DIGITS, _parse_int
from tests.factories import T0

LIMIT = 1024 * 1024
ROW = "SELECT id, type, queue, payload, priority, run_at, max_attempts, timeout, state FROM jobs"


def _reference(db: str, text: str, limit: int = LIMIT) -> list[int]:
    """What the strict reader alone does with the batch."""
    with Queue(db, payload_limit=limit) as q:
        jobs = ndjson.strict_jobs(q, ndjson.strict_lines(text), T0)
        return q.backend.enqueue(jobs, T0) if jobs else []


def _rows(db: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(ROW + " ORDER BY id").fetchall()
    finally:
        conn.close()


def _outcome(db: str, run: object) -> tuple[str, object]:
    try:
        ids = run()  # type: ignore[operator]
    except InvalidInput as e:
        return "error", str(e)
    return "ok", (list(ids), _rows(db))


@contextlib.contextmanager
def pipelining(first: int = 1, most: int = 2) -> Iterator[None]:
    """ndjson's pipelined path for a batch of any size (into a queue that exists), in chunks of
    `first` lines, then at most `most`."""
    saved = bulk.PIPELINE_FROM, bulk.FIRST_CHUNK, bulk.MAX_CHUNK
    bulk.PIPELINE_FROM, bulk.FIRST_CHUNK, bulk.MAX_CHUNK = 0, first, most
    try:
        yield
    finally:
        bulk.PIPELINE_FROM, bulk.FIRST_CHUNK, bulk.MAX_CHUNK = saved


def spy_pipelined(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets a 1 each time a batch takes the pipelined path (bulk.pipelined)."""
    used: list[int] = []
    real = bulk.pipelined

    def spy(*a: object) -> object:
        used.append(1)
        return real(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk, "pipelined", spy)
    return used


def _same_as_reference(
    tmp_path: Path, text: str, limit: int = LIMIT, pipelined: bool = False
) -> tuple[str, object]:
    """The batch through `ndjson.enqueue` (read whole into a new file, or pipelined in chunks of
    one or two lines into a file that exists) has the outcome the strict reader alone has."""
    fast_db, ref_db = str(tmp_path / "fast.db"), str(tmp_path / "ref.db")
    for p in (fast_db, ref_db):
        for suffix in ("", "-wal", "-shm"):
            Path(p + suffix).unlink(missing_ok=True)
    if pipelined:
        Queue(fast_db).close()
        with pipelining():
            fast = _outcome(fast_db, lambda: ndjson.enqueue(fast_db, text.encode(), limit, T0))
    else:
        fast = _outcome(fast_db, lambda: ndjson.enqueue(fast_db, text.encode(), limit, T0))
    ref = _outcome(ref_db, lambda: _reference(ref_db, text, limit))
    assert fast == ref
    if fast[0] == "error" and pipelined:  # a fallback rolled back the chunks it had inserted
        assert _rows(fast_db) == []
    return fast


def _fast(text: str, limit: int = LIMIT) -> object:
    """The fast reader's answer without a queue file: parsed lines, or None."""
    return ndjson.fast_parse(text, limit)


# ---- lines the fast reader must hand to the strict one, or read the same way ------------------

TRICKY = [
    ("duplicate key in the payload", '{"type": "a", "payload": {"k": 1, "k": 2}}'),
    ("duplicate key at the top", '{"type": "a", "type": "b", "payload": {}}'),
    ("duplicate key deep inside", '{"type": "a", "payload": [{"x": {"k": 1, "k": 1}}]}'),
    ("NaN", '{"type": "a", "payload": {"k": NaN}}'),
    ("-Infinity", '{"type": "a", "payload": [-Infinity]}'),
    ("1e400 in the payload", '{"type": "a", "payload": [1e400]}'),
    ("1e400 as a delay", '{"type": "a", "delay": 1e400}'),
    ("5000-digit integer", '{"type": "a", "payload": ' + "9" * 5000 + "}"),
    ("lone surrogate", '{"type": "a", "payload": "\\ud800"}'),
    ("surrogate pair", '{"type": "a", "payload": "\\ud83d\\ude00"}'),
    ("deep nesting", '{"type": "a", "payload": ' + "[" * 600 + "]" * 600 + "}"),
    ("nesting at the limit", '{"type": "a", "payload": ' + "[" * 499 + "]" * 499 + "}"),
    ("not an object", "[1, 2]"),
    ("no type", '{"payload": {}}'),
    ("unknown field", '{"type": "a", "prio": 1}'),
    ("type with a space", '{"type": "a b"}'),
    ("type not a string", '{"type": 5}'),
    ("type a list", '{"type": ["a"]}'),
    ("empty type", '{"type": ""}'),
    ("bad priority", '{"type": "a", "priority": "urgent"}'),
    ("payload null", '{"type": "a", "payload": null}'),
    ("no payload", '{"type": "a"}'),
    ("payload a string", '{"type": "a", "payload": "text"}'),
    ("payload true", '{"type": "a", "payload": true}'),
    ("payload false", '{"type": "a", "payload": false}'),
    ("payload a float", '{"type": "a", "payload": 1e15}'),
    ("leading space", ' {"type": "a"}'),
    ("trailing space and CR", '{"type": "a"}  \r'),
    ("whitespace-only line", "   "),
    ("two values on a line", '{"type": "a"} {"type": "b"}'),
    ("form feed after the object", '{"type": "a"}\f'),
    ("no-break space after the object", '{"type": "a"}\u00a0'),
    ("a letter after the object", '{"type": "a"}X'),
    ("deep nesting of objects", '{"type": "a", "payload": ' + '{"k": ' * 600 + "1" + "}" * 601),
    ("unique key", '{"type": "a", "unique_key": "k1"}'),
    ("unique key and delay", '{"type": "a", "unique_key": "k2", "delay": 60}'),
    ("every field", '{"type": "a", "payload": {"p": 1}, "priority": "high", "queue": "q", '
                    '"delay": "1m", "max_attempts": 2, "timeout": "10s"}'),
    ("run_at", '{"type": "a", "run_at": "2030-01-01T00:00:00Z"}'),
    ("delay and run_at", '{"type": "a", "delay": 5, "run_at": 1}'),
    ("markup and escapes", '{"type": "a", "payload": {"s": "[b]x[/b] \\u001b[31m \\u202e"}}'),
    ("colons and backslashes", '{"type": "a:b", "payload": {"u": "http://x", "p": "c:\\\\d"}}'),
    ("non-ASCII", '{"type": "a", "payload": {"é": "日本"}}'),
]  # fmt: skip


@pytest.mark.parametrize("pipelined", [False, True], ids=["whole", "pipelined"])
@pytest.mark.parametrize("line", [c[1] for c in TRICKY], ids=[c[0] for c in TRICKY])
def test_fast_reader_matches_the_strict_one_line_by_line(
    tmp_path: Path, line: str, pipelined: bool
) -> None:
    good = '{"type": "ok", "payload": {"n": 1}}'
    _same_as_reference(tmp_path, "\n".join([good, good, line, good]) + "\n", pipelined=pipelined)


def test_bad_lines_get_the_strict_readers_message(tmp_path: Path) -> None:
    kind, message = _same_as_reference(tmp_path, '{"type": "a"}\n{"type": "a", "payload": {"k": '
                                                 '1, "k": 2}}\n')  # fmt: skip
    assert (kind, message) == ("error", "line 2: invalid JSON: duplicate key 'k' in an object")
    assert not Path(tmp_path / "fast.db").exists()  # bad JSON: the file is not even created


@pytest.mark.parametrize(
    "text",
    ['{"type": "a", "payload": {"k": 1, "k": 2}}', '{"type": "a", "payload": [NaN]}',
     '{"type": "a", "payload": ' + "[" * 600 + "]" * 600 + "}", '{"type": "a"} 1',
     '{"type": "a", "payload": ' + "1" * 5000 + "}", ' {"type": "a"}'],
    ids=["duplicate", "NaN", "deep", "trailing value", "huge int", "leading space"],
)  # fmt: skip
def test_fast_parse_gives_up_on_what_it_cannot_vouch_for(text: str) -> None:
    assert _fast(text) is None


def test_the_common_batch_takes_the_fast_path(tmp_path: Path) -> None:
    text = "".join(json.dumps({"type": f"t{i // 10}", "payload": {"i": i}}) + "\n"
                   for i in range(100))  # fmt: skip
    parsed = _fast(text)
    assert isinstance(parsed, list) and len(parsed) == 100
    with Queue(str(tmp_path / "q.db")) as q:
        runs = ndjson.fast_runs(q, parsed, T0)
    assert runs is not None
    assert [(t.type, n) for t, _, n in runs] == [(f"t{i}", 10) for i in range(10)]
    assert json.loads(runs[3][1]) == [{"i": i} for i in range(30, 40)]


def _expand(runs: list[tuple[NewJob, str, int]]) -> list[tuple[NewJob, object]]:
    """Each job of the runs as (its fields but the payload, its payload)."""
    jobs = []
    for template, array, count in runs:
        elements = json.loads(array)
        assert len(elements) == count
        jobs += [(template, e if isinstance(e, dict) else e[0]) for e in elements]
    return jobs


@pytest.mark.parametrize(
    "lines",
    [
        ['{"type": "a"}', '{"type": "a", "payload": 3}', '{"type": "b", "payload": {"k": 1}}'],
        ['{"type": "a", "payload": null}', '{"type": "a"}', '{"type": "a", "payload": [2]}'],
        ['{"type": "a", "priority": 5, "queue": "q", "payload": [1]}',
         '{"type": "a", "priority": 5, "queue": "q"}',
         '{"type": "b", "max_attempts": 2, "timeout": "10s", "delay": "1m", "payload": "s"}'],
    ],
    ids=["no payload", "null and no payload", "other fields"],
)  # fmt: skip
def test_lines_without_a_payload_or_with_more_fields_take_the_fast_path(
    tmp_path: Path, lines: list[str]
) -> None:
    text = "\n".join(lines) + "\n"
    parsed = _fast(text)
    assert isinstance(parsed, list)
    with Queue(str(tmp_path / "q.db")) as q:
        runs = ndjson.fast_runs(q, parsed, T0)
        strict = ndjson.strict_jobs(q, ndjson.strict_lines(text), T0)
    assert runs is not None, "a common batch fell back to the strict reader"
    assert _expand(runs) == [(j._replace(payload_json="{}"), json.loads(j.payload_json))
                             for j in strict]  # fmt: skip


@pytest.mark.skipif(not hasattr(sys, "set_int_max_str_digits"), reason="no interpreter limit")
@pytest.mark.parametrize("interpreter_limit", [0, 2 * MAX_INT_DIGITS])
def test_a_looser_interpreter_digit_limit_does_not_loosen_jobqs(
    tmp_path: Path, interpreter_limit: int
) -> None:
    # PYTHONINTMAXSTRDIGITS=0 (no limit) or a higher one must not let the C parser accept what
    # the strict reader refuses
    line = '{"type": "a", "payload": ' + "9" * (MAX_INT_DIGITS + 1) + "}"
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(interpreter_limit)
    try:
        assert _fast(line) is None
        kind, message = _same_as_reference(tmp_path, line + "\n")
    finally:
        sys.set_int_max_str_digits(before)
    assert (kind, message) == (
        "error", f"line 1: invalid JSON: integer with {MAX_INT_DIGITS + 1} digits (the limit is "
                 f"{MAX_INT_DIGITS})")  # fmt: skip


@pytest.mark.skipif(not hasattr(sys, "set_int_max_str_digits"), reason="no interpreter limit")
def test_a_python_without_a_digit_limit_gets_jobqs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.10 before 3.10.7: no sys.get_int_max_str_digits, and C parses any integer
    line = '{"type": "a", "payload": ' + "9" * (MAX_INT_DIGITS + 1) + "}"
    before = sys.get_int_max_str_digits()
    monkeypatch.delattr(sys, "get_int_max_str_digits")
    sys.set_int_max_str_digits(0)
    try:
        assert _fast(line) is None
        kind, message = _same_as_reference(tmp_path, line + "\n")
    finally:
        sys.set_int_max_str_digits(before)
    assert kind == "error" and f"integer with {MAX_INT_DIGITS + 1} digits" in str(message)


@pytest.mark.skipif(not hasattr(sys, "set_int_max_str_digits"), reason="no interpreter limit")
def test_integers_are_parsed_in_c_when_the_limits_agree() -> None:
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(MAX_INT_DIGITS)
    try:
        assert ndjson._scanner().parse_int is int  # the C scanner's own int, not a hook
        sys.set_int_max_str_digits(MAX_INT_DIGITS + 1)
        assert ndjson._scanner().parse_int is _parse_int
    finally:
        sys.set_int_max_str_digits(before)


def test_the_fast_readers_guards_let_common_lines_through() -> None:
    line = '{"type": "a"}'
    assert _fast(line, limit=len(line) * 20) is not None  # the size guard is not one too strict
    assert _fast('{"type": "a", "payload": "' + "x" * 1200 + '"}') is not None  # long, flat
    assert _fast('{"type": "a", "payload": ' + "[" * 499 + "]" * 499 + "}") is not None  # 500
    assert _fast('{"type": "a"}\r\n{"type": "b"} \t\r\n') is not None  # CRLF, trailing blanks


@pytest.mark.parametrize(
    ("text", "strict_reads"),
    [('{"type": "a"}\n{"type": "b", "priority": 3}\n', 0),
     ('{"type": "a"}\n{"type": "a", "unique_key": "k"}\n', 1),
     ('{"type": "a", "payload": [NaN]}\n', 1)],
    ids=["common batch", "unique key", "bad line"],
)  # fmt: skip
def test_the_strict_reader_runs_only_when_needed_and_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, strict_reads: int
) -> None:
    calls = []
    real = ndjson.strict_lines

    def spy(text: str) -> list[tuple[int, dict[str, object]]]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(ndjson, "strict_lines", spy)
    with contextlib.suppress(InvalidInput):  # the bad line: its message is checked above
        ndjson.enqueue(str(tmp_path / "q.db"), text.encode(), LIMIT, T0)
    assert len(calls) == strict_reads


@pytest.mark.parametrize("text", ['{"type": "a"}\n', '{"type": "a", "unique_key": "k"}\n', "{"])
def test_a_batch_turns_the_cyclic_collector_back_on(tmp_path: Path, text: str) -> None:
    assert gc.isenabled()
    with contextlib.suppress(InvalidInput):
        ndjson.enqueue(str(tmp_path / "q.db"), text.encode(), LIMIT, T0)
    assert gc.isenabled()
    gc.disable()
    try:
        with contextlib.suppress(InvalidInput):
            ndjson.enqueue(str(tmp_path / "q.db"), text.encode(), LIMIT, T0)
    finally:
        still_off = not gc.isenabled()
        gc.enable()
    assert still_off, "a caller that had turned it off finds it on"


def test_a_payload_that_could_reach_the_limit_is_measured_by_the_strict_reader(
    tmp_path: Path,
) -> None:
    line = json.dumps({"type": "a", "payload": {"s": "x" * 200}})
    assert _fast(line, limit=1000) is None  # 200+ characters could serialise to > 1,000 bytes
    kind, message = _same_as_reference(tmp_path, line + "\n", limit=150)
    assert kind == "error" and "limit" in str(message)
    kind, _ = _same_as_reference(tmp_path, line + "\n", limit=1000)
    assert kind == "ok"


def test_floats_that_grow_when_serialised_stay_under_the_guard() -> None:
    # the guard assumes a payload's compact form is at most 4.5 characters per input character
    for token in ["1e15", "9e15", "1E15", "1e9", "-1e15", "1e-5", "1.5e14", "0e0"]:
        out = json.dumps(json.loads(token), separators=(",", ":"))
        assert len(out) <= 4.5 * len(token), (token, out)


def test_empty_and_blank_batches_enqueue_nothing(tmp_path: Path) -> None:
    for text in ["", "\n", "\n\n\n"]:
        assert _same_as_reference(tmp_path, text) == ("ok", ([], []))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'{"type": "a"}\n{"type": "\xff"}\n{"type": "a"}\n\n',
            "line 2 is not valid UTF-8 (bad byte at offset 10)",
        ),
        (b'\n{"type": "\xff"}\n', "line 2 is not valid UTF-8 (bad byte at offset 10)"),
        (b'{"type": "a"}\n\n[1, 2]\n', "line 3: each line must be a JSON object"),
        (b'{"type": "a", "prio": 1}\n', "line 1: unknown field 'prio'"),
        (b'{"payload": 1}\n', "line 1: missing field 'type'"),
        (
            b'{"type": "a"}\n{"type": \n',
            "line 2: invalid JSON line: Expecting value at line 1 column 10",
        ),
    ],
)
def test_the_strict_reader_names_the_line_and_the_fault(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        ndjson.strict_lines(ndjson.decode(data))
    assert str(e.value) == message


@pytest.mark.parametrize("line", ["\f", "\v", "\u00a0", "\u3000", "X"])
def test_only_spaces_tabs_and_cr_make_a_line_blank(tmp_path: Path, line: str) -> None:
    kind, message = _same_as_reference(tmp_path, '{"type": "a"}\n' + line + "\n")
    assert kind == "error" and str(message).startswith("line 2: "), message


def test_crlf_batch(tmp_path: Path) -> None:
    kind, result = _same_as_reference(tmp_path, '{"type": "a"}\r\n{"type": "b"}\r\n')
    assert kind == "ok"
    assert [row[1] for row in result[1]] == ["a", "b"]  # type: ignore[index]


# ---- generated batches ------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8) | (
    st.floats(allow_nan=False, allow_infinity=False))  # fmt: skip
_payloads = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4),
                                                                          inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_fields = st.fixed_dictionaries(
    {"type": st.sampled_from(["a", "b", "email:send", "a b", "", 7])},
    optional={
        "payload": _payloads,
        "priority": st.sampled_from([0, 10, "high", "low", "urgent", 1.5]),
        "queue": st.sampled_from(["default", "images", "bad queue"]),
        "delay": st.sampled_from(["30s", 5, "soon", -1]),
        "max_attempts": st.sampled_from([1, 3, 0, "x"]),
        "timeout": st.sampled_from(["10s", 0, "never"]),
    },
)
# Raw text lines too: what a hand-written or truncated file holds.
_raw = st.sampled_from(
    ['{"type": "a", "payload": {"k": 1, "k": 2}}', '{"type": "a", "payload": NaN}', "{oops",
     '{"type": "a", "payload": 1e999}', "", "  ", '{"type": "a"}\r', "[]", '"text"',
     '{"type": "a", "payload": "\\ud800"}', '{"type": "b", "type": "a"}']
)  # fmt: skip
_line = _fields.map(lambda f: json.dumps(f, ensure_ascii=False)) | _fields.map(
    lambda f: json.dumps(f, separators=(",", ":"))) | _raw  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_line, max_size=12), pipelined=st.booleans())
def test_generated_batches_match_the_strict_reader(
    tmp_path: Path, lines: list[str], pipelined: bool
) -> None:
    _same_as_reference(tmp_path, "\n".join(lines) + "\n", pipelined=pipelined)


# ---- the store's bulk insert ------------------------------------------------------------------


def test_enqueue_runs_gives_ids_in_order(tmp_path: Path) -> None:
    with Queue(str(tmp_path / "q.db")) as q:
        first = q.enqueue("before")
        ids = q.backend.enqueue_runs(
            [
                (NewJob("a"), '[{"n":1},["s"],[true],[null]]', 4),
                (NewJob("b", priority=5), "[[2]]", 1),
            ],
            T0,
        )
        assert list(ids) == list(range(first + 1, first + 6))
        got = [(j.type, j.payload, j.priority) for j in map(q.get, ids)]
    assert got == [("a", {"n": 1}, 0), ("a", "s", 0), ("a", True, 0), ("a", None, 0), ("b", 2, 5)]


def test_enqueue_runs_writes_nothing_when_a_count_is_wrong(tmp_path: Path) -> None:
    with Queue(str(tmp_path / "q.db")) as q:
        q.enqueue("before")
        with pytest.raises(ValueError, match="held 2 payloads"):
            q.backend.enqueue_runs([(NewJob("a"), "[[1]]", 1), (NewJob("b"), "[[1],[2]]", 3)], T0)
        assert q.count() == 1
        with pytest.raises(ValueError, match=r"^a run of jobs cannot carry a unique key$"):
            q.backend.enqueue_runs([(NewJob("a", unique_key="k"), "[[1]]", 1)], T0)
        assert q.count() == 1
        # a bare scalar element is a caller's mistake (its SQL value is not its JSON text)
        with pytest.raises(JobqError, match="NOT NULL"):
            q.backend.enqueue_runs([(NewJob("a"), "[[1]]", 1), (NewJob("b"), "[[1],2]", 2)], T0)
        assert q.count() == 1


# ---- the pipelined path (jobq.bulk; tests/test_bulk_pipeline.py has the rest) ---------------

READER = "jobq-bulk-builder"


def _readers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == READER]


def _events(location: str) -> int:
    with Queue(location) as q:
        return len(list(q.events(limit=100_000)))


def _batch(n: int, *, types: int = 3) -> str:
    return "".join(json.dumps({"type": f"t{i * types // n}", "payload": {"i": i}}) + "\n"
                   for i in range(n))  # fmt: skip


def test_a_large_batch_into_an_existing_queue_is_pipelined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "q.db")
    Queue(db).close()
    used = spy_pipelined(monkeypatch)
    text = _batch(bulk.PIPELINE_FROM + 10)
    switch = sys.getswitchinterval()
    ids = ndjson.enqueue(db, text.encode(), LIMIT, T0)
    assert used == [1]
    assert list(ids) == list(range(1, bulk.PIPELINE_FROM + 11))
    assert sys.getswitchinterval() == switch and _readers() == []
    with Queue(db) as q:
        got = [(j.type, j.payload) for j in map(q.get, [ids[0], ids[-1]])]
    assert got == [("t0", {"i": 0}), ("t2", {"i": bulk.PIPELINE_FROM + 9})]
    # a new file: the batch is read whole first (bad JSON must not create it)
    new = str(tmp_path / "new.db")
    assert list(ndjson.enqueue(new, text.encode(), LIMIT, T0)) == list(ids)
    assert used == [1]


def test_a_pipelined_batch_matches_the_whole_read_on_every_backend(location: str) -> None:
    Queue(location).close()
    text = _batch(40, types=4)
    with pipelining(3, 7):
        ids = list(ndjson.enqueue(location, text.encode(), LIMIT, T0))
    with Queue(location) as q:
        assert [(j.type, j.payload) for j in map(q.get, ids)] == [
            (f"t{i * 4 // 40}", {"i": i}) for i in range(40)]  # fmt: skip
        assert [e.job_id for e in q.events(kinds="created", limit=100)] == ids
    assert ids == sorted(ids) and len(set(ids)) == 40
    assert _readers() == []


def test_a_fallback_after_inserted_chunks_rolls_them_back(location: str) -> None:
    """A line the fast reader leaves to the strict one (a dependency), late in the batch: the
    chunks inserted before it are rolled back, and the strict reader enqueues the batch once."""
    Queue(location).close()
    with Queue(location) as q:
        first = q.enqueue("first")
    lines = [*_batch(20).splitlines(), json.dumps({"type": "dep", "after": [first]})]
    with pipelining(2, 4):
        ids = list(ndjson.enqueue(location, "\n".join(lines).encode(), LIMIT, T0))
    assert len(ids) == 21
    with Queue(location) as q:
        assert q.count() == 22  # the first job and the batch, once
        assert [j.type for j in map(q.get, ids)][-1] == "dep"
    assert _events(location) == 22


def test_bad_json_late_in_a_large_batch_does_not_create_the_file(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    text = _batch(30) + '{"type": "a", "payload": {"k": 1, "k": 2}}\n'
    with pipelining(), pytest.raises(InvalidInput, match="line 31: invalid JSON: duplicate key"):
        ndjson.enqueue(str(db), text.encode(), LIMIT, T0)
    assert not db.exists()
