"""Prometheus metrics of a queue: `jobq metrics` prints them, `jobq work --metrics` serves them.

Every figure is read from the queue itself at scrape time, so any pool (or a cron job writing
node exporter's textfile) reports the whole queue, summed over every pool and host:

- `jobq_jobs{state,queue,type}`: jobs per state (gauge);
- `jobq_oldest_due_seconds{queue}`: how long the oldest due pending job has waited (gauge);
- `jobq_attempts_total{type,outcome}`: ended attempts (counter; outcome succeeded, failed,
  timeout, crashed, cancelled, interrupted) and `jobq_failures_total{type}` (failed, timeout or
  crashed attempts);
- `jobq_run_seconds{type}`: run time of ended attempts (histogram);
- `jobq_pool_busy_slots{pool}` / `jobq_pool_slots{pool,host}`: running jobs and concurrency of
  each live pool (gauges);
- `jobq_limit_running{key}` / `jobq_limit_concurrency{key}`: running jobs of each limit across
  pools (`jobq limit`) and its concurrency, when it has one (gauges).

Counters include pruned history (the store keeps what a prune deletes), so they never go down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .backend import Role, open_backend
from .basics import RUN_SECONDS_BOUNDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .backend import Backend

FAILURES = ("failed", "timeout", "crashed")


class QueueCollector(Collector):
    """Reads the queue at `location` on each collect (a fresh read-only connection: a scrape runs
    on the HTTP server's thread)."""

    def __init__(self, location: str, clock: Callable[[], float] = time.time) -> None:
        self.location = location
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        backend = open_backend(self.location, Role.READER)
        try:
            yield from families(backend, self.clock())
        finally:
            backend.close()


def families(backend: Backend, now: float) -> list[Metric]:
    """Every metric family of the queue behind `backend` at `now`."""
    data = backend.metric_totals(now)
    jobs = GaugeMetricFamily("jobq_jobs", "Jobs per state, queue and type.",
                             labels=["state", "queue", "type"])  # fmt: skip
    for state, queue, type_, n in data["jobs"]:
        jobs.add_metric([str(state), str(queue), str(type_)], float(n))
    due = GaugeMetricFamily("jobq_oldest_due_seconds",
                            "Seconds the oldest due pending job of each queue has waited.",
                            labels=["queue"])  # fmt: skip
    for queue, run_at in data["due"]:
        due.add_metric([str(queue)], max(0.0, now - float(run_at)))
    attempts = CounterMetricFamily("jobq_attempts", "Ended attempts per job type and outcome.",
                                   labels=["type", "outcome"])  # fmt: skip
    failures = CounterMetricFamily("jobq_failures",
                                   "Attempts that failed, timed out or crashed, per job type.",
                                   labels=["type"])  # fmt: skip
    failed: dict[str, float] = {}
    for type_, outcome, n in data["attempts"]:
        attempts.add_metric([str(type_), str(outcome)], float(n))
        if outcome in FAILURES:
            failed[str(type_)] = failed.get(str(type_), 0.0) + float(n)
    for type_, n in sorted(failed.items()):
        failures.add_metric([type_], n)
    run = HistogramMetricFamily("jobq_run_seconds", "Run time of ended attempts per job type.",
                                labels=["type"])  # fmt: skip
    seconds = {str(t): float(s) for t, s in data["seconds"]}
    per_type: dict[str, list[float]] = {}
    for type_, b, n in data["buckets"]:
        counts = per_type.setdefault(str(type_), [0.0] * (len(RUN_SECONDS_BOUNDS) + 1))
        counts[int(b)] += float(n)
    for type_, per_bucket in sorted(per_type.items()):
        cumulative, total = [], 0.0
        for bound, n in zip([*map(str, RUN_SECONDS_BOUNDS), "+Inf"], per_bucket, strict=True):
            total += n
            cumulative.append((bound, total))
        run.add_metric([type_], cumulative, seconds.get(type_, 0.0))
    busy = GaugeMetricFamily("jobq_pool_busy_slots", "Running jobs of each pool.",
                             labels=["pool"])  # fmt: skip
    for pool, n in data["busy"]:
        busy.add_metric([str(pool)], float(n))
    slots = GaugeMetricFamily("jobq_pool_slots", "Concurrency of each live pool.",
                              labels=["pool", "host"])  # fmt: skip
    for w in backend.workers():
        if w.alive(now):
            slots.add_metric([w.id, w.host], float(w.concurrency))
    limit_running = GaugeMetricFamily(
        "jobq_limit_running", "Running jobs of each limit across pools.", labels=["key"]
    )
    limit_cap = GaugeMetricFamily(
        "jobq_limit_concurrency", "Concurrency of each limit across pools.", labels=["key"]
    )
    for s in backend.limits():
        limit_running.add_metric([s.limit.key], float(s.running))
        if s.limit.concurrency is not None:
            limit_cap.add_metric([s.limit.key], float(s.limit.concurrency))
    return [jobs, due, attempts, failures, run, busy, slots, limit_running, limit_cap]


def registry_for(location: str) -> CollectorRegistry:
    """A registry holding only the queue's metrics (no process metrics of this process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(location))
    return registry


def exposition(location: str) -> str:
    """The text exposition format of the queue's metrics (what `jobq metrics` prints)."""
    from prometheus_client import generate_latest

    return generate_latest(registry_for(location)).decode()


def serve(location: str, host: str, port: int) -> object:
    """Serve /metrics on host:port from a daemon thread; return the server (shutdown() stops it)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry_for(location))
    return server
