"""The dashboard's loaders: filters, cheap counts, paging (diagnoses: test_diagnose.py)."""

from __future__ import annotations

from devtools.showcase import SHOWCASE_NOW
from jobq import Queue
from tests.factories import new_job
from tui.data import (
    Counts,
    Filter,
    Request,
    cursor_of,
    load,
    parse_filter,
)
from tui.widgets.render import sparkline

NOW = SHOWCASE_NOW


def test_parse_filter() -> None:
    assert parse_filter("type:email.* queue:mail refused") == Filter("email.*", "mail", "refused")
    assert parse_filter("webhook.* timeout") == Filter("webhook.*", None, "timeout")
    assert parse_filter('"two words"') == Filter(None, None, "two words")
    assert parse_filter("") == Filter()
    assert not Filter()
    assert Filter("a*", "q", "t").describe() == "type:a* queue:q t"


def test_load_pages_with_keyset_cursors(location: str) -> None:
    path = location
    with Queue(path) as q:
        q.enqueue_many([{"type": "t", "payload": {"n": i}, "priority": i % 3} for i in range(25)])
        seen: list[int] = []
        req = Request("pending", page_size=10)
        while True:
            snap = load(q, req, NOW)
            seen += [j.id for j in snap.jobs]
            assert snap.total == 25
            if not snap.has_more:
                break
            req = Request("pending", after=cursor_of("pending", snap.jobs[-1]), page_size=10)
        claim_order = [j.id for j in q.list("pending", order="claim", limit=100)]
        assert seen == claim_order
        filtered = load(q, Request("pending", Filter(search='"n":2}')), NOW)
        assert filtered.total == len(filtered.jobs) == 1


def test_counts_recount_slow_states_less_often(location: str) -> None:
    with Queue(location) as q:
        counts = Counts(slow_ms=-1, slow_every=3600)  # every state counts as slow
        assert counts.get(q)["pending"] == 0
        q.enqueue("t")
        assert counts.get(q)["pending"] == 0  # cached
        assert Counts().get(q)["pending"] == 1


def test_counts_wait_for_a_change_and_defer_slow_ones_while_busy(location: str) -> None:
    path = location
    with Queue(path) as q, Queue(path) as writer:
        counts = Counts(slow_ms=-1, slow_every=0, slow_max=3600)  # every state counts as slow
        assert counts.get(q)["pending"] == 0
        writer.enqueue("t")  # another connection commits: the file changed
        assert counts.get(q)["pending"] == 1
        counts.defer_slow = True  # keys are being pressed: slow states wait up to slow_max
        writer.enqueue("t")
        assert counts.get(q)["pending"] == 1
        counts.defer_slow = False
        assert counts.get(q)["pending"] == 2  # still owed, though the file did not change


def test_sparkline() -> None:
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([0, 5, 10]) == "▁▅█"


def test_succeeded_pages_by_finish_time_latest_first(location: str) -> None:
    """The Succeeded tab's order is its "finished … ago" column's: ids say nothing about it."""
    from jobq.backend import ClaimFilter, Role, open_backend

    path = location
    s = open_backend(path, Role.WORKER)
    try:
        finish = {}  # id -> finish time; the first enqueued finishes last
        for n, at in enumerate([NOW - 5, NOW - 50, NOW - 30, NOW - 30, NOW - 40]):
            s.enqueue([new_job("t", payload_json=f'{{"n": {n}}}')], NOW - 100)
            job = s.claim("w/1", NOW - 90, 30, ClaimFilter(types=("t",)))[0]
            s.complete_many([(job.id, job.lease_token or "", None, None)], at)
            finish[job.id] = at
    finally:
        s.close()
    want = sorted(finish, key=lambda i: (-finish[i], -i))
    assert want != sorted(finish, reverse=True)  # not the id order
    with Queue(path) as q:
        assert [j.id for j in load(q, Request("succeeded"), NOW).jobs] == want
        seen: list[int] = []
        req = Request("succeeded", page_size=2)  # pages cut through the tie at NOW - 30
        while True:
            snap = load(q, req, NOW)
            seen += [j.id for j in snap.jobs]
            if not snap.has_more:
                break
            req = Request("succeeded", page_size=2, after=cursor_of("succeeded", snap.jobs[-1]))
        assert seen == want
