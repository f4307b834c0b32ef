"""Write screenshots/*.svg from seeded data with a frozen clock: `python -m devtools.screenshots`.

The same scenes drive the snapshot tests (tests/test_tui_snapshots.py), so what the README
shows is what the tests check.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Callable

from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import TextArea

from jobq import NewJob
from jobq.backend import ClaimFilter, Ending, Role, open_backend
from tui.app import JobqApp, make_app
from tui.screens.edit import EditScreen

from .showcase import SHOWCASE_NOW, seed_showcase

SIZE = (140, 40)
DISPLAY_PATH = "/srv/app/queue.db"


def frozen_clock() -> Callable[[], float]:
    """The screenshots' "now" (the time the showcase data was seeded around)."""
    return lambda: SHOWCASE_NOW


def seeded_app(db_path: str, *, read_only: bool = False) -> JobqApp:
    """The showcase file at `db_path` (created), in an app with a frozen clock."""
    seed_showcase(db_path).close()
    return make_app(db_path, read_only=read_only, clock=frozen_clock(),
                    display_path=DISPLAY_PATH, watch=False)  # fmt: skip


async def settle(pilot: Pilot[None], condition: Callable[[], bool] | None = None) -> None:
    """Wait until the app has drawn a load (and `condition` holds), then let it repaint."""
    app = pilot.app
    assert isinstance(app, JobqApp)
    start = app.loads
    for _ in range(400):
        await pilot.pause(0.01)
        if app.loads > start and (condition is None or condition()):
            break
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


async def first_load(pilot: Pilot[None]) -> None:
    """Wait for the first load to be drawn."""
    app = pilot.app
    assert isinstance(app, JobqApp)
    for _ in range(400):
        if app.loads:
            break
        await pilot.pause(0.01)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


async def main_scene(pilot: Pilot[None]) -> None:
    """The main screen on Pending."""
    await first_load(pilot)


async def detail_scene(pilot: Pilot[None]) -> None:
    """The detail of a job that failed and is backing off (row 'retry in 1m46s')."""
    await first_load(pilot)
    await pilot.press("3")  # Failed
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


async def tail_scene(pilot: Pilot[None]) -> None:
    """The live error tail."""
    await first_load(pilot)
    await pilot.press("e")
    await settle(pilot)


async def filter_scene(pilot: Pilot[None]) -> None:
    """The pending list filtered to mail, with the filter prompt open again."""
    await first_load(pilot)
    await pilot.press("slash", *"queue:mail", "enter")
    await settle(pilot)
    await pilot.press("slash")
    await pilot.pause()


async def errors_scene(pilot: Pilot[None]) -> None:
    """Failures grouped by fingerprint."""
    await first_load(pilot)
    await pilot.press("7")
    await settle(pilot)


async def palette_scene(pilot: Pilot[None]) -> None:
    """The command palette, asked to pause a queue."""
    await first_load(pilot)
    await pilot.press("ctrl+p", *"pause")
    app = pilot.app

    def searched() -> bool:
        """The search for the whole word has run to its end and its hits are listed.

        `press` returns once every widget has handled its messages, so the palette's search
        worker for "pause" exists by now; it leaves `app.workers` when it ends."""
        searching = [w for w in app.workers if w.group == CommandPalette._GATHER_COMMANDS_GROUP]
        hits = app.screen.query(CommandList)
        return not searching and bool(hits) and hits.first().option_count >= 4

    for _ in range(1000):  # the palette's hits arrive from its providers' tasks
        if searched():
            break
        await pilot.pause(0.01)
    else:
        raise AssertionError("the palette's search for 'pause' never finished")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


# The Metrics scene's last 50 minutes: (queue, type, jobs in per minute, run seconds of each of
# three batches) — a backlog that builds up, then drains, and a few failures.
_TRAFFIC = (
    ("images", "images.resize", 14, (0.4, 1.1, 2.6)),
    ("mail", "email.send", 11, (0.05, 0.12, 0.3)),
)


def seed_history(db_path: str, now: float = SHOWCASE_NOW) -> None:
    """Fifty minutes of traffic before `now` in the queue at `db_path`, each minute rolled up
    at its end by the real roll-up (as pools do), except four minutes when "no pool ran" (a
    gap in the charts); the last minute stays live."""
    b = open_backend(db_path, Role.WORKER)
    try:
        start = int(now) - 50 * 60
        for k in range(49):
            m = start + 60 * k
            if 20 <= k < 24:
                continue  # no pool: nothing ran, nothing was rolled up
            for queue, type_, busy, runs in _TRAFFIC:
                arrivals = busy if k < 30 else 4
                b.enqueue([NewJob(type=type_, payload_json="{}", queue=queue)] * arrivals, m + 1)
                for n, run in enumerate(runs):
                    t = m + 5 + 15 * n
                    claimed = b.claim("pool-h/1", t, 30, ClaimFilter(types=(type_,)), limit=3)
                    ok = claimed[:-1] if (k + n) % 7 == 0 else claimed
                    b.complete_many([(j.id, j.lease_token or "", None, None) for j in ok],
                                    t + run)  # fmt: skip
                    for j in claimed[len(ok) :]:
                        b.end_attempt(j.id, j.lease_token or "", t + run, Ending.FAIL, "boom",
                                      rand=0.5)  # fmt: skip
            b.roll_up(m + 66)
    finally:
        b.close()


