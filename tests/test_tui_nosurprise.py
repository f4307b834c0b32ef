"""The dashboard never surprises: rejected input stays in its prompt, confirmations name what they
act on and need `y`, the cursor and the marks follow their jobs, `a` offers what the tab allows."""

from __future__ import annotations

import pytest

from devtools.screenshots import SIZE, first_load, seeded_app
from jobq import JobState, Queue
from tests.conftest import ROOT
from tests.test_tui_actions import SECOND_PENDING, TOP_PENDING, selected, until
from tui.app import JobqApp, make_app
from tui.screens.detail import DetailScreen
from tui.screens.dialogs import BulkScreen, ConfirmScreen, PromptScreen

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


async def test_typing_after_a_rejected_priority_never_reaches_the_list(
    app: JobqApp, q: Queue
) -> None:
    """The reported bug, keys exactly as typed: `p urgent⏎` was rejected and closed the prompt,
    so the `c` of `critical⏎` opened "Cancel 1 job?" and its ⏎ said yes: the job was cancelled."""
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("down")
        assert selected(app) == str(SECOND_PENDING)
        await pilot.press("p", *"urgent", "enter", *"critical", "enter")
        await until(
            pilot,
            lambda: (
                q.get(SECOND_PENDING).priority == 20
                or q.get(SECOND_PENDING).state is not JobState.PENDING
            ),
            "the second value applied (or the job hit)",
        )
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        assert q.get(SECOND_PENDING).state is JobState.PENDING
        assert q.get(SECOND_PENDING).priority == 20  # `critical` replaced the rejected text
        assert q.get(TOP_PENDING).state is JobState.PENDING
        assert app.screen is app.main


async def test_a_rejected_priority_keeps_the_prompt_open_with_the_error(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("p", *"urgent", "enter")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen), "a rejected value closed the prompt"
        error = str(app.screen.query_one("#prompt-error").render())
        assert "priority must be an integer or one of" in error
        await pilot.press("escape")
        assert app.screen is app.main


