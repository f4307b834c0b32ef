"""The schedules screen: every periodic job (jobq.schedules) with its next run and last job.

Opened with `s` from the lists. It reads the schedules in a thread worker of its own (one
`jobq.Queue`, kept while the screen is open) whenever the app's loader has read a change or its
fallback timer fired, so the countdowns move and a fired schedule shows its new job. `enter` opens
the last job a schedule enqueued; `P` pauses or resumes the selected schedule (an acting key:
refused in read-only mode, like every other action).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from jobq import Job, JobqError, Queue, Schedule, format_duration, safe_line

from ..keys import acting, acting_actions
from ..messages import Reload, ScreenOptions
from ..widgets.render import Palette, palette_of, plain
from ..widgets.table import Columns, PagedTable, Row
from .detail import DetailScreen

SCHEDULE_COLUMNS: Columns = (("name", 16), ("cron", 13), ("tz", 14), ("type", 14),
                             ("queue", 9), ("state", 6), ("next run", 32),
                             ("last job", None))  # fmt: skip


@dataclass
class SchedulesLoaded(Message):
    """The screen's reader thread read the schedules and the states of their last jobs."""

    schedules: list[Schedule]
    last_jobs: dict[int, Job]
    error: str = ""


@dataclass
class ToggleSchedule(Message):
    """Pause a running schedule, or resume a paused one (handled by the app)."""

    name: str
    paused: bool


def _zone(tz: str) -> object:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(tz)
    except (ValueError, OSError, KeyError):  # a zone this machine lacks: say it in UTC
        return timezone.utc


def next_run_text(s: Schedule, now: float) -> str:
    """`in 4m12s · 2026-01-01 00:05 CET`: relative, then absolute in the schedule's zone
    (`-` while paused: a resume moves it to the first slot after the resume)."""
    if s.paused:
        return "-"
    when = datetime.fromtimestamp(s.next_at, tz=_zone(s.tz))  # type: ignore[arg-type]
    absolute = when.strftime("%Y-%m-%d %H:%M %Z")
    left = s.next_at - now
    return ("due" if left <= 0 else "in " + format_duration(left)) + " · " + absolute


def schedule_row(s: Schedule, job: Job | None, now: float, pal: Palette) -> Row:
    """The cells of one schedule (`job`: its last job, None if it has none or was pruned)."""
    if s.last_job_id is None:
        last = Text("-", style=pal.state("cancelled"))
    elif job is None:
        last = Text(f"{s.last_job_id}  (pruned)")
    else:
        last = Text(str(job.id))
        last.append("  ")
        last.append(job.state.value, style=pal.state(job.state.value))
    state = Text("paused", style=pal.warning) if s.paused else Text("active", style=pal.success)
    return s.name, [plain(s.name, 60), plain(s.cron, 40), plain(s.tz, 40), plain(s.type, 60),
                    plain(s.queue, 40), state, Text(next_run_text(s, now)), last]  # fmt: skip


class SchedulesScreen(Screen[None]):
    """Periodic jobs: name, cron, zone, type, queue, paused, next run, last job."""

    DEFAULT_CSS = """
    #schedules { height: 1fr; }
    #schedules-title { height: 1; padding: 0 1; background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,s", "close", "Back"),
        Binding("enter", "open", "Open last job", priority=True),
        acting("P", "toggle_schedule", "Pause/resume schedule", key_display="P"),
    ]
    ACTING: ClassVar[frozenset[str]] = acting_actions(BINDINGS)

    def __init__(self, db_path: str, options: ScreenOptions) -> None:
        super().__init__()
        self.db_path = db_path
        self.options = options
        self.schedules: list[Schedule] = []
        self.last_jobs: dict[int, Job] = {}
        self.loads = 0
        self._reader: Queue | None = None
        self._lock = threading.Lock()  # one read at a time on the reader connection

    def compose(self) -> ComposeResult:
        yield Static(Text("Schedules", style="bold"), id="schedules-title")
        yield PagedTable(id="schedules")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._draw)
        self.reload()

    def on_unmount(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    @property
    def table(self) -> PagedTable:
        """The list widget."""
        return self.query_one("#schedules", PagedTable)

    def reload(self) -> None:
        """Read the schedules again, in a thread (the app calls this after each load)."""
        self.run_worker(self._read, thread=True, group="schedules", exit_on_error=False)

    def _read(self) -> None:
        with self._lock:
            try:
                if self._reader is None:
                    self._reader = Queue(self.db_path, create=False)
                rows = self._reader.schedules()
                ids = [s.last_job_id for s in rows if s.last_job_id is not None]
                jobs = {j.id: j for j in self._reader.backend.get_many(ids)} if ids else {}
                msg = SchedulesLoaded(rows, jobs)
            except JobqError as e:
                msg = SchedulesLoaded([], {}, str(e))
        self.post_message(msg)

    def on_schedules_loaded(self, message: SchedulesLoaded) -> None:
        if message.error:
            self.notify(message.error, title="cannot read the schedules", severity="error",
                        markup=False)  # fmt: skip
            return
        self.schedules, self.last_jobs = message.schedules, message.last_jobs
        self.loads += 1
        self._draw()

    def _draw(self, _theme: object = None) -> None:
        if not self.is_mounted:
            return
        now = self.options.clock()
        pal = palette_of(self.app.theme_variables)
        rows = [schedule_row(s, self.last_jobs.get(s.last_job_id or 0), now, pal)
                for s in self.schedules]  # fmt: skip
        table = self.table
        table.show_rows(SCHEDULE_COLUMNS, rows, table.selected_key, None)
        title = Text("Schedules", style="bold")
        paused = sum(1 for s in self.schedules if s.paused)
        count = f"  {len(self.schedules)} · {paused} paused"
        title.append(count if self.schedules else "  none: add one with `jobq schedule add`",
                     style=pal.secondary)  # fmt: skip
        self.query_one("#schedules-title", Static).update(title)

    def selected(self) -> Schedule | None:
        """The schedule under the cursor."""
        key = self.table.selected_key if self.is_mounted else None
        return next((s for s in self.schedules if s.name == key), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in self.ACTING and self.options.read_only)

    def action_close(self) -> None:
        """Back to the lists."""
        self.app.pop_screen()
        self.app.post_message(Reload())

    def action_open(self) -> None:
        """Open the detail of the selected schedule's last job."""
        s = self.selected()
        if s is None:
            return
        if s.last_job_id is None:
            self.notify(f"schedule {safe_line(s.name, 60)} has not enqueued a job yet",
                        markup=False)  # fmt: skip
            return
        self.app.push_screen(DetailScreen(s.last_job_id, self.options))
        self.post_message(Reload())

    def action_toggle_schedule(self) -> None:
        """Pause the selected schedule, or resume it (from its next slot)."""
        s = self.selected()
        if s is not None:
            self.post_message(ToggleSchedule(s.name, s.paused))
