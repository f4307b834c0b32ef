"""The Metrics view: the queue's history over the last hour (per minute) or day (per 15 minutes),
as charts (textual-plotext): jobs ended, queue depth, run time p50/p95, oldest due job's wait.

The figures come from the per-minute rollup the pools keep in the queue (jobq.rollup), read by
the loader thread (`Snapshot.history`); this screen only turns them into series and draws them.
A step no pool rolled up is a gap in the lines, not a zero. Queue and type names are untrusted:
they reach the chart only through `safe_line` (no control characters: plotext's output is read
back as ANSI text), and never as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.color import Color, ColorParseError
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Static

from jobq import History, safe_line

from ..data import Snapshot
from ..messages import Reload, ScreenOptions

if TYPE_CHECKING:
    from textual_plotext import PlotextPlot

MAX_SERIES = 4  # queues or types per chart (the busiest): more lines are not readable
LABEL_CHARS = 24
EMPTY = (
    "No data yet. Running pools (jobq work) write the queue's history once a minute: "
    "jobs ended, queue depth, run times and the oldest due job's wait. The first minute "
    "shows here about a minute after a pool has started."
)
# a theme colour per line, in an order that keeps neighbours apart in the built-in themes
ROLES = ("primary", "accent", "success", "error", "secondary", "foreground")


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: a value per point (None: a gap), and a theme colour role."""

    label: str
    values: list[float | None]
    role: str
    marker: str = "braille"  # plotext's: a p95 line is dotted next to its p50


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart's title and lines."""

    title: str
    series: list[Series]


def _busiest(totals: dict[str, float]) -> list[str]:
    return sorted(totals, key=lambda k: (-totals[k], k))[:MAX_SERIES]


def charts(h: History) -> list[Chart]:
    """The four charts of a History (pure: the Pilot tests assert on this)."""
    pts = h.points
    unit = "minute" if h.step == 60 else f"{h.step // 60} minutes"

    def counts(get: Callable[[int], float]) -> list[float | None]:
        return [get(i) if p.rolled else None for i, p in enumerate(pts)]

    done = Chart(f"Jobs ended per {unit}", [
        Series("succeeded", counts(lambda i: pts[i].succeeded), "success"),
        Series("failed", counts(lambda i: pts[i].failed), "error"),
        Series("retried", counts(lambda i: pts[i].retried), "warning"),
    ])  # fmt: skip
    deepest = _busiest({q: max((p.depth or {}).get(q, 0) for p in pts) for q in h.queues})
    depth = Chart("Queue depth (due pending jobs)", [
        Series(safe_line(q, LABEL_CHARS), [None if p.depth is None else p.depth.get(q, 0)
                                           for p in pts], ROLES[n % len(ROLES)])
        for n, q in enumerate(deepest)
    ])  # fmt: skip
    oldest = Chart("Oldest due job's wait (s)", [
        Series(safe_line(q, LABEL_CHARS), [None if p.oldest is None else p.oldest.get(q, 0.0)
                                           for p in pts], ROLES[n % len(ROLES)])
        for n, q in enumerate(deepest)
    ])  # fmt: skip
    runs = {t: sum(sum(p.runs.get(t, {}).values()) for p in pts) for t in h.types}
    busiest = _busiest({t: n for t, n in runs.items() if n > 0})
    run_series = []
    for n, t in enumerate(busiest):
        name = safe_line(t, LABEL_CHARS)
        role = ROLES[n % len(ROLES)]
        run_series.append(Series(f"{name} p50", [p.p(t, 0.5) for p in pts], role))
        run_series.append(Series(f"{name} p95", [p.p(t, 0.95) for p in pts], role, "dot"))
    run = Chart("Run time p50 / p95 (s)", run_series)
    return [done, depth, run, oldest]


