"""The dashboard's filter bar takes payload field conditions and time bounds (jobq.where): the
lists narrow to them, a bad token keeps the bar open with the error, and bulk actions use them."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from devtools.screenshots import SIZE, first_load
from jobq import Queue
from tests.test_tui_actions import until
from tui.app import JobqApp, make_app
from tui.data import Counts, Filter, Request, Snapshot, load, parse_filter
from tui.screens.dialogs import ConfirmScreen, PromptScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def path(tmp_path: Path) -> str:
    db = str(tmp_path / "q.db")
    with Queue(db) as q:
        q.enqueue_many(
            [("t", {"user": {"id": 42}, "n": 10, "kind": "prod"}),
             ("t", {"user": {"id": 42}, "n": 3, "kind": "test"}),
             ("t", {"user": {"id": 7}, "n": 12}),
             ("t", {"user": {"id": "42"}, "n": 1})]
        )  # fmt: skip
    return db


def shown(app: JobqApp) -> list[int]:
    snap = app.main.snapshot
    return [] if snap is None else [j.id for j in snap.jobs]


def total(app: JobqApp) -> int | None:
    snap = app.main.snapshot
    return None if snap is None else snap.total


def test_parse_filter_tokens() -> None:
    f = parse_filter("type:t payload.user.id:42 payload.n:>9 'payload.kind:!=test' since:2h x")
    assert (f.type_glob, f.search, f.since, f.until) == ("t", "x", "2h", None)
    assert [str(c) for c in f.where] == ["payload.user.id=42", "payload.n>9", "payload.kind!=test"]
    assert parse_filter(f.describe()) == f  # what the bar shows again parses to the same filter
    assert parse_filter("until:2026-12-01T00:00:00Z").until == "2026-12-01T00:00:00Z"
    assert parse_filter("") == Filter() and not Filter()
    assert Filter(since="1h")


async def test_payload_conditions_narrow_the_list(path: str) -> None:
    app = make_app(path, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        assert sorted(shown(app)) == [1, 2, 3, 4]
        await pilot.press("slash", *"payload.user.id:42 payload.n:>9", "enter")
        await until(pilot, lambda: shown(app) == [1], "only job 1: id 42 (a number) and n > 9")
        assert app.screen is app.main
        await pilot.press("slash", "ctrl+u", *"payload.kind:!=test since:1h", "enter")
        await until(pilot, lambda: sorted(shown(app)) == [1, 3, 4], "a missing kind is != test")
        await pilot.press("slash", "ctrl+u", *"until:1h", "enter")
        await until(pilot, lambda: shown(app) == [] and total(app) == 0, "none an hour ago")


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("payload.user id:1", "bad filter"),
        ("payload.n:<true", "compares numbers or strings"),
        ("payload.a[0]:1", "path segments"),
        ("since:yesterday", "cannot parse since: 'yesterday'"),
    ],
)
async def test_a_bad_token_keeps_the_bar_open_with_the_error(
    path: str, typed: str, error: str
) -> None:
    app = make_app(path, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("slash", *typed, "enter")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen), "a bad token closed the bar"
        message = str(app.screen.query_one("#prompt-error").render())
        assert error in message
        await pilot.press(*"x")  # typed keys stay in the bar: nothing reaches the list
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("escape")
        assert app.screen is app.main and not app.main.filter
        assert sorted(shown(app)) == [1, 2, 3, 4]


async def test_bulk_action_uses_the_payload_filter(path: str) -> None:
    app = make_app(path, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("slash", *"payload.user.id:42", "enter")
        await until(pilot, lambda: sorted(shown(app)) == [1, 2])
        await pilot.press("a", "c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asks first")
        assert app.screen.question == (  # type: ignore[attr-defined]
            "Cancel 2 jobs in the Pending tab matching payload.user.id:42?"
        )
        await pilot.press("y")
        with Queue(path) as q:
            await until(pilot, lambda: q.count("cancelled") == 2, "both cancelled")
            assert q.get(4).state.value == "pending"  # "42" is a string: not selected


def test_a_slow_filtered_count_is_kept_like_a_slow_state(path: str) -> None:
    """A payload filter's count scans the whole tab: while it costs more than `slow_ms` it is
    taken again at most every `slow_every` seconds (the page itself is read every load)."""
    req = Request("pending", parse_filter("payload.user.id:42"))
    with Queue(path) as q:
        slow = Counts(slow_ms=-1.0, slow_every=3600.0)  # every count counts as slow
        fresh = Counts(slow_ms=1e9)  # no count is slow: always taken again
        assert slow.filtered(q, req, time.time()) == fresh.filtered(q, req, time.time()) == 2
        q.enqueue("t", {"user": {"id": 42}})
        assert slow.filtered(q, req, time.time()) == 2
        assert fresh.filtered(q, req, time.time()) == 3
        other = Request("pending", parse_filter("payload.user.id:7"))
        assert slow.filtered(q, other, time.time()) == 1  # another filter is counted at once
        snap = load(q, req, time.time(), fresh)
        assert (snap.total, sorted(j.id for j in snap.jobs)) == (3, [1, 2, 5])


async def test_a_slow_filter_loads_in_the_background_and_says_so(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the loader thread is busy with a filtered read (held here until released, as a
    payload scan over a million jobs takes seconds), keys are answered and the status line says
    the list is not filtered yet; then the filtered list replaces it."""
    import tui.loader
    from tui.screens.dialogs import HelpScreen

    release = threading.Event()
    real = tui.loader.load

    def held(q: Queue, req: Request, now: float, *rest: Any) -> Snapshot:
        if req.filter.where:
            release.wait(30)
        return real(q, req, now, *rest)

    monkeypatch.setattr(tui.loader, "load", held)
    app = make_app(path, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("slash", *"payload.n:>9", "enter")
        await until(pilot, lambda: "filtering…" in status(app), "the status says it is filtering")
        assert sorted(shown(app)) == [1, 2, 3, 4]  # still the previous list
        await pilot.press("question_mark")  # the UI answers while the loader is held
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help opened")
        await pilot.press("escape")
        release.set()
        await until(pilot, lambda: sorted(shown(app)) == [1, 3], "the filtered list")
        await until(pilot, lambda: "filtering…" not in status(app))
        assert "payload.n:>9" in status(app)


def status(app: JobqApp) -> str:
    return str(app.main.query_one("#status", Static).render())
