"""The error tail: the latest failed attempts, following new ones like `tail -f`."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..data import Snapshot
from ..widgets.table import TAIL_COLUMNS, PagedTable, tail_row

if TYPE_CHECKING:
    from ..app import JobqApp


class TailScreen(Screen[None]):
    """Newest failure on top; while the cursor is on the top row, it follows new ones."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,e", "close", "Back"),
        Binding("enter", "open", "Open job", priority=True),
        Binding("r", "retry", "Retry job"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: Snapshot | None = None

    @property
    def jobq_app(self) -> JobqApp:
        """The app, typed."""
        from ..app import JobqApp

        assert isinstance(self.app, JobqApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Static(Text("Error tail — newest first, following new failures", style="bold"),
                     id="tail-title")  # fmt: skip
        yield PagedTable(id="tail")
        yield Footer()

    def show(self, snap: Snapshot) -> None:
        """Draw the latest failed attempts; stay on top (following) or on the selected one."""
        if not snap.request.tail:
            return
        self.snapshot = snap
        table = self.query_one("#tail", PagedTable)
        following = table.cursor_row <= 0
        now = self.jobq_app.clock()
        rows = [tail_row(e, now) for e in snap.errors]
        table.show_rows(TAIL_COLUMNS, rows, table.selected_key, "top" if following else None)
        title = Text("Error tail — newest first", style="bold")
        title.append("  following new failures" if following else "  (paused: ↑ to the top to"
                     " follow again)", style="green" if following else "yellow")  # fmt: skip
        self.query_one("#tail-title", Static).update(title)

    def _job_id(self) -> int | None:
        key = self.query_one("#tail", PagedTable).selected_key
        if self.snapshot is None or key is None:
            return None
        return next((e.attempt.job_id for e in self.snapshot.errors if str(e.attempt.id) == key),
                    None)  # fmt: skip

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "retry" and self.jobq_app.read_only)

    def action_close(self) -> None:
        """Back to the lists."""
        self.app.pop_screen()
        self.jobq_app.reload()

    def action_open(self) -> None:
        """Open the job of the selected failure."""
        from .detail import DetailScreen

        job_id = self._job_id()
        if job_id is not None:
            self.app.push_screen(DetailScreen(job_id))
            self.jobq_app.reload()

    def action_retry(self) -> None:
        """Retry the job of the selected failure."""
        job_id = self._job_id()
        if job_id is not None:
            self.jobq_app.retry([job_id])
