"""Pilot tests: the Running list shows a job's progress, and the detail view of a running job
follows its live output as the worker flushes it (both backends).

The "worker" here is the store's own fenced write (`write_output`, what a pool's flush calls)
on a job really claimed with a lease, so that each new line arrives at a moment the test chooses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobq import Queue
from jobq.backend import Role, open_backend
from tui.app import make_app
from tui.screens.detail import DetailScreen

pytestmark = pytest.mark.anyio

SIZE = (120, 40)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(pilot: object, condition: Callable[[], object], what: str = "") -> None:
    """Let the app run until `condition` holds (fail after ~10 s)."""
    for _ in range(1000):
        if condition():
            return
        await pilot.pause(0.01)  # type: ignore[attr-defined]
    pytest.fail(f"condition not met: {what or condition}")


async def test_running_list_shows_progress_and_detail_follows_output(location: str) -> None:
    with Queue(location) as q:
        other = q.enqueue("idle", {})
        job_id = q.enqueue("resize", {"n": 100})
    worker = open_backend(location, Role.WORKER)
    try:
        claimed = worker.claim("pool/1", time.time(), 60.0, limit=2)
        job = next(j for j in claimed if j.id == job_id)
        assert job.lease_token is not None
        token = job.lease_token
        now = time.time()
        assert worker.write_output([(job_id, token, 1, True, [(1, now, "stdout", "line one\n")],
                                     (0.4, "40 of 100 resized", now))]) == [True]  # fmt: skip
        app = make_app(location)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")

            def progress_cell() -> str:
                table = app.main.table
                if app.main.snapshot is None or app.main.snapshot.request.tab != "running":
                    return ""
                if str(job_id) not in [k.value for k in table.rows]:
                    return ""
                return " ".join(str(c) for c in table.get_row(str(job_id)))

            await until(pilot, lambda: "40% 40 of 100 resized" in progress_cell(), "progress")
            # the job without progress has an empty cell in the same column
            assert "%" not in " ".join(str(c) for c in app.main.table.get_row(str(other)))
            app.main.table.move_cursor(row=app.main.table.get_row_index(str(job_id)))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)

            def detail() -> str:
                return str(app.screen.query_one("#detail").render())

            await until(pilot, lambda: "line one" in detail(), "the first line")
            text = detail()
            assert "Output of attempt #1 (live)" in text and "40%  40 of 100 resized" in text
            # the worker flushes more: the open view shows it without a key pressed
            later = time.time()
            assert worker.write_output([(job_id, token, 1, False,
                                         [(2, later, "stderr", "line two \x1b[2J\n")],
                                         (0.9, "almost", later))]) == [True]  # fmt: skip
            await until(pilot, lambda: "line two" in detail(), "the second line, live")
            text = detail()
            assert text.index("line one") < text.index("line two")
            assert "\x1b" not in text and "␛[2J" in text  # untrusted: made visible
            await until(pilot, lambda: "90%  almost" in detail(), "the new progress")
    finally:
        worker.close()


async def test_detail_keeps_only_the_newest_lines(location: str) -> None:
    with Queue(location) as q:
        job_id = q.enqueue("chatty", {})
    worker = open_backend(location, Role.WORKER)
    try:
        (job,) = worker.claim("pool/1", time.time(), 60.0)
        assert job.lease_token is not None
        now = time.time()
        lines = "".join(f"row {i:05d}\n" for i in range(2000))
        assert worker.write_output([(job_id, job.lease_token, 1, True,
                                     [(1, now, "stdout", lines)], None)]) == [True]  # fmt: skip
        app = make_app(location)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            await until(pilot, lambda: str(job_id) in [k.value for k in app.main.table.rows])
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)

            def detail() -> str:
                return str(app.screen.query_one("#detail").render())

            await until(pilot, lambda: "row 01999" in detail())
            text = detail()
            assert "row 01500" in text and "row 01499" not in text
            assert "1,500 earlier lines (jobq logs" in text
    finally:
        worker.close()
