"""The error tail: the latest failed attempts, following new ones like `tail -f`."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from jobq import FailedAttempt, safe_line

from ..data import Snapshot
from ..keys import acting, acting_actions
from ..messages import Reload, Retry, ScreenOptions
from ..widgets.render import palette_of
from ..widgets.table import TAIL_COLUMNS, PagedTable, tail_row
from .detail import DetailScreen


class TailScreen(Screen[None]):
    """Newest failure on top; while the cursor is on the top row, it follows new ones."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,e", "close", "Back"),
        Binding("enter", "open", "Open job", priority=True),
        acting("r", "retry", "Retry job"),
    ]
    ACTING: ClassVar[frozenset[str]] = acting_actions(BINDINGS)

    def __init__(self, options: ScreenOptions) -> None:
        super().__init__()
        self.options = options
        self.snapshot: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Error tail — newest first, following new failures", style="bold"),
                     id="tail-title")  # fmt: skip
        yield PagedTable(id="tail")
        yield Footer(compact=True)

    def show(self, snap: Snapshot) -> None:
        """Draw the latest failed attempts; stay on top (following) or on the selected one."""
        if not snap.request.tail:
            return
        self.snapshot = snap
        table = self.query_one("#tail", PagedTable)
        following = table.cursor_row <= 0
        now = self.options.clock()
        pal = palette_of(self.app.theme_variables)
        rows = [tail_row(e, now, pal) for e in snap.errors]
        table.show_rows(TAIL_COLUMNS, rows, table.selected_key, "top" if following else None)
        title = Text("Error tail — newest first", style="bold")
        title.append("  following new failures" if following else "  (paused: ↑ to the top to"
                     " follow again)", style=pal.success if following else pal.warning)  # fmt: skip
        self.query_one("#tail-title", Static).update(title)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._redraw)

    def _redraw(self, _theme: object = None) -> None:
        if self.snapshot is not None:
            self.show(self.snapshot)

    def _selected(self) -> FailedAttempt | None:
        key = self.query_one("#tail", PagedTable).selected_key
        if self.snapshot is None or key is None:
            return None
        return next((e for e in self.snapshot.errors if str(e.attempt.id) == key), None)

    def _job_id(self) -> int | None:
        e = self._selected()
        return None if e is None else e.attempt.job_id

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in self.ACTING and self.options.read_only)

    def action_close(self) -> None:
        """Back to the lists."""
        self.app.pop_screen()
        self.app.post_message(Reload())  # to the app itself: this screen is closing

    def action_open(self) -> None:
        """Open the job of the selected failure."""
        job_id = self._job_id()
        if job_id is not None:
            self.app.push_screen(DetailScreen(job_id, self.options))
            self.post_message(Reload())

    def action_retry(self) -> None:
        """Retry the job of the selected failure."""
        e = self._selected()
        if e is not None:
            job_id = e.attempt.job_id
            self.post_message(Retry([job_id], what=f"job {job_id} ({safe_line(e.type, 60)})"))