async def test_enter_alone_never_confirms(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Cancel job 43 (images.resize)?"
        await pilot.press("enter", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen), "enter answered the question"
        assert "press y to confirm" in str(app.screen.query_one("#confirm-note").render())
        assert q.get(TOP_PENDING).state is JobState.PENDING
        await pilot.press("y")
        await until(pilot, lambda: q.get(TOP_PENDING).state is JobState.CANCELLED, "y confirms")


def rows_shown(app: JobqApp) -> list[str]:
    return [str(r.key.value) for r in app.main.table.ordered_rows]


async def test_cursor_and_marks_follow_their_jobs_when_the_list_reorders(
    app: JobqApp, q: Queue
) -> None:
    """Pending re-sorts on every refresh: a job moved under the cursor must not take the hit.
    At 80x24 the chosen job moves out of the rows in view: the view follows it."""
    async with app.run_test(size=(80, 24)) as pilot:
        await first_load(pilot)
        await pilot.press("down", "space")  # mark 23, cursor moves on to the third row
        chosen = selected(app)
        order = rows_shown(app)
        assert chosen == order[2] and order[1] == str(SECOND_PENDING)
        # another process re-prioritises: the chosen job drops to the bottom of the list
        q.set_priority(int(chosen or 0), -50)
        q.set_priority(SECOND_PENDING, -40)
        loads = app.loads
        app.loader.refresh()
        await until(pilot, lambda: app.loads > loads and rows_shown(app) != order, "reordered")
        now = rows_shown(app)
        assert now[-1] == chosen and now[-2] == str(SECOND_PENDING)
        assert selected(app) == chosen, "the cursor kept its row, not its job"
        table = app.main.table
        await pilot.pause()
        top = int(table.scroll_y)
        in_view = table.scrollable_content_region.height - 1  # less the header row
        assert top <= table.cursor_row < top + in_view, "the followed job is out of view"
        marked_rows = [k for k in now if str(table.get_row(k)[0]).strip()]
        assert marked_rows == [str(SECOND_PENDING)]
        hit = order[2]
        await pilot.press("escape", "c")  # drop the mark: `c` acts on the cursor's job
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question.startswith(f"Cancel job {hit} (")
        await pilot.press("y")
        await until(pilot, lambda: q.get(int(hit)).state is JobState.CANCELLED, "cancelled")
        assert q.count("cancelled") == 3  # the two seeded ones and this one: nothing else


@pytest.mark.parametrize(
    ("tab", "offered"),
    [
        ("1", {"c", "p"}),
        ("2", {"c"}),
        ("3", {"r"}),
        ("5", {"r"}),
    ],
)
async def test_a_offers_only_actions_valid_for_the_tab(
    app: JobqApp, tab: str, offered: set[str]
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press(tab)
        await until(pilot, lambda: app.main.snapshot and app.main.snapshot.request.tab != "x")
        await pilot.press("a")
        assert isinstance(app.screen, BulkScreen)
        hint = str(app.screen.query(".hint").first().render())
        active = {k for k, b in app.screen.active_bindings.items() if b.enabled} & {"r", "c", "p"}
        assert active == offered
        for word, key in (("retry all", "r"), ("cancel all", "c"), ("priority", "p")):
            assert (word in hint) == (key in offered), (word, hint)
        for key in {"r", "c", "p"} - offered:
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, BulkScreen), f"{key} chose an action the tab refuses"


async def test_a_in_succeeded_offers_nothing(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("4", "a")
        await pilot.pause()
        assert app.screen is app.main
        assert any("no action changes succeeded jobs" in str(n.message)
                   for n in app._notifications)  # fmt: skip


def cell(app: JobqApp, key: str, column: str) -> str:
    table = app.main.table
    labels = [str(c.label) for c in table.ordered_columns]
    return str(table.get_row(key)[labels.index(column)])


async def test_jobs_of_a_paused_queue_show_paused(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        assert "thumbs" in q.paused_queues()
        assert cell(app, str(TOP_PENDING), "due") == "paused"  # queue "thumbs"
        assert cell(app, str(SECOND_PENDING), "due") == "ready"  # queue "mail"
        q.pause("webhooks")  # job 5 backs off in "webhooks": paused, with its countdown
        loads = app.loads
        app.loader.refresh()
        await until(pilot, lambda: app.loads > loads)
        assert cell(app, "5", "due").startswith("paused, retry in ")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
        first_line = str(app.screen.query_one("#detail").render()).splitlines()[0]
        assert first_line.endswith("pending  paused"), first_line


async def test_one_tries_form_with_the_real_limit_in_every_list(app: JobqApp, q: Queue) -> None:
    """`n/max` (Job.tries(): the limit the claim fixed, as `jobq ls` shows it) under one
    column title in every list that shows it."""
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        for tab, job_id in (("1", 5), ("2", 19), ("3", 1)):
            await pilot.press(tab)
            await until(pilot, lambda: app.main.table.row_count and selected(app) is not None)
            await until(pilot, lambda j=job_id: str(j) in rows_shown(app))  # type: ignore[misc]
            assert cell(app, str(job_id), "tries") == q.get(job_id).tries()
        assert q.get(1).tries() == "3/3" and q.get(5).tries() == "3/4"


async def test_pool_status_words_are_the_cli_words(location: str) -> None:
    """The Workers tab says what `jobq workers` and `--json` say: running, stopping, stopped,
    dead (WorkerInfo.status_at)."""
    import json
    import os
    import subprocess
    import sys
    import time

    from jobq.backend import Role, open_backend
    from jobq.lifecycle import proc_key

    path = location
    now = time.time()
    s = open_backend(path, Role.WORKER)
    try:
        me = proc_key()
        for wid, status, beat, key in (
            ("p-run", "running", now, me),
            ("p-stopping", "stopping", now, me),
            ("p-stopped", "stopped", now - 60, me),
            ("p-dead", "running", now - 3600, None),  # another host's pool, silent for an hour
        ):
            s.register_worker(wid, name=wid, host="h", pid=os.getpid(), concurrency=1,
                              queues=[], types=["t"], now=beat, proc_key=key)  # fmt: skip
            s.worker_heartbeat(wid, beat, 0, status)
    finally:
        s.close()
    out = subprocess.run([sys.executable, "-m", "jobq", "--db", path, "workers", "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip
    cli = {w["id"]: w["status"] for w in json.loads(out)}
    assert cli == {"p-run": "running", "p-stopping": "stopping", "p-stopped": "stopped",
                   "p-dead": "dead"}  # fmt: skip
    app = make_app(path, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("6")
        await until(pilot, lambda: app.main.table.row_count == 4)
        shown = {k: cell(app, k, "status") for k in cli}
    assert shown == cli


async def test_bulk_confirmations_name_the_tab_and_the_filter(app: JobqApp, q: Queue) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("a", "c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asks first")
        assert app.screen.question == "Cancel 23 jobs in the Pending tab?"  # type: ignore[attr-defined]
        await pilot.press("enter", "n")
        await until(pilot, lambda: app.screen is app.main)
        await pilot.press("slash", *"queue:mail", "enter", "a", "p", *"high", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asks first")
        assert app.screen.question == (  # type: ignore[attr-defined]
            "Set the priority of 9 jobs in the Pending tab matching queue:mail to high?"
        )
        await pilot.press("n")
    assert q.count("cancelled") == 2 and q.get(SECOND_PENDING).priority == 10