def seed_schedules(location: str, now: float = SHOWCASE_NOW) -> None:
    """Three schedules on the showcase queue: one fired (its job succeeded), one fired (its job
    pending), one paused that never fired."""
    from jobq import Schedule
    from jobq.backend import ClaimFilter, Role, open_backend
    from jobq.schedules import next_run

    rows = [  # name, cron, zone, type, queue, payload, next run, paused
        ("nightly-report", "0 2 * * *", "Europe/Paris", "report.build", "reports",
         '{"report": "nightly"}', now - 7200, False),
        ("digest", "*/15 * * * *", "UTC", "email.send", "mail", '{"template": "digest"}',
         now - 60, False),
        ("cleanup", "30 3 * * 1-5", "America/New_York", "files.prune", "default", "{}",
         next_run("30 3 * * 1-5", "America/New_York", now), True),
    ]  # fmt: skip
    b = open_backend(location, Role.WORKER)
    try:
        for name, cron, tz, type_, queue, payload, next_at, paused in rows:
            b.put_schedule(Schedule(name=name, cron=cron, tz=tz, type=type_, queue=queue,
                                    payload_json=payload, priority=0, paused=paused,
                                    next_at=next_at), now - 86400)  # fmt: skip
        b.fire_schedules(now - 7200, lambda s, t: next_run(s.cron, s.tz, t))  # nightly-report
        (job,) = b.claim("pool-a1/1", now - 7190, 600, ClaimFilter(types=("report.build",)),
                         limit=1)  # fmt: skip
        b.complete_many([(job.id, job.lease_token or "", '{"rows": 1200}', None)], now - 7000)
        b.fire_schedules(now - 30, lambda s, t: next_run(s.cron, s.tz, t))  # digest
    finally:
        b.close()


async def metrics_scene(pilot: Pilot[None]) -> None:
    """The Metrics view over the last hour of a queue with fifty minutes of history."""
    app = pilot.app
    assert isinstance(app, JobqApp)
    seed_history(app.db_path)
    await first_load(pilot)
    await pilot.press("m")
    await settle(pilot, lambda: _metrics_drawn(app))


def _metrics_drawn(app: JobqApp) -> bool:
    from tui.screens.metrics import MetricsScreen

    screen = app.screen
    return isinstance(screen, MetricsScreen) and screen.history is not None


async def edit_scene(pilot: Pilot[None]) -> None:
    """`E` on a failed job where the app cannot suspend (a browser, here headless): the payload
    in the in-app JSON editor, with the error of an invalid edit shown."""
    await first_load(pilot)
    await pilot.press("3")  # Failed
    await settle(pilot)
    await pilot.press("E")
    app = pilot.app
    for _ in range(400):
        if isinstance(app.screen, EditScreen):
            break
        await pilot.pause(0.01)
    area = app.screen.query_one(TextArea)
    area.move_cursor(area.document.end)
    await pilot.press("backspace", "backspace", "comma", "enter", "ctrl+s")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


async def schedules_scene(pilot: Pilot[None]) -> None:
    """The schedules screen: next runs, last jobs, a paused schedule."""
    app = pilot.app
    assert isinstance(app, JobqApp)
    await first_load(pilot)
    seed_schedules(app.db_path)
    await pilot.press("s")
    from tui.screens.schedules import SchedulesScreen

    for _ in range(400):
        if isinstance(app.screen, SchedulesScreen) and len(app.screen.schedules) == 3:
            break
        await pilot.pause(0.01)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


SCENES: dict[str, Callable[[Pilot[None]], object]] = {
    "main": main_scene,
    "detail": detail_scene,
    "errors-tail": tail_scene,
    "filter": filter_scene,
    "error-groups": errors_scene,
    "palette": palette_scene,
    "metrics": metrics_scene,
    "edit": edit_scene,
    "schedules": schedules_scene,
}


async def shoot(name: str, out_dir: str, work_dir: str) -> str:
    """Run one scene and save its SVG; return the path."""
    app = seeded_app(os.path.join(work_dir, f"{name}.db"))
    async with app.run_test(size=SIZE) as pilot:
        await SCENES[name](pilot)  # type: ignore[misc]
        return app.save_screenshot(f"{name}.svg", out_dir)


def main(argv: list[str] | None = None) -> int:
    """Write every scene to screenshots/ (or the directory given)."""
    args = sys.argv[1:] if argv is None else argv
    out_dir = args[0] if args else "screenshots"
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as work_dir:
        for name in SCENES:
            print(asyncio.run(shoot(name, out_dir, work_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
