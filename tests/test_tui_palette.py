"""The command palette (ctrl+p) holds jobq's own commands: go to a job by id, switch tab,
filters, pause/resume a queue, retry an error group; names from the file shown literally."""

from __future__ import annotations

import json

import pytest
from textual.command import CommandList, CommandPalette
from textual.css.query import NoMatches
from textual.widgets.option_list import OptionDoesNotExist

from devtools.screenshots import SIZE, first_load, seeded_app
from jobq import JobState, NewJob, Queue
from jobq.backend import Role, open_backend
from tests.test_tui_actions import until
from tui.app import JobqApp, make_app
from tui.screens.detail import DetailScreen
from tui.screens.dialogs import ConfirmScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(location: str) -> JobqApp:
    return seeded_app(location)


@pytest.fixture
def q(app: JobqApp) -> Queue:
    return Queue(app.db_path)


def hits(app: JobqApp) -> list[str]:
    """The palette's options as shown (plain text); [] while it is between two searches."""
    try:
        options = app.screen.query_one(CommandList)
        return [str(options.get_option_at_index(i).prompt).split("\n")[0]
                for i in range(options.option_count)]  # fmt: skip
    except (NoMatches, OptionDoesNotExist):  # the palette replaces its options as hits arrive
        return []


async def palette(pilot: object, app: JobqApp, query: str, first: str) -> list[str]:
    """Open the palette, type `query`, wait until the first hit starts with `first`."""
    await pilot.press("ctrl+p")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), "palette open")
    await pilot.press(*query)  # type: ignore[attr-defined]
    await until(pilot, lambda: hits(app) and hits(app)[0].startswith(first), f"hit {first!r}")
    return hits(app)


async def choose(pilot: object, app: JobqApp, query: str, first: str) -> None:
    """Run the first hit, once the search has settled with `first` on top."""
    await palette(pilot, app, query, first)
    await pilot.pause(0.2)  # type: ignore[attr-defined]  # hits arrive from each provider
    await until(pilot, lambda: hits(app)[0].startswith(first), f"still {first!r} on top")
    await pilot.press("down", "enter")  # type: ignore[attr-defined]  # highlight the first, run it
    await until(pilot, lambda: not isinstance(app.screen, CommandPalette), "palette closed")


async def test_go_to_a_job_by_id(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await choose(pilot, app, "job 5", "Go to job 5")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
        assert app.screen.job_id == 5  # type: ignore[attr-defined]


async def test_switch_tab(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await choose(pilot, app, "tab failed", "Tab: Failed")
        await until(pilot, lambda: app.main.snapshot.request.tab == "failed")  # type: ignore[union-attr]


async def test_open_the_metrics_and_schedules_views(app: JobqApp) -> None:
    from tui.screens.metrics import MetricsScreen
    from tui.screens.schedules import SchedulesScreen

    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await choose(pilot, app, "view metrics", "View: Metrics")
        await until(pilot, lambda: isinstance(app.screen, MetricsScreen), "metrics open")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main, "back to the lists")
        await choose(pilot, app, "view schedules", "View: Schedules")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen), "schedules open")


async def test_filter_presets_and_the_session_s_filters(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await choose(pilot, app, "filter queue:mail", "Filter: queue:mail")
        await until(pilot, lambda: app.main.snapshot.request.filter.queue == "mail")  # type: ignore[union-attr]
        assert {j.queue for j in app.main.snapshot.jobs} == {"mail"}  # type: ignore[union-attr]
        await pilot.press("slash", *"grace", "enter")  # a typed filter joins the list
        await until(pilot, lambda: app.main.snapshot.request.filter.search == "grace")  # type: ignore[union-attr]
        shown = await palette(pilot, app, "filter", "Filter: ")
        assert "Filter: queue:mail" in shown and "Filter: clear" in shown
        await pilot.press("escape")
        await choose(pilot, app, "filter clear", "Filter: clear")
        await until(pilot, lambda: not app.main.snapshot.request.filter)  # type: ignore[union-attr]


async def test_pause_and_resume_a_queue(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await choose(pilot, app, "pause queue mail", "Pause queue mail")
        await until(pilot, lambda: "mail" in q.paused_queues(), "mail paused")
        await choose(pilot, app, "resume queue thumbs", "Resume queue thumbs")
        await until(pilot, lambda: "thumbs" not in q.paused_queues(), "thumbs resumed")
        # a queue not on screen: typed
        await choose(pilot, app, "pause nightly", "Pause queue nightly")
        await until(pilot, lambda: "nightly" in q.paused_queues(), "nightly paused")


async def test_retry_an_error_group(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await choose(pilot, app, "smtptemporary", "Retry error group: email.send")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asks first")
        question = app.screen.question  # type: ignore[attr-defined]
        assert question.startswith("Retry 2 jobs of the error group email.send: SMTPTemp")
        await pilot.press("y")
        await until(pilot, lambda: q.get(3).state is JobState.PENDING, "the failed one retried")


async def test_read_only_offers_no_action(location: str) -> None:
    app = seeded_app(location, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        shown = await palette(pilot, app, "e", "")
        assert shown and not [h for h in shown if h.startswith(("Pause", "Resume", "Retry"))]
        await pilot.press("escape")
        shown = await palette(pilot, app, "pause mail", "")
        assert not [h for h in shown if h.startswith("Pause")]


async def test_names_from_the_file_are_shown_literally(location: str) -> None:
    path = location
    s = open_backend(path, Role.WORKER)
    try:
        s.enqueue([NewJob(type="[b]t[/b]", queue="[@click=app.quit]q\x1b[2J",
                          payload_json=json.dumps({}))], 0.0)  # fmt: skip
    finally:
        s.close()
    app = make_app(path, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        shown = await palette(pilot, app, "pause", "Pause queue")
        assert "Pause queue [@click=app.quit]q␛[2J" in shown, shown
        await pilot.press("escape")
        shown = await palette(pilot, app, "", "")
        assert "Filter: type:[b]t[/b]" in hits(app), hits(app)
        await pilot.press("escape")
        assert app.is_running


async def test_go_to_a_job_that_is_not_there_says_so(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await choose(pilot, app, "#999", "Go to job 999")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        body = app.screen.query_one("#detail")
        await until(pilot, lambda: "No job 999 in this queue file" in str(body.render()))
