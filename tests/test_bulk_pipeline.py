"""jobq.bulk: a large `enqueue_many` or `--ndjson` batch is built on a helper thread while its one
transaction inserts what is built. It must enqueue exactly what the plain path enqueues, name
the same bad item, and write nothing, leaving no thread behind, whichever side fails."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator

import pytest

from jobq import InvalidInput, Queue, bulk, ndjson
from tests.factories import T0
from tests.test_ndjson import LIMIT, pipelining, spy_pipelined

HELPER = "jobq-bulk-builder"


def _helpers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == HELPER]


def _state(location: str) -> tuple[int, list[tuple[object, ...]], int]:
    """(jobs, (type, queue, priority, payload) of each in id order, created events)."""
    with Queue(location) as q:
        jobs = sorted(q.list(limit=10_000), key=lambda j: j.id)
        events = list(q.events(kinds="created", limit=100_000))
    return len(jobs), [(j.type, j.queue, j.priority, j.payload) for j in jobs], len(events)


def _items(n: int) -> list[object]:
    """A mix of every item shape, in runs and not."""
    items: list[object] = []
    for i in range(n):
        if i % 7 == 3:
            items.append({"type": "m", "queue": "q2", "priority": i % 3, "payload": [i]})
        else:
            items.append((f"t{i // 10}", {"i": i} if i % 5 else None))
    return items


def test_chunks_cover_every_item_once_and_shrink_towards_the_end() -> None:
    spans = list(bulk.chunks(100_000))
    assert [i for a, b in spans for i in range(a, b)] == list(range(100_000))
    sizes = [b - a for a, b in spans]
    assert sizes[0] == bulk.FIRST_CHUNK and max(sizes) <= bulk.MAX_CHUNK
    assert sizes[-2] <= bulk.MAX_CHUNK // 2  # the insert left after the last build is short
    assert list(bulk.chunks(0)) == [] and list(bulk.chunks(5)) == [(0, 5)]


def test_enqueue_many_pipelined_enqueues_what_the_plain_path_does(
    location: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _items(60)
    used = spy_pipelined(monkeypatch)
    with pipelining(4, 9), Queue(location) as q:
        ids = q.enqueue_many(items)
    assert used == [1] and _helpers() == []
    plain = str(tmp_path) + "/plain.db"  # type: ignore[operator]
    with Queue(plain) as q:
        plain_ids = q.enqueue_many(iter(items))  # an iterator: never pipelined
    assert used == [1]
    assert ids == plain_ids == list(range(1, 61))
    assert _state(location) == _state(plain)


def test_a_bad_item_late_in_the_batch_is_named_and_nothing_is_written(location: str) -> None:
    items = _items(50)
    items[36] = ("t", {"x": float("nan")})
    with pipelining(4, 9), Queue(location) as q, pytest.raises(InvalidInput) as pipelined:
        q.enqueue_many(items)
    with Queue(location) as q, pytest.raises(InvalidInput) as plain:
        q.enqueue_many(iter(items))
    assert str(pipelined.value) == str(plain.value)
    assert str(pipelined.value).startswith("job 37: ")
    assert _state(location) == (0, [], 0) and _helpers() == []


def test_a_unique_key_late_in_the_batch_hands_it_to_the_plain_path(location: str) -> None:
    with Queue(location) as q:
        held = q.enqueue("u", unique_key="k")
    items = _items(30)
    items[25] = {"type": "u", "unique_key": "k"}
    with pipelining(4, 9), Queue(location) as q:
        ids = q.enqueue_many(items)
    assert ids[25] == held  # the key's holder, as the plain path answers
    assert len(set(ids)) == 30 and ids == [*sorted(ids[:25]), held, *sorted(ids[26:])]
    count, _, created = _state(location)
    assert count == created == 30  # once each, the earlier chunks rolled back


def _ndjson(location: str) -> None:
    text = "".join(json.dumps({"type": f"t{i}", "payload": {"i": i}}) + "\n" for i in range(50))
    ndjson.enqueue(location, text.encode(), LIMIT, T0)


def _many(location: str) -> None:
    with Queue(location) as q:
        q.enqueue_many([(f"t{i}", {"i": i}) for i in range(50)])


@pytest.mark.parametrize("entry", [_ndjson, _many], ids=["ndjson", "enqueue_many"])
@pytest.mark.parametrize("where", ["builder", "inserter"])
def test_a_failure_on_either_side_writes_nothing_and_stops_the_helper(
    location: str, monkeypatch: pytest.MonkeyPatch, where: str, entry: object
) -> None:
    Queue(location).close()
    real_pipelined = bulk.pipelined
    calls = []
    failed = threading.Event()

    def pipelined(q: Queue, build: object, n: int, now: float) -> object:
        def failing_build(start: int, end: int) -> object:
            calls.append(1)
            if where == "builder" and len(calls) == 3:
                raise MemoryError("the builder ran out")
            if where == "inserter" and len(calls) == 4:
                failed.wait(timeout=30)  # inside a chunk when the insert fails
            return build(start, end)  # type: ignore[operator]

        return real_pipelined(q, failing_build, n, now)

    monkeypatch.setattr(bulk, "pipelined", pipelined)
    expected: type[BaseException] = MemoryError
    if where == "inserter":
        real_insert = Queue.insert_runs

        def insert_runs(self: Queue, runs: Iterator[object], now: float) -> object:
            def two_then_fail() -> Iterator[object]:
                for n, run in enumerate(runs):
                    if n == 2:
                        failed.set()
                        raise OSError(28, "No space left on device")
                    yield run

            return real_insert(self, two_then_fail(), now)  # type: ignore[arg-type]

        monkeypatch.setattr(Queue, "insert_runs", insert_runs)
        expected = OSError
    switch = sys.getswitchinterval()
    with pipelining(2, 2), pytest.raises(expected):
        entry(location)  # type: ignore[operator]
    assert _helpers() == [] and sys.getswitchinterval() == switch
    assert _state(location) == (0, [], 0)
