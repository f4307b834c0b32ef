"""Real processes on one queue file: producers through jobq.Queue, consumers through the Store.

Every job must be claimed exactly once and no "database is locked" may reach a caller.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from typing import Any

import pytest

import jobq
from jobq.store import Store

PRODUCERS = 8
CONSUMERS = 4
PER_PRODUCER = 1000


def produce(db_path: str, n: int, index: int, start: Any, results: Any) -> None:
    """Child: enqueue `n` jobs, one durable call each; report the ids (or the error)."""
    try:
        with jobq.Queue(db_path) as q:
            start.wait()
            ids = [q.enqueue("work", {"producer": index, "n": i}) for i in range(n)]
        results.put(("produced", index, ids, None))
    except BaseException as e:
        results.put(("produced", index, [], f"{type(e).__name__}: {e}"))


def consume(db_path: str, index: int, start: Any, producers_done: Any, results: Any) -> None:
    """Child: claim and complete until the producers are done and nothing is pending."""
    worker = f"consumer-{index}/1"
    claimed: list[int] = []
    try:
        store = Store(db_path)
        start.wait()
        while True:
            # read the flag before claiming: an empty claim after it was set means all is done
            finished = producers_done.is_set()
            jobs = store.claim(worker, time.time(), 300.0, limit=1 + index % 3)
            if not jobs:
                if finished:
                    break
                time.sleep(0.002)
                continue
            claimed.extend(j.id for j in jobs)
            done = [(j.id, j.lease_token or "", '"ok"', None) for j in jobs]
            assert all(store.complete_many(done, time.time()))
        store.close()
        results.put(("consumed", index, claimed, None))
    except BaseException as e:
        results.put(("consumed", index, claimed, f"{type(e).__name__}: {e}"))


@pytest.mark.timeout(120)
def test_eight_producers_four_consumers_every_job_claimed_once(db_path: str) -> None:
    Store(db_path).close()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PRODUCERS + CONSUMERS)
    producers_done = ctx.Event()
    results = ctx.Queue()
    producers = [
        ctx.Process(target=produce, args=(db_path, PER_PRODUCER, i, start, results))
        for i in range(PRODUCERS)
    ]
    consumers = [
        ctx.Process(target=consume, args=(db_path, i, start, producers_done, results))
        for i in range(CONSUMERS)
    ]
    for p in producers + consumers:
        p.start()
    try:
        produced: dict[int, list[int]] = {}
        consumed: dict[int, list[int]] = {}
        errors: list[str] = []
        while len(produced) < PRODUCERS:
            _, index, ids, error = results.get(timeout=100)
            assert _ == "produced", "a consumer stopped before the producers finished"
            produced[index] = ids
            if error:
                errors.append(f"producer {index}: {error}")
        producers_done.set()
        while len(consumed) < CONSUMERS:
            _, index, ids, error = results.get(timeout=100)
            consumed[index] = ids
            if error:
                errors.append(f"consumer {index}: {error}")
    finally:
        for p in producers + consumers:
            p.join(10)
            if p.is_alive():
                p.kill()

    assert errors == []
    all_ids = sorted(i for ids in produced.values() for i in ids)
    assert len(all_ids) == PRODUCERS * PER_PRODUCER
    assert len(set(all_ids)) == len(all_ids), "every enqueue got its own id"
    claimed = [i for ids in consumed.values() for i in ids]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert sorted(claimed) == all_ids
    for ids in produced.values():
        assert ids == sorted(ids), "one producer's ids increase"

    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute(
            "SELECT state, attempts, count(*) FROM jobs GROUP BY state, attempts"
        ).fetchall() == [("succeeded", 1, len(all_ids))]
        assert conn.execute(
            "SELECT count(*), count(DISTINCT job_id), min(outcome), max(outcome) FROM attempts"
        ).fetchone() == (len(all_ids), len(all_ids), "succeeded", "succeeded")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
