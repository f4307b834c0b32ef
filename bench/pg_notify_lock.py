"""Do concurrent durable commits that NOTIFY lose group commit? (README, "The cost of waking in
the transaction".)

P producer processes each make N single-row durable commits into a plain table, in three ways,
interleaved round by round on one fsync-on server (pg_common's): no NOTIFY, `pg_notify` inside
the transaction (what jobq's triggers do), and `pg_notify` in its own transaction right after
the commit. Prints commits/s per round and the medians.

    .venv/bin/python bench/pg_notify_lock.py [P ...]   # default: 1 8 16
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time

import pg_common

N = 150
ROUNDS = 4
MODES = ("none", "in", "after")


def _producer(conninfo: str, mode: str) -> None:
    import psycopg

    with psycopg.connect(conninfo) as c:
        for i in range(N):
            with c.transaction():
                c.execute("INSERT INTO t (v) VALUES (%s)", (i,))
                if mode == "in":
                    c.execute("SELECT pg_notify('bench', '')")
            if mode == "after":
                with c.transaction():
                    c.execute("SELECT pg_notify('bench', '')")


def _round(conninfo: str, mode: str, producers: int) -> float:
    ps = [multiprocessing.Process(target=_producer, args=(conninfo, mode))
          for _ in range(producers)]  # fmt: skip
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a producer failed (exit {p.exitcode})")
    return producers * N / (time.perf_counter() - t0)


def main(argv: list[str]) -> None:
    counts = [int(a) for a in argv] or [1, 8, 16]
    print(pg_common.facts(), f"load {os.getloadavg()[0]:.1f}")
    with pg_common.database("notify") as db:
        with pg_common.connect(db) as c:
            c.execute("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int)")
        conninfo = pg_common.conninfo(db)
        for producers in counts:
            rates: dict[str, list[float]] = {m: [] for m in MODES}
            for _ in range(ROUNDS):
                for mode in MODES:
                    rates[mode].append(_round(conninfo, mode, producers))
            med = {m: statistics.median(v) for m, v in rates.items()}
            print(f"{producers} producers: " + ", ".join(
                f"{m} {med[m]:,.0f}/s {[round(x) for x in rates[m]]}" for m in MODES)
                + f"; in/none {med['in'] / med['none']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
