"""Turn loaded data into `rich.text.Text`: every string from the file goes through jobq's safe
text helpers and into `Text(...)` as plain text, never through markup parsing.

Colours come from the app's Textual theme, through a `Palette` the screens build from
`App.theme_variables` and pass in: render code names roles (error, success, …), never a colour,
so every built-in theme (light, dark, ANSI) shows readable text. tests/test_tui_themes.py
audits this module and the screens for colour names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.color import Color, ColorParseError

from jobq import PRIORITY_NAMES, Job, safe_block, safe_line

from ..data import TAB_TITLES, TABS, HeaderData, duration

SPARKS = " ▁▂▃▄▅▆▇█"
_NAMES = {v: k for k, v in PRIORITY_NAMES.items()}
DIM = Style(dim=True)
NONE = Style()  # rich styles are immutable: one shared default is safe


@dataclass(frozen=True, slots=True)
class Palette:
    """The theme's colours by role, as rich styles (see `palette_of`)."""

    error: Style = NONE
    warning: Style = NONE
    success: Style = NONE
    primary: Style = NONE
    secondary: Style = NONE
    accent: Style = NONE

    def state(self, view: str) -> Style:
        """The style of a state or view word (pending, retrying, …)."""
        return {
            "pending": self.primary,
            "running": self.warning,
            "failed": self.error,
            "succeeded": self.success,
            "cancelled": DIM,
            "scheduled": self.secondary,
            "retrying": self.accent,
            "paused": self.warning,
        }.get(view, Style())


_ROLES = ("error", "warning", "success", "primary", "secondary", "accent")
_palettes: dict[tuple[str | None, ...], Palette] = {}


def palette_of(variables: Mapping[str, str]) -> Palette:
    """The palette of a theme, from `App.theme_variables` (its `text-*` colours are the ones
    the theme made readable on its own background). Cached: screens ask on every redraw."""
    key = tuple(variables.get(f"{p}{r}") for r in _ROLES for p in ("text-", ""))
    pal = _palettes.get(key)
    if pal is None:
        pal = _palettes[key] = _palette(variables)
    return pal


def _palette(variables: Mapping[str, str]) -> Palette:

    def style(role: str) -> Style:
        for name in (f"text-{role}", role):
            try:
                return Style(color=Color.parse(variables[name]).rich_color)
            except (KeyError, ColorParseError):
                continue
        return Style()

    return Palette(*(style(r) for r in _ROLES))


NO_COLOURS = Palette()  # before a theme is known (and for tests of the text alone)


def plain(text: str | None, max_chars: int = 200, style: str | Style = "") -> Text:
    """One untrusted line as literal text: controls made visible, truncated with a byte count."""
    return Text(safe_line(text, max_chars), style=style, no_wrap=True, overflow="ellipsis")


def block(text: str | None, max_chars: int = 64 * 1024, style: str | Style = "") -> Text:
    """An untrusted multi-line block (traceback, output, payload) as literal text."""
    return Text(safe_block(text, max_chars), style=style)


def priority(p: int, pal: Palette) -> Text:
    """A priority by name where it has one (`high`), else the number."""
    name = _NAMES.get(p)
    label = name if name is not None else str(p)
    bold = Style(bold=True)
    style = bold + pal.error if p >= 20 else bold if p > 0 else DIM if p < 0 else Style()
    return Text(label, style=style)


def ago(now: float, then: float | None) -> str:
    """`3m05s ago`-style text ('' without a time)."""
    if then is None:
        return ""
    return f"{duration(now - then)} ago" if now >= then else f"in {duration(then - now)}"


def due(job: Job, now: float, pal: Palette, paused: bool = False) -> Text:
    """When a pending job can run: now, or a countdown marked scheduled / retrying; "paused"
    first when its queue is paused (no worker claims it, due or not)."""
    view = job.view(now)
    when = ""
    if view == "scheduled":
        when = f"scheduled in {duration(job.run_at - now)}"
    elif view == "retrying":
        when = f"retry in {duration(job.run_at - now)}"
    if paused:
        return Text("paused" + (f", {when}" if when else ""), style=pal.state("paused"))
    if when:
        return Text(when, style=pal.state(view))
    return Text("ready", style=pal.success)


def sparkline(values: list[int]) -> str:
    """Values as one line of block characters scaled to the largest."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[1] * len(values)
    return "".join(SPARKS[1 + round(v / top * (len(SPARKS) - 2))] if v else SPARKS[1]
                   for v in values)  # fmt: skip


def header_lines(path: str, h: HeaderData, pal: Palette, width_hint: int = 30) -> Text:
    """The two header lines: file, pools and paused queues; counts and throughput."""
    bold = Style(bold=True)
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("jobq ", style="bold")
    t.append_text(plain(path, 120, style="underline"))
    t.append("   ")
    if h.pools_alive:
        t.append("● ", style=pal.success)
        t.append(f"{h.pools_alive} pool{'s' if h.pools_alive != 1 else ''} alive, "
                 f"{h.busy}/{h.slots} busy")  # fmt: skip
    else:
        t.append("○ no worker pool alive", style=bold + pal.error)
    if h.paused:
        t.append("   paused: ", style=bold + pal.warning)
        t.append_text(plain(", ".join(h.paused), 60, style=pal.warning))
    t.append("\n")
    for state in ("pending", "running", "failed", "succeeded", "cancelled"):
        t.append(f"{state} ", style=pal.state(state))
        t.append(f"{h.counts.get(state, 0):,}", style="bold")
        t.append("   ")
    per_min = sum(h.throughput)
    t.append(sparkline(h.throughput[-width_hint:]), style=pal.success)
    t.append(f" {per_min:,}/min")
    return t


def pretty_json(text: str | None) -> str:
    """Pretty-print JSON text (as text; the caller makes it safe)."""
    if text is None:
        return "—"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def tab_line(current: str, counts: dict[str, int], with_counts: bool) -> Text:
    """The tab bar: ` 1 Pending 23 ` per tab, the current one reversed."""
    t = Text(no_wrap=True, overflow="ellipsis")
    for i, tab in enumerate(TABS):
        label = f" {i + 1} {TAB_TITLES[tab]}"
        if with_counts and tab in counts:
            label += f" {counts[tab]:,}"
        t.append(label + " ", style="reverse bold" if tab == current else "")
        if with_counts:
            t.append(" ")
    return t
