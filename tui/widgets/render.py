"""Turn loaded data into `rich.text.Text`: every string from the file goes through jobq's safe
text helpers and into `Text(...)` as plain text, never through markup parsing."""

from __future__ import annotations

import json

from rich.text import Text

from jobq import PRIORITY_NAMES, Job, safe_block, safe_line

from ..data import HeaderData, duration

SPARKS = " ▁▂▃▄▅▆▇█"
_NAMES = {v: k for k, v in PRIORITY_NAMES.items()}
STATE_STYLES = {
    "pending": "cyan",
    "running": "yellow",
    "failed": "red",
    "succeeded": "green",
    "cancelled": "bright_black",
    "scheduled": "blue",
    "retrying": "magenta",
}


def plain(text: str | None, max_chars: int = 200, style: str = "") -> Text:
    """One untrusted line as literal text: controls made visible, truncated with a byte count."""
    return Text(safe_line(text, max_chars), style=style, no_wrap=True, overflow="ellipsis")


def block(text: str | None, max_chars: int = 64 * 1024, style: str = "") -> Text:
    """An untrusted multi-line block (traceback, output, payload) as literal text."""
    return Text(safe_block(text, max_chars), style=style)


def priority(p: int) -> Text:
    """A priority by name where it has one (`high`), else the number."""
    name = _NAMES.get(p)
    label = name if name is not None else str(p)
    style = "bold red" if p >= 20 else "bold" if p > 0 else "dim" if p < 0 else ""
    return Text(label, style=style)


def ago(now: float, then: float | None) -> str:
    """`3m05s ago`-style text ('' without a time)."""
    if then is None:
        return ""
    return f"{duration(now - then)} ago" if now >= then else f"in {duration(then - now)}"


def due(job: Job, now: float) -> Text:
    """When a pending job can run: now, or a countdown marked scheduled / retrying."""
    view = job.view(now)
    if view == "scheduled":
        return Text(f"scheduled in {duration(job.run_at - now)}", style=STATE_STYLES["scheduled"])
    if view == "retrying":
        return Text(f"retry in {duration(job.run_at - now)}", style=STATE_STYLES["retrying"])
    return Text("ready", style="green")


def sparkline(values: list[int]) -> str:
    """Values as one line of block characters scaled to the largest."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[1] * len(values)
    return "".join(SPARKS[1 + round(v / top * (len(SPARKS) - 2))] if v else SPARKS[1]
                   for v in values)  # fmt: skip


def header_lines(path: str, h: HeaderData, width_hint: int = 30) -> Text:
    """The two header lines: file, pools and paused queues; counts and throughput."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("jobq ", style="bold")
    t.append_text(plain(path, 120, style="underline"))
    t.append("   ")
    if h.pools_alive:
        t.append("● ", style="green")
        t.append(f"{h.pools_alive} pool{'s' if h.pools_alive != 1 else ''} alive, "
                 f"{h.busy}/{h.slots} busy")  # fmt: skip
    else:
        t.append("○ no worker pool alive", style="bold red")
    if h.paused:
        t.append("   paused: ", style="bold yellow")
        t.append_text(plain(", ".join(h.paused), 60, style="yellow"))
    t.append("\n")
    for state in ("pending", "running", "failed", "succeeded", "cancelled"):
        t.append(f"{state} ", style=STATE_STYLES[state])
        t.append(f"{h.counts.get(state, 0):,}", style="bold")
        t.append("   ")
    per_min = sum(h.throughput)
    t.append(sparkline(h.throughput[-width_hint:]), style="green")
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