def _segments(values: list[float | None]) -> list[tuple[list[int], list[float]]]:
    """Runs of consecutive known values, as (indexes, values): a gap is drawn as a gap."""
    out: list[tuple[list[int], list[float]]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if out and out[-1][0][-1] == i - 1:
            out[-1][0].append(i)
            out[-1][1].append(v)
        else:
            out.append(([i], [v]))
    return out


class MetricsScreen(Screen[None]):
    """Charts of the last hour or day; `h` switches between them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,m", "close", "Back"),
        Binding("h", "toggle_span", "Hour/day"),
    ]

    def __init__(self, options: ScreenOptions) -> None:
        super().__init__()
        self.options = options
        self.span = "hour"
        self.history: History | None = None  # what is drawn (tests read it)
        self.charts: list[Chart] = []

    def compose(self) -> ComposeResult:
        # imported here: plotext costs the dashboard's start-up ~90 ms, for a view seldom opened
        from textual_plotext import PlotextPlot

        yield Static(id="metrics-title")
        yield Static(EMPTY, id="metrics-empty")
        with Grid(id="metrics-grid"):
            for i in range(4):
                yield PlotextPlot(id=f"chart-{i}")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._draw_title()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())

    def action_close(self) -> None:
        """Back to the lists."""
        self.app.pop_screen()
        self.app.post_message(Reload())  # to the app itself: this screen is closing

    def action_toggle_span(self) -> None:
        """Switch between the last hour and the last day."""
        self.span = "day" if self.span == "hour" else "hour"
        self._draw_title()
        self.post_message(Reload())

    def show(self, snap: Snapshot) -> None:
        """Draw the snapshot's history, if it is the span shown."""
        h = snap.history
        if h is None or h.span != self.span:
            return
        self.history = h
        self.charts = charts(h)
        self._draw()

    def _draw_title(self) -> None:
        t = Text("Metrics — ", style="bold", no_wrap=True, overflow="ellipsis")
        t.append("last hour, per minute" if self.span == "hour" else "last day, per 15 minutes")
        other = "the last day" if self.span == "hour" else "the last hour"
        t.append(f"   h: {other} · a gap: no pool ran then · the last point is live",
                 style="dim")  # fmt: skip
        self.query_one("#metrics-title", Static).update(t)

    def _draw(self) -> None:
        if not self.is_mounted or self.history is None:
            return
        self._draw_title()
        empty = self.history.empty
        self.query_one("#metrics-empty").display = empty
        self.query_one("#metrics-grid").display = not empty
        if empty:
            return
        variables = self.app.theme_variables
        n = len(self.history.points)
        per = self.history.step // 60
        for i, chart in enumerate(self.charts):
            widget: PlotextPlot = self.query_one(f"#chart-{i}")  # type: ignore[assignment]
            plt = widget.plt
            plt.clear_figure()
            plt.title(chart.title)
            ticks = [*range(0, n, max(1, n // 4)), n - 1]
            plt.xticks([float(k) for k in ticks], [_ago((n - 1 - k) * per) for k in ticks])
            plt.xlim(0, n - 1)
            for s in chart.series:
                rgb = _rgb(variables, s.role)
                for k, (xs, ys) in enumerate(_segments(s.values)):
                    label = s.label if k == 0 else None
                    draw = plt.scatter if len(xs) == 1 else plt.plot
                    draw(xs, ys, color=rgb, label=label, marker=s.marker)
            widget.refresh()


def _rgb(variables: dict[str, str], role: str) -> tuple[int, int, int] | str:
    """The theme's colour of a role, as plotext takes it ("default" if it has none)."""
    for name in (role, f"text-{role}"):
        try:
            return Color.parse(variables[name]).rgb
        except (KeyError, ColorParseError):
            continue
    return "default"


def _ago(minutes: int) -> str:
    """An x tick: now, -15m, -6h."""
    if minutes == 0:
        return "now"
    return f"-{minutes}m" if minutes < 120 else f"-{minutes // 60}h"
