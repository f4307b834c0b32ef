"""Pilot tests: every key of the dashboard does what it says to the queue file."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import SLOW, is_sqlite

from devtools.screenshots import SIZE, first_load, seeded_app
from jobq import JobState, Queue
from tui.app import JobqApp
from tui.data import PAGE_SIZE
from tui.screens.detail import DetailScreen
from tui.screens.dialogs import BulkScreen, ConfirmScreen, HelpScreen, PromptScreen
from tui.screens.tail import TailScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ids in the showcase data (devtools.showcase.seed_showcase)
FAILED_WEBHOOK = 1
FAILED_IMAGE = 4
RETRYING = 5
RETRYING_EMAIL = 6  # its failure is the newest
RUNNING_REPORT = 19
CANCELLED = 21
TOP_PENDING = 43  # critical, queue "thumbs" (paused)
SECOND_PENDING = 23  # high, queue "mail"


@pytest.fixture
def app(location: str) -> JobqApp:
    return seeded_app(location)


@pytest.fixture
def q(app: JobqApp) -> Queue:
    return Queue(app.db_path)


async def until(pilot: object, condition: Callable[[], object], what: str = "") -> None:
    """Let the app run until `condition` holds (fail after ~5 s)."""
    for _ in range(500):
        if condition():
            return
        await pilot.pause(0.01)  # type: ignore[attr-defined]
    pytest.fail(f"condition not met: {what or condition}")


def selected(app: JobqApp) -> str | None:
    return app.main.table.selected_key


async def test_first_paint_shows_pending_in_claim_order(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        assert selected(app) == str(TOP_PENDING)
        await pilot.press("down")
        assert selected(app) == str(SECOND_PENDING)


async def test_tabs_switch_with_numbers_and_arrows(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("3")
        await until(pilot, lambda: app.main.snapshot and app.main.snapshot.request.tab == "failed")
        keys = {j.id for j in app.main.snapshot.jobs}  # type: ignore[union-attr]
        assert keys == {1, 2, 3, 4}
        await pilot.press("right")
        await until(pilot, lambda: app.main.snapshot.request.tab == "succeeded")  # type: ignore[union-attr]
        await pilot.press("left", "left")
        await until(pilot, lambda: app.main.snapshot.request.tab == "running")  # type: ignore[union-attr]
        await pilot.press("6")
        await until(pilot, lambda: app.main.table.row_count == 1)
        assert selected(app) == "pool-a1"


async def test_retry_failed_job(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("3")
        await until(pilot, lambda: selected(app) == str(FAILED_IMAGE))
        await pilot.press("r")
        await until(pilot, lambda: q.get(FAILED_IMAGE).state is JobState.PENDING, "retried")
        # the list follows: the job left Failed
        await until(
            pilot, lambda: str(FAILED_IMAGE) not in {str(j.id) for j in app.main.snapshot.jobs}
        )  # type: ignore[union-attr]


async def test_cancel_asks_first_and_n_keeps_the_job(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Cancel job 43 (images.resize)?"
        await pilot.press("n")
        await pilot.pause()
        assert q.get(TOP_PENDING).state is JobState.PENDING
        await pilot.press("c", "y")
        await until(pilot, lambda: q.get(TOP_PENDING).state is JobState.CANCELLED, "cancelled")


async def test_cancel_running_job_requests_a_stop(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("2")
        await until(pilot, lambda: app.main.snapshot.request.tab == "running")  # type: ignore[union-attr]
        await until(pilot, lambda: selected(app) is not None)
        job_id = int(selected(app) or 0)
        await pilot.press("c", "y")
        await until(pilot, lambda: q.get(job_id).cancel_requested, "cancel requested")


async def test_priority_plus_minus_and_p(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("down")  # job 23, high (10)
        await pilot.press("plus")
        await until(pilot, lambda: q.get(SECOND_PENDING).priority == 20, "+10")
        await pilot.press("minus")
        await until(pilot, lambda: q.get(SECOND_PENDING).priority == 10, "-10")
        await until(pilot, lambda: selected(app) == str(SECOND_PENDING))
        await pilot.press("p")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"low", "enter")
        await until(pilot, lambda: q.get(SECOND_PENDING).priority == -10, "p low")
        await until(pilot, lambda: isinstance(app.screen, type(app.main)))
        await pilot.press("p", *"37", "enter")
        await until(
            pilot,
            lambda: q.get(TOP_PENDING).priority == 37 or q.get(SECOND_PENDING).priority == 37,
            "p 37",
        )


async def test_bad_priority_is_refused(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("p", *"urgent", "enter")
        await pilot.pause(0.1)
        assert q.get(TOP_PENDING).priority == 20


async def test_pause_and_resume_queue(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("down")  # job 23 in "mail"
        await pilot.press("P")
        await until(pilot, lambda: "mail" in q.paused_queues(), "paused")
        await until(pilot, lambda: "mail" in app.main.snapshot.header.paused)  # type: ignore[union-attr]
        await pilot.press("P")
        await until(pilot, lambda: "mail" not in q.paused_queues(), "resumed")


async def test_mark_then_bulk_cancel_with_count(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("space", "space", "space")  # marks 43, 23, 26
        assert app.main.marked == {43, 23, 26}
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Cancel 3 marked jobs?"
        await pilot.press("y")
        await until(pilot, lambda: all(q.get(i).state is JobState.CANCELLED for i in (43, 23, 26)))
        assert app.main.marked == set()


async def test_filter_then_retry_all_matching(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("3", "slash", *"type:webhook.*", "enter")
        await until(
            pilot,
            lambda: (
                app.main.snapshot.request.filter.type_glob == "webhook.*"  # type: ignore[union-attr]
                and app.main.snapshot.request.tab == "failed"
            ),
        )  # type: ignore[union-attr]
        assert {j.id for j in app.main.snapshot.jobs} == {1, 2}  # type: ignore[union-attr]
        await pilot.press("a")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
        assert app.screen.question == (  # type: ignore[attr-defined]
            "Retry 2 jobs in the Failed tab matching type:webhook.*?"
        )
        await pilot.press("y")
        await until(
            pilot, lambda: q.get(1).state is JobState.PENDING and q.get(2).state is JobState.PENDING
        )
        assert q.get(3).state is JobState.FAILED  # not matched by the filter
        await pilot.press("escape")  # clears the filter
        await until(pilot, lambda: not app.main.snapshot.request.filter)  # type: ignore[union-attr]


async def test_filter_by_text_and_queue(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("slash", *"queue:mail grace", "enter")
        await until(pilot, lambda: app.main.snapshot.request.filter.queue == "mail")  # type: ignore[union-attr]
        assert [j.id for j in app.main.snapshot.jobs] == [23]  # type: ignore[union-attr]


async def test_error_groups_retry_a_group(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("7")
        await until(pilot, lambda: app.main.snapshot.request.tab == "errors")  # type: ignore[union-attr]
        groups = app.main.snapshot.groups  # type: ignore[union-attr]
        assert groups[0].type == "webhook.deliver" and groups[0].count == 9
        assert set(groups[0].job_ids) == {1, 2, 5}
        await pilot.press("r")
        assert app.screen.question == (  # type: ignore[attr-defined]
            "Retry 3 jobs of the error group webhook.deliver: ConnectionError: POST"
            " https://hooks.example.net/orders: connection refused?"
        )
        await pilot.press("y")
        await until(pilot, lambda: q.get(1).state is JobState.PENDING)


async def test_detail_and_its_keys(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
        text = str(app.screen.query_one("#detail").render())
        assert "queue 'thumbs' is paused" in text
        await pilot.press("plus")
        await until(pilot, lambda: q.get(TOP_PENDING).priority == 30)
        await pilot.press("c", "y")
        await until(pilot, lambda: q.get(TOP_PENDING).state is JobState.CANCELLED)
        await pilot.press("r")
        await until(pilot, lambda: q.get(TOP_PENDING).state is JobState.PENDING)
        await pilot.press("escape")
        assert app.screen is app.main


async def test_error_tail_follows_and_opens_job(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, TailScreen) and app.screen.snapshot)
        assert app.screen.query_one("#tail").row_count == 13  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
        assert app.screen.job_id == RETRYING_EMAIL  # type: ignore[attr-defined]
        await pilot.press("escape", "escape")
        assert app.screen is app.main


async def test_paging_past_the_last_row_loads_the_next_page(app: JobqApp, q: Queue) -> None:
    q.enqueue_many([("bulk.noop", {"n": i}) for i in range(250)])
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await until(pilot, lambda: app.main.snapshot and app.main.snapshot.total == 273)
        assert app.main.table.row_count == PAGE_SIZE
        await pilot.press("end")
        await pilot.press("ctrl+end")
        await pilot.press("down")
        await until(pilot, lambda: app.main.prev_pages and app.main.table.row_count == PAGE_SIZE)
        assert app.main.table.cursor_row == 0
        await pilot.press("up")
        await until(pilot, lambda: not app.main.prev_pages)
        assert app.main.table.cursor_row == PAGE_SIZE - 1
        await pilot.press("pagedown")
        await pilot.press("ctrl+end", "pagedown", "ctrl+end", "down")
        await until(pilot, lambda: len(app.main.prev_pages) == 3)
        await pilot.press("ctrl+end", "down")
        last = 273 - 4 * PAGE_SIZE  # 23 showcase jobs + 250
        await until(
            pilot, lambda: len(app.main.prev_pages) == 4 and app.main.table.row_count == last
        )
        await pilot.press("ctrl+end", "down")  # the end: nothing more to load
        await pilot.pause(0.1)
        assert len(app.main.prev_pages) == 4
        await pilot.press("home")
        await until(pilot, lambda: not app.main.prev_pages)


async def test_help_lists_keys(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert ("r", "Retry") in app.screen.keys
        await pilot.press("escape")
        assert app.screen is app.main


async def test_q_quits(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert app._exit  # type: ignore[attr-defined]


async def test_read_only_hides_and_refuses_every_action(location: str) -> None:
    app = seeded_app(location, read_only=True)
    q = Queue(app.db_path)
    before = [j.to_dict() for j in q.list(limit=100)]
    paused = q.paused_queues()
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        shown = app.screen.active_bindings.items()
        footer_keys = {k for k, b in shown if b.enabled and b.binding.show}
        assert "q" in footer_keys
        assert not footer_keys & {"r", "c", "p", "P", "a", "space"}
        for keys in (
            ["r"],
            ["c", "y"],
            ["plus"],
            ["minus"],
            ["p"],
            ["P"],
            ["a", "r", "y"],
            ["space"],
            ["3", "r"],
            ["7", "r", "y"],
        ):
            await pilot.press(*keys)
            await pilot.pause()
        await pilot.press("1", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
        await pilot.press("r", "c", "y", "plus", "P")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, (ConfirmScreen, PromptScreen))
        assert any("read-only" in str(n.message) for n in app._notifications)
    assert [j.to_dict() for j in q.list(limit=100)] == before
    assert q.paused_queues() == paused


# ---- every key of every screen, against read-only mode --------------------------------------

NOT_PRESSED = {"quit", "app.quit", "command_palette"}  # they leave the app or open the palette


def fingerprint(q: Queue) -> tuple[object, ...]:
    """Everything an action can change: every job (state, priority, ...) and the paused queues."""
    return tuple(j.to_dict() for j in q.list(limit=1000)), tuple(sorted(q.paused_queues()))


async def go_to(pilot: object, app: JobqApp, where: str) -> None:
    """Show `where` ("main", "detail" or "tail") over the Pending tab, unfiltered, unmarked."""
    main = app.main
    kind = {"main": type(main), "detail": DetailScreen, "tail": TailScreen}[where]
    clean = main.tab == "pending" and not main.filter and not main.marked
    if isinstance(app.screen, kind) and (where != "main" or clean):
        return  # already there
    while len(app.screen_stack) > 2:
        app.pop_screen()
    await pilot.press("escape", "escape")  # type: ignore[attr-defined]  # marks, then filter
    if app.main.tab != "pending":
        await pilot.press("1")  # type: ignore[attr-defined]
    await until(pilot, lambda: app.main.tab == "pending" and selected(app) is not None, "pending")
    if where == "detail":
        await pilot.press("enter")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
    elif where == "tail":
        await pilot.press("e")  # type: ignore[attr-defined]
        await until(pilot, lambda: isinstance(app.screen, TailScreen) and app.screen.snapshot)


async def press_and_answer(pilot: object, app: JobqApp, key: str) -> None:
    """Press `key`, say yes to whatever it asks, and wait for the action it started."""
    await pilot.press(key)  # type: ignore[attr-defined]
    for _ in range(4):  # bulk -> prompt -> confirm at most
        await pilot.pause()  # type: ignore[attr-defined]
        screen = app.screen
        if isinstance(screen, ConfirmScreen):
            await pilot.press("y")  # type: ignore[attr-defined]
        elif isinstance(screen, BulkScreen):
            await pilot.press("p")  # type: ignore[attr-defined]  # keeps the jobs in their tab
        elif isinstance(screen, PromptScreen):
            await pilot.press(*"high", "enter")  # type: ignore[attr-defined]
        elif isinstance(screen, HelpScreen):
            await pilot.press("escape")  # type: ignore[attr-defined]
        else:
            break
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "control"])
async def test_every_binding_that_changes_the_queue_is_refused_read_only(
    location: str, read_only: bool
) -> None:
    """Press every key bound on each screen (the app's, the screen's and its widgets'), saying
    yes to each question. Read-only: nothing changes, and each acting key says why. Control
    (writable): the same keys change the queue, and only keys declared acting do, so a new key
    that writes without being declared acting fails here."""
    if not is_sqlite(location) and not SLOW:
        # ~20 s each on PostgreSQL: every key, one round trip each; the bindings are the
        # backend's business only through the actions, which the tests above run on both
        pytest.skip("on PostgreSQL with JOBQ_SLOW=1 (CI budget)")
    app = seeded_app(location, read_only=read_only)
    q = Queue(app.db_path)
    notices: list[str] = []
    notify = app.notify

    def record(message: str, **kwargs: object) -> None:
        notices.append(message)
        notify(message, **kwargs)  # type: ignore[arg-type]

    app.notify = record  # type: ignore[method-assign]
    writers: list[str] = []  # "screen key" that changed the queue (control)
    undeclared: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        for where in ("main", "detail", "tail"):
            await go_to(pilot, app, where)
            screen = app.screen
            acting = type(screen).ACTING  # type: ignore[attr-defined]
            keys = [(k, b.binding.action) for k, b in screen.active_bindings.items()]
            assert keys, where
            for key, action in keys:
                if action in NOT_PRESSED:
                    continue
                await go_to(pilot, app, where)
                before, seen = fingerprint(q), len(notices)
                await press_and_answer(pilot, app, key)
                changed = fingerprint(q) != before
                if read_only:
                    assert not changed, f"{where}: {key} ({action}) changed a read-only queue"
                    if action == "refuse":
                        assert any("read-only" in n for n in notices[seen:]), (where, key)
                elif changed:
                    writers.append(f"{where} {key}")
                    if action not in acting:
                        undeclared.append(f"{where} {key} ({action})")
        if read_only:
            assert app._writer is None, "a read-only app opened a writer connection"
            await go_to(pilot, app, "main")
            bound = app.main.active_bindings.items()
            refused = {k for k, b in bound if b.binding.action == "refuse"}
            assert {"r", "c", "plus", "minus", "p", "P", "a", "space"} <= refused
    if not read_only:
        assert undeclared == [], "keys that write but are not declared with keys.acting()"
        assert {"main c", "main plus", "detail c", "detail P"} <= set(writers), writers
