"""The detail view of one job: why it waits, payload, result, every attempt."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from jobq import Job, JobState, safe_line

from ..data import Detail, Snapshot
from ..keys import PRIORITY_STEP, acting_actions, job_bindings, priority_error
from ..messages import (
    BumpPriority,
    Cancel,
    Reload,
    Retry,
    ScreenOptions,
    SetPriority,
    TogglePause,
)
from ..widgets.render import (
    DIM,
    NO_COLOURS,
    Palette,
    ago,
    block,
    palette_of,
    plain,
    pretty_json,
    priority,
)
from .dialogs import PromptScreen
from .edit import EditPayload

PAYLOAD_CHARS = 16 * 1024  # a 1 MiB payload is cut here, with the byte count of the rest
OUTPUT_CHARS = 256 * 1024  # the kept lines of live output (data.OUTPUT_LINES), very long ones cut


def when(ts: float | None) -> str:
    """A UTC timestamp as ISO text."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_detail(d: Detail, now: float, pal: Palette = NO_COLOURS, paused: bool = False) -> Text:
    """The whole detail view as one literal Text (`paused`: the job's queue is paused)."""
    job = d.job
    bold = Style(bold=True)
    t = Text()
    t.append(f"Job {job.id}  ", style="bold")
    t.append_text(plain(job.type, 200, style="bold"))
    view = job.view(now)
    t.append(f"  {view}", style=bold + pal.state(view))
    if paused and job.state is JobState.PENDING:
        t.append("  paused", style=bold + pal.state("paused"))
    t.append("\n")
    if d.waiting is not None:
        title = "Why it is waiting" if job.state is JobState.PENDING else "How it runs"
        t.append(f"\n{title}\n", style="bold underline")
        t.append("  ")
        t.append_text(plain(d.waiting.text, 600, style=pal.warning))
        t.append("\n")
    t.append("\n")
    fields: list[tuple[str, Text]] = [
        ("queue", plain(job.queue)),
        ("priority", priority(job.priority, pal)),
        ("tries", Text(job.tries())),
        ("timeout", Text(job.timeout_text())),
        ("run at", Text(f"{when(job.run_at)} ({ago(now, job.run_at)})")),
        ("created", Text(f"{when(job.created_at)} ({ago(now, job.created_at)})")),
        ("started", Text(when(job.started_at))),
        ("finished", Text(when(job.finished_at))),
        ("worker", plain(job.worker_id or "—")),
        ("unique key", plain(job.unique_key or "—")),
        (
            "last error",
            plain(job.last_error or "—", 500, style=pal.error if job.last_error else ""),
        ),
    ]
    if job.cancel_requested:
        fields.append(("cancel", Text("requested: the worker will stop it", style=pal.warning)))
    if job.state is JobState.RUNNING:
        fields.append(("progress", progress_text(d)))
    for name, value in fields:
        t.append(f"{name:>11}  ", style="dim")
        t.append_text(value)
        t.append("\n")
    _section(t, "Payload", block(pretty_json(job.payload_json), PAYLOAD_CHARS))
    if job.result_json is not None:
        _section(t, "Result", block(pretty_json(job.result_json), PAYLOAD_CHARS))
    if d.output:
        t.append(f"\nOutput of attempt #{d.output_attempt} (live)\n", style="bold underline")
        if d.output_dropped:
            t.append(f"  … {d.output_dropped:,} earlier lines (jobq logs {job.id} has them)\n",
                     style="dim")  # fmt: skip
        t.append_text(block("\n".join(d.output), OUTPUT_CHARS))
        t.append("\n")
    if d.edits:
        t.append(f"\nPayload edits ({len(d.edits)})\n", style="bold underline")
        for e in d.edits:
            t.append(f"\n{when(e.at)}  by ")
            t.append_text(plain(f"{e.user}@{e.host}", 120))
            t.append("  (retried)\n" if e.retried else "\n", style="dim")
            t.append("payload before:\n", style="dim")
            t.append_text(block(pretty_json(e.old_payload_json), PAYLOAD_CHARS // 4))
            t.append("\n")
    t.append(f"\nAttempts ({len(d.attempts)})\n", style="bold underline")
    if not d.attempts:
        t.append("  none finished yet\n", style="dim")
    for a in d.attempts:
        style = pal.success if a.outcome.value == "succeeded" else pal.error
        t.append(f"\n#{a.attempt} ", style="bold")
        t.append(a.outcome.value, style=bold + style)
        t.append(f"  {when(a.started_at)}, took {a.finished_at - a.started_at:.1f}s  on ")
        t.append_text(plain(a.worker_id or "?", 60))
        t.append("\n")
        if a.error:
            t.append_text(plain(a.error, 500, style=pal.error))
            t.append("\n")
        if a.traceback:
            t.append_text(block(a.traceback, style=DIM + pal.error))
            t.append("\n")
        if a.output:
            t.append("output:\n", style="dim")
            t.append_text(block(a.output))
            t.append("\n")
    return t


def progress_text(d: Detail) -> Text:
    """The running attempt's progress: "40%  40 of 100 resized", or a dash."""
    p = d.progress
    if p is None:
        return Text("—")
    out = Text(p.percent(), style="bold")
    if p.message:
        out.append("  ")
        out.append_text(plain(p.message, 200))
    return out


def _section(t: Text, title: str, body: Text) -> None:
    t.append(f"\n{title}\n", style="bold underline")
    t.append_text(body)
    t.append("\n")


class DetailScreen(Screen[None]):
    """Everything about one job, kept live by the loader."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        *job_bindings(footer=True),
    ]

    ACTING: ClassVar[frozenset[str]] = acting_actions(BINDINGS)

    def __init__(self, job_id: int, options: ScreenOptions) -> None:
        super().__init__()
        self.job_id = job_id
        self.options = options
        self.job: Job | None = None
        self.snapshot: Snapshot | None = None
        self.paused: frozenset[str] = frozenset()  # the paused queues, as last loaded

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-scroll"):
            yield Static(Text(f"Job {self.job_id}: loading…"), id="detail")
        yield Footer(compact=True)

    def show(self, snap: Snapshot) -> None:
        """Draw the job if the snapshot carries it."""
        if snap.request.detail_id != self.job_id:
            return
        body = self.query_one("#detail", Static)
        if snap.detail is None:
            self.job = None
            body.update(Text(f"No job {self.job_id} in this queue file (pruned, or never was)",
                             style="bold"))  # fmt: skip
            return
        self.job = snap.detail.job
        self.paused = frozenset(snap.header.paused)
        self.snapshot = snap
        pal = palette_of(self.app.theme_variables)
        paused = self.job.queue in self.paused
        scroll = self.query_one("#detail-scroll", VerticalScroll)
        # scrolled to the end of an overflowing view (End): stay there as lines come, like
        # tail -f; opened at the top, the view stays at the top
        following = 0 < scroll.max_scroll_y <= scroll.scroll_y
        body.update(render_detail(snap.detail, self.options.clock(), pal, paused))
        if following and snap.detail.output and self.job.state is JobState.RUNNING:
            self.call_after_refresh(scroll.scroll_end, animate=False)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._redraw)

    def _redraw(self, _theme: object = None) -> None:
        if self.snapshot is not None:
            self.show(self.snapshot)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in self.ACTING and self.options.read_only)

    def action_close(self) -> None:
        """Back to the list."""
        self.app.pop_screen()
        self.app.post_message(Reload())  # to the app itself: this screen is closing

    def _what(self) -> str:
        job = self.job
        return f"job {self.job_id}" + (f" ({safe_line(job.type, 60)})" if job else "")

    def action_retry(self) -> None:
        """Retry this job."""
        self.post_message(Retry([self.job_id], what=self._what()))

    def action_cancel(self) -> None:
        """Cancel this job (asks first, naming it)."""
        self.post_message(Cancel([self.job_id], what=self._what()))

    def action_priority_up(self) -> None:
        """Raise this job's priority by one level."""
        if self.job is not None:
            self.post_message(BumpPriority([(self.job.id, self.job.priority)], PRIORITY_STEP))

    def action_priority_down(self) -> None:
        """Lower this job's priority by one level."""
        if self.job is not None:
            self.post_message(BumpPriority([(self.job.id, self.job.priority)], -PRIORITY_STEP))

    def action_set_priority(self) -> None:
        """Ask for this job's priority."""

        def done(text: str | None) -> None:
            if text:
                self.post_message(SetPriority([self.job_id], text))

        self.app.push_screen(
            PromptScreen(
                f"Priority of {self._what()}",
                "a number, or low/normal/high/critical",
                check=priority_error,
            ),
            done,
        )

    def action_pause(self) -> None:
        """Pause or resume this job's queue."""
        if self.job is None:
            return
        self.post_message(TogglePause(self.job.queue, self.job.queue in self.paused))

    def action_edit_payload(self) -> None:
        """Edit this job's payload."""
        self.post_message(EditPayload(self.job_id))
