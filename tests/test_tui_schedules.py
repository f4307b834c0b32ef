"""The dashboard's schedules screen (`s`), on each backend: every schedule with its cron line,
zone, type, queue, state, next run and last job; `enter` opens the last job; `P` pauses and
resumes, refused in read-only mode; names from the queue are shown literally."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.screenshots import SIZE, first_load, seed_schedules, seeded_app
from devtools.showcase import SHOWCASE_NOW
from jobq import JobState, Queue, Schedule
from tui.app import JobqApp, make_app
from tui.screens.detail import DetailScreen
from tui.screens.schedules import SchedulesScreen

pytestmark = pytest.mark.anyio
NOW = SHOWCASE_NOW


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(pilot: object, condition: Callable[[], object], what: str = "") -> None:
    """Let the app run until `condition` holds (fail after ~5 s)."""
    for _ in range(500):
        if condition():
            return
        await pilot.pause(0.01)  # type: ignore[attr-defined]
    pytest.fail(f"condition not met: {what or condition}")


def shown(app: JobqApp) -> dict[str, list[str]]:
    """The schedules screen's rows as text, by schedule name."""
    screen = app.screen
    assert isinstance(screen, SchedulesScreen)
    table = screen.table
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


async def open_schedules(pilot: object, app: JobqApp, n: int) -> SchedulesScreen:
    await pilot.press("s")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, SchedulesScreen)
                and len(app.screen.schedules) == n and len(shown(app)) == n)  # fmt: skip
    assert isinstance(app.screen, SchedulesScreen)
    return app.screen


def by_name(q: Queue) -> dict[str, Schedule]:
    return {s.name: s for s in q.schedules()}


async def test_every_column_and_enter_opens_the_last_job(location: str) -> None:
    app = seeded_app(location)
    seed_schedules(location)
    with Queue(location) as q:
        last = {s.name: s.last_job_id for s in q.schedules()}
        assert last["cleanup"] is None and last["digest"] and last["nightly-report"]
        assert q.get(last["nightly-report"]).state is JobState.SUCCEEDED
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await open_schedules(pilot, app, 3)
        rows = shown(app)
        assert rows["nightly-report"] == [
            "nightly-report", "0 2 * * *", "Europe/Paris", "report.build", "reports", "active",
            "in 1h00m · 2026-01-01 02:00 CET", f"{last['nightly-report']}  succeeded",
        ]  # fmt: skip
        assert rows["digest"][5:] == ["active", "due · 2026-01-01 00:00 UTC",
                                      f"{last['digest']}  pending"]  # fmt: skip
        assert rows["cleanup"][5:] == ["paused", "-", "-"]
        # names are in order: cleanup, digest, nightly-report; open the nightly report's job
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.job_id == last["nightly-report"]
        await until(pilot, lambda: getattr(app.screen, "job", None) is not None)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)


async def test_p_pauses_then_resumes_from_the_next_slot(location: str) -> None:
    app = seeded_app(location)  # a real clock for the writes: resume computes from now
    seed_schedules(location)
    q = Queue(location)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await first_load(pilot)
            await open_schedules(pilot, app, 3)
            await pilot.press("down")  # digest, which is due
            await pilot.press("P")
            await until(pilot, lambda: by_name(q)["digest"].paused, "digest paused")
            await until(pilot, lambda: shown(app)["digest"][5] == "paused", "shown paused")
            await pilot.press("P")
            await until(pilot, lambda: not by_name(q)["digest"].paused, "digest resumed")
            # a resume never fires the missed slot: the next run is after the resume
            import time

            assert by_name(q)["digest"].next_at > time.time() - 1
            await until(pilot, lambda: shown(app)["digest"][5] == "active", "shown active")
            assert by_name(q)["nightly-report"].paused is False  # only the selected one
    finally:
        q.close()


async def test_read_only_refuses_p_and_hides_it(location: str) -> None:
    app = seeded_app(location, read_only=True)
    seed_schedules(location)
    with Queue(location) as q:
        before = q.schedules()
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        screen = await open_schedules(pilot, app, 3)
        footer = {k for k, b in screen.active_bindings.items() if b.enabled and b.binding.show}
        assert "P" not in footer and "enter" in footer
        await pilot.press("P", "down", "P")
        await pilot.pause(0.2)
        assert any("read-only" in str(n.message) for n in app._notifications)
    with Queue(location) as q:
        assert q.schedules() == before


async def test_a_schedule_added_elsewhere_appears_and_names_are_literal(location: str) -> None:
    app = make_app(location, watch=True)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await open_schedules(pilot, app, 0)
        hostile = "[b]x[/b][@click=app.quit]"
        with Queue(location) as q:
            s = Schedule(name=hostile, cron="*/5 * * * *", tz="UTC", type="[red]t",
                         queue="q\x1b[2J", payload_json="{}", priority=0, paused=False,
                         next_at=NOW)  # fmt: skip
            q.backend.put_schedule(s, NOW)
        await until(pilot, lambda: hostile in shown(app), "the new schedule on screen")
        row = shown(app)[hostile]
        assert row[:5] == [hostile, "*/5 * * * *", "UTC", "[red]t", "q␛[2J"]
        await pilot.press("enter")  # it has no job yet: a notice, no detail
        await until(pilot, lambda: any("has not enqueued" in str(n.message)
                                       for n in app._notifications))  # fmt: skip
        assert isinstance(app.screen, SchedulesScreen) and app.is_running
