"""The Metrics view (`m`): the charts hold the figures of the queue's per-minute history (asserted
on the series the screen draws, not only on its look), `h` switches to the last day, an empty
queue says "no data yet", and names from the queue are drawn literally."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from devtools.screenshots import first_load, seed_history, seeded_app, settle
from devtools.showcase import SHOWCASE_NOW
from jobq import NewJob, safe_line
from jobq.backend import ClaimFilter, Role, open_backend
from tui.app import JobqApp, make_app
from tui.screens.metrics import MetricsScreen

pytestmark = pytest.mark.anyio

NOW = int(SHOWCASE_NOW)
START = NOW - 50 * 60  # seed_history's first minute
FIRST = NOW - 59 * 60  # the hour view's first point


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def open_metrics(app: JobqApp, pilot: object, span: str = "hour") -> MetricsScreen:
    await first_load(pilot)  # type: ignore[arg-type]
    await pilot.press("m")  # type: ignore[attr-defined]

    def drawn() -> bool:
        s = app.screen
        return isinstance(s, MetricsScreen) and s.history is not None and s.history.span == span

    await settle(pilot, drawn)  # type: ignore[arg-type]
    assert drawn()
    screen = app.screen
    assert isinstance(screen, MetricsScreen)
    return screen


def values(screen: MetricsScreen, chart: int, label: str) -> list[float | None]:
    series = {s.label: s.values for s in screen.charts[chart].series}
    return series[label]


async def test_the_charts_hold_the_history(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    app = seeded_app(path)
    seed_history(path)
    b = open_backend(path, Role.READER)
    rows = b.rollup(FIRST, NOW + 60)
    b.close()
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_metrics(app, pilot)
        done = values(screen, 0, "succeeded")
        assert len(done) == 60
        # minute 5 of the traffic: 3 batches of 3 jobs of each type, one failure in the third
        k5 = (START + 5 * 60 - FIRST) // 60
        assert done[k5] == 16 and values(screen, 0, "retried")[k5] == 2
        assert values(screen, 0, "failed")[k5] == 0
        # minutes 20-23: no pool ran (a gap, not a zero), in every chart
        gap = (START + 20 * 60 - FIRST) // 60
        for chart in screen.charts:
            for s in chart.series:
                assert s.values[gap : gap + 4] == [None] * 4, (chart.title, s.label)
        # every rolled-up minute's figures are the stored rows'
        for m, q, _t, k, v in rows:
            i = (m - FIRST) // 60
            if k == "depth":
                assert values(screen, 1, q)[i] == v
            if k == "oldest":
                assert values(screen, 3, q)[i] == v
        # minute 0: 14 images jobs came, 9 ran, one of them failed and is due again
        k0 = (START - FIRST) // 60
        assert values(screen, 1, "images")[k0] == 6 and values(screen, 1, "mail")[k0] == 3
        p50 = values(screen, 2, "images.resize p50")[k0]
        p95 = values(screen, 2, "images.resize p95")[k0]
        assert p50 is not None and 1.0 <= p50 < 1.5  # runs of 0.4, 1.1 and 2.6 s, 3 each
        assert p95 is not None and 2.5 <= p95 < 3.0
        assert screen.query_one("#metrics-grid").display
        assert not screen.query_one("#metrics-empty").display

        await pilot.press("h")
        day_screen = await _redrawn(app, pilot, "day")
        day = values(day_screen, 0, "succeeded")
        assert len(day) == 96
        assert sum(v or 0 for v in day) == sum(v or 0 for v in done)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is app.main


async def _redrawn(app: JobqApp, pilot: object, span: str) -> MetricsScreen:
    screen = app.screen
    assert isinstance(screen, MetricsScreen)
    await settle(pilot, lambda: screen.history is not None and screen.history.span == span)  # type: ignore[arg-type]
    assert screen.history is not None and screen.history.span == span
    return screen


async def test_an_empty_queue_says_no_data_yet(tmp_path: Path) -> None:
    app = make_app(str(tmp_path / "q.db"), clock=lambda: SHOWCASE_NOW, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_metrics(app, pilot)
        assert screen.history is not None and screen.history.empty
        empty = screen.query_one("#metrics-empty")
        assert empty.display and not screen.query_one("#metrics-grid").display
        assert "No data yet" in str(empty.render())


async def test_names_from_the_queue_are_drawn_literally(tmp_path: Path) -> None:
    """A queue and a type named like markup, with an escape sequence, are shown as text."""
    path = str(tmp_path / "q.db")
    queue, type_ = "[red]q\x1b[31m", "[bold]boom"
    b = open_backend(path, Role.WORKER)
    m = NOW - 120
    b.enqueue([NewJob(type=type_, payload_json="{}", queue=queue)] * 2, m)
    job = b.claim("pool-x/1", m + 1, 30, ClaimFilter(types=(type_,)))[0]
    b.complete_many([(job.id, job.lease_token or "", None, None)], m + 2)
    b.roll_up(m + 66)
    b.close()
    app = make_app(path, clock=lambda: SHOWCASE_NOW, watch=False)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_metrics(app, pilot)
        labels = [s.label for c in screen.charts for s in c.series]
        assert safe_line(queue) == "[red]q\u241b[31m"  # the escape made visible
        assert safe_line(queue) in labels and "[bold]boom p50" in labels
        assert all("\x1b" not in label for label in labels)
        text = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "[red]q\u241b[31m" in text and "[bold]boom" in text  # drawn as it is, no markup
        assert values(screen, 0, "succeeded")[-3] == 1
