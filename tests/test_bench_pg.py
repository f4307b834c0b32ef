"""The PostgreSQL section of `just bench` (bench/pg_*.py) runs in a tiny size: on its own
throwaway server, every subject's figures come out positive and every peer really enqueued and
ran every job (the parts check the peers' own tables and raise otherwise). Skips without the bench
extra (`pip install -e '.[bench]'`) or, outside CI, without a PostgreSQL server."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NO_EXTRA = "the bench extra is not installed (pip install -e '.[bench]')"
for _name in ("pgqueuer", "procrastinate", "asyncpg", "psycopg"):
    pytest.importorskip(_name, reason=NO_EXTRA)

BENCH = str(Path(__file__).resolve().parent.parent / "bench")
PEERS = ("pgqueuer", "procrastinate")


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """bench/'s PostgreSQL modules, with the bench's server started (and destroyed after)."""
    sys.path.insert(0, BENCH)
    names = ("common", "run", "pg_common", "pg_drain", "pg_enqueue", "pg_latency", "pg_scale")
    mods = {name: importlib.import_module(name) for name in names}
    try:
        mods["pg_common"].server()
    except mods["common"].Skip as e:
        if os.environ.get("CI") or os.environ.get("TESTS_REQUIRE_PG") == "1":
            pytest.fail(f"CI must run the PostgreSQL bench test: {e}")
        pytest.skip(str(e))
    yield mods
    mods["pg_common"].stop_server()
    sys.path.remove(BENCH)


@pytest.fixture(scope="module")
def jobq_on_pg(bench: dict[str, ModuleType]) -> bool:
    """True when this checkout's jobq opens a PostgreSQL queue (its enqueue rows must be there)."""
    return bench["pg_common"].jobq_pg_missing() is None


@pytest.fixture(scope="module")
def pool_on_pg(bench: dict[str, ModuleType]) -> bool:
    """True when `jobq work` runs on PostgreSQL here (its drain, latency, scale rows must be)."""
    return bench["pg_common"].jobq_pg_missing(pool=True) is None


def tiny(bench: dict[str, ModuleType]) -> Any:
    return bench["common"].Config(quick=True, repeats=1)


def test_run_py_has_the_pg_section(bench: dict[str, ModuleType]) -> None:
    run = bench["run"]
    assert run.GROUPS["pg"] == ["pg-enqueue", "pg-drain", "pg-latency", "pg-scale"]
    for part in run.GROUPS["pg"]:
        assert callable(importlib.import_module(run.PARTS[part]).run)


def test_server_is_durable(bench: dict[str, ModuleType]) -> None:
    facts = bench["pg_common"].facts()
    assert facts["fsync"] == "on" and facts["synchronous_commit"] == "on"


def test_drain(
    bench: dict[str, ModuleType], pool_on_pg: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_drain = bench["pg_drain"]
    monkeypatch.setitem(pg_drain.SIZES, "jobs", (150, 150))
    rows = {r.metric: r for r in pg_drain.run(tiny(bench))}
    for peer in PEERS:
        (row,) = [r for name, r in rows.items() if name.startswith(f"PG drain vs {peer}")]
        assert row.extra["jobs"] == 150 and row.extra["peer_done"] == [150]
        peer_span = row.baseline if pool_on_pg else row.extra["peer_span"]
        assert peer_span["median"] > 0 and row.extra["peer_wall"]["median"] > 0
        if pool_on_pg:
            assert row.jobq["median"] > 0 and row.ratio > 0 and row.met is not None
    if pool_on_pg:
        jq = rows["PG drain, jobq work -c 4, first start→last end"]
        assert jq.extra["done"] == [150] and jq.jobq["median"] > 0


def test_enqueue(
    bench: dict[str, ModuleType], jobq_on_pg: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_enqueue = bench["pg_enqueue"]
    monkeypatch.setitem(pg_enqueue.SIZES, "single", (20, 20))
    monkeypatch.setitem(pg_enqueue.SIZES, "bulk", (500, 500))
    monkeypatch.setitem(pg_enqueue.SIZES, "process_runs", (2, 2))
    rows = pg_enqueue.run(tiny(bench))
    single, bulk = rows[0], next(r for r in rows if "--ndjson" in r.metric)
    want = {"floor", "floortx", *PEERS} | ({"jobq"} if jobq_on_pg else set())
    assert set(single.extra["medians"]) == want  # each checked to have enqueued all 21 rows
    assert all(v > 0 for v in single.extra["medians"].values())
    assert bulk.extra["jobs"] == 500
    assert set(bulk.extra["medians"]) == {"copy"} | ({"ndjson", "many"} if jobq_on_pg else set())
    assert all(v > 0 for v in bulk.extra["medians"].values())
    if jobq_on_pg:
        assert single.ratio > 0 and single.met is not None
        wall = next(r for r in rows if "process wall" in r.metric)
        assert wall.jobq["median"] > 0 and wall.baseline["median"] > 0


def test_latency(bench: dict[str, ModuleType], pool_on_pg: bool) -> None:
    rows = bench["pg_latency"].run(tiny(bench))
    median = next(r for r in rows if r.metric.endswith("after 2 s idle, median"))
    lat = median.extra["latency_ms"]
    assert set(lat) == set(PEERS) | ({"jobq"} if pool_on_pg else set())
    for name, values in lat.items():  # every stamp job ran (the part waits for all 50)
        assert len(values) == 50 and all(v > 0 for v in values), name
    if pool_on_pg:
        assert median.jobq["median"] > 0 and median.met is not None


def test_scale(
    bench: dict[str, ModuleType], pool_on_pg: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pool_on_pg:
        pytest.skip("`jobq work` does not run on PostgreSQL here (pg-scale measures jobq)")
    pg_scale = bench["pg_scale"]
    monkeypatch.setitem(pg_scale.SIZES, "history", ((0, 3000), (0, 3000)))
    monkeypatch.setitem(pg_scale.SIZES, "claims", (100, 100))
    monkeypatch.setitem(pg_scale.SIZES, "drains", (1, 1))
    rows = pg_scale.run(tiny(bench))
    assert rows[0].jobq["median"] > 0 and rows[0].baseline["median"] > 0 and rows[0].ratio > 0
    assert all(r.extra["drain_jobs_per_s"][0] > 0 for r in rows[1:])
