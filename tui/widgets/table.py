"""The list widget: a DataTable that holds one page of rows and asks for the next at its edges.

A DataTable costs ~125 µs per row, so it never holds more than one page (100 rows); moving past
the last row (down, PageDown) or above the first asks the screen for the adjacent page.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from typing_extensions import Self

from jobq import ErrorGroup, FailedAttempt, Job, JobProgress, WorkerInfo

from ..data import duration
from .render import Palette, ago, due, plain, priority

Row = tuple[str, list[Text]]
CELL_CACHE_SIZE = 4096  # rendered cells kept across updates (a page shows ~40 x 8)
Columns = tuple[tuple[str, int | None], ...]

NO_MARK = Text(" ")

JOB_COLUMNS: dict[str, Columns] = {
    "pending": (("", 1), ("id", 8), ("type", 18), ("queue", 10), ("prio", 8), ("due", 20),
                ("tries", 5), ("payload", None)),
    "running": (("", 1), ("id", 8), ("type", 18), ("queue", 10), ("elapsed", 9),
                ("worker", 16), ("tries", 5), ("payload", None)),
    "failed": (("", 1), ("id", 8), ("type", 18), ("queue", 10), ("tries", 5), ("failed", 12),
               ("last error", None)),
    "succeeded": (("", 1), ("id", 8), ("type", 18), ("queue", 10), ("finished", 12),
                  ("took", 7), ("result", None)),
    "cancelled": (("", 1), ("id", 8), ("type", 18), ("queue", 10), ("cancelled", 12),
                  ("payload", None)),
}  # fmt: skip
# the Running tab when a job on the page reported progress (job.progress): one more column
RUNNING_PROGRESS_COLUMNS: Columns = (*JOB_COLUMNS["running"][:-1], ("progress", 24),
                                     JOB_COLUMNS["running"][-1])  # fmt: skip
WORKER_COLUMNS: Columns = (("pool", 14), ("host", 16), ("pid", 7), ("status", 9), ("busy", 7),
                           ("done", 8), ("heartbeat", 10), ("types", None))  # fmt: skip
GROUP_COLUMNS: Columns = (("count", 6), ("type", 18), ("exception", 60), ("first frame", 24),
                          ("last", None))  # fmt: skip
TAIL_COLUMNS: Columns = (("when", 10), ("job", 9), ("type", 18), ("attempt", 7), ("outcome", 8),
                         ("error", None))  # fmt: skip


# narrower widths for a narrow screen (80 columns): the columns that say what a job is and
# whether it will run (tries included) stay in view; the open last column gets what is left
NARROW = {"id": 7, "type": 14, "queue": 8, "worker": 12, "due": 18, "elapsed": 7}


def fit_columns(columns: Columns, width: int) -> Columns:
    """`columns`, narrowed (see NARROW) when their fixed widths and padding pass `width`."""
    fixed = sum(w or 0 for _, w in columns) + 2 * len(columns)
    if not width or fixed <= width:
        return columns
    return tuple((label, NARROW.get(label, w) if w is not None else None)
                 for label, w in columns)  # fmt: skip


def _tries(job: Job) -> Text:
    return Text(job.tries())  # the one "tries n/max" form, as in `jobq ls` and `jobq show`


def progress_cell(p: JobProgress | None) -> Text:
    """A running job's progress: "40% 40 of 100 resized" (blank when it reported none)."""
    if p is None:
        return Text("")
    cell = Text(p.percent(), style=Style(bold=True))
    if p.message:
        cell.append(" ")
        cell.append_text(plain(p.message, 100))
    return cell


def job_row(tab: str, job: Job, now: float, marked: bool, pal: Palette,
            paused: bool = False,
            progress: dict[int, JobProgress] | None = None) -> Row:  # fmt: skip
    """The cells of one job in the given tab (`paused`: its queue is paused; `progress`: the
    running jobs' progress, given when the tab has a progress column)."""
    mark = Text("●", style=Style(bold=True) + pal.accent) if marked else NO_MARK
    head = [mark, Text(str(job.id), justify="right"), plain(job.type, 60),
            plain(job.queue, 40)]  # fmt: skip
    if tab == "pending":
        cells = [priority(job.priority, pal), due(job, now, pal, paused), _tries(job),
                 plain(job.payload_json, 300)]  # fmt: skip
    elif tab == "running":
        cells = [Text(duration(now - (job.started_at or now)), style=pal.state("running")),
                 plain(job.worker_id, 40), _tries(job), plain(job.payload_json, 300)]  # fmt: skip
        if progress is not None:
            cells.insert(3, progress_cell(progress.get(job.id)))
    elif tab == "failed":
        cells = [_tries(job), Text(ago(now, job.finished_at)),
                 plain(job.last_error, 300, style=pal.error)]  # fmt: skip
    elif tab == "succeeded":
        took = (job.finished_at or now) - (job.started_at or job.finished_at or now)
        cells = [Text(ago(now, job.finished_at)), Text(f"{took:.1f}s"),
                 plain(job.result_json, 300)]  # fmt: skip
    else:
        cells = [Text(ago(now, job.finished_at)), plain(job.payload_json, 300)]
    return str(job.id), head + cells


def worker_row(w: WorkerInfo, now: float, pal: Palette) -> Row:
    """The cells of one worker pool."""
    word = w.status_at(now)  # the same word as `jobq workers` and its --json
    status = Text(word, style=pal.success if w.alive(now) else pal.error)
    return w.id, [plain(w.name, 40), plain(w.host, 40), Text(str(w.pid)), status,
                  Text(f"{len(w.current_jobs)}/{w.concurrency}"), Text(f"{w.jobs_done:,}"),
                  Text(ago(now, w.heartbeat_at)),
                  plain(", ".join(w.types) + (f"  queues: {', '.join(w.queues)}"
                                              if w.queues else ""), 300)]  # fmt: skip


def group_row(i: int, g: ErrorGroup, now: float, pal: Palette) -> Row:
    """The cells of one error group."""
    return str(i), [Text(f"{g.count:,}", style=Style(bold=True) + pal.error, justify="right"),
                    plain(g.type, 60), plain(g.error, 300, style=pal.error), plain(g.frame, 80),
                    Text(ago(now, g.last_at))]  # fmt: skip


def tail_row(e: FailedAttempt, now: float, pal: Palette) -> Row:
    """The cells of one failed attempt in the error tail (`#2`: its attempt number)."""
    a = e.attempt
    return str(a.id), [Text(ago(now, a.finished_at)), Text(str(a.job_id), justify="right"),
                       plain(e.type, 60), Text(f"#{a.attempt}"),
                       Text(a.outcome.value, style=pal.error),
                       plain(a.error, 300, style=pal.error)]  # fmt: skip


class PagedTable(DataTable[Text]):
    """A row-cursor DataTable showing one page; asks for the neighbouring page at its edges."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "first_page", "First page", show=False),
        Binding("ctrl+home", "first_page", "First page", show=False),
    ]

    class PageRequest(Message):
        """The user moved past an edge of the page: +1 next page, -1 previous, 0 first."""

        def __init__(self, direction: int) -> None:
            super().__init__()
            self.direction = direction

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.has_more = False
        self.has_prev = False
        self._columns: Columns = ()
        self._keys: list[str] = []
        self._cells: list[list[Text]] = []
        self._cell_lines: dict[tuple[object, ...], list[list[Segment]]] = {}

    def show_rows(self, columns: Columns, rows: list[Row], keep: str | None,
                  land: str | None = None) -> None:  # fmt: skip
        """Replace the rows, keeping the selected key (or row index) and the scroll offset."""
        old_row = self.cursor_row
        scroll_y = self.scroll_y
        if columns and columns[-1][1] is None:
            # size the open last column ourselves: an auto-width column is measured lazily
            # (on idle), so a repaint could catch it half-measured
            label = columns[-1][0]
            widest = max((cells[-1].cell_len for _, cells in rows), default=0)
            columns = (*columns[:-1], (label, max(len(label), min(widest, 300))))
        keys = [k for k, _ in rows]
        if columns == self._columns and keys == self._keys:
            self._update_in_place(rows)  # the common refresh: same rows, a few cells changed
            if land is not None and rows:
                self.move_cursor(row=0 if land == "top" else len(rows) - 1, animate=False)
            return
        self._keys = keys
        self._cells = [cells for _, cells in rows]
        if columns != self._columns:
            self.clear(columns=True)
            for label, width in columns:
                self.add_column(label, width=width)
            self._columns = columns
            scroll_y = 0
        else:
            self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if not rows:
            return
        if land == "top":
            target = 0
        elif land == "bottom":
            target = len(rows) - 1
        elif keep is not None and keep in keys:
            target = keys.index(keep)
        else:
            target = min(old_row, len(rows) - 1)
        self.move_cursor(row=target, animate=False, scroll=land is not None)
        if land is None:
            self.scroll_to(y=scroll_y, animate=False, immediate=True)

    def clear(self, columns: bool = False) -> Self:
        """Remove every row (and the columns too, if asked)."""
        self._keys, self._cells = [], []
        if columns:
            self._columns = ()
        return super().clear(columns)

    def _update_in_place(self, rows: list[Row]) -> None:
        column_keys = [c.key for c in self.ordered_columns]
        for (key, cells), old in zip(rows, self._cells, strict=False):
            for i, (cell, was) in enumerate(zip(cells, old, strict=False)):
                if cell != was:
                    self.update_cell(key, column_keys[i], cell)
        self._cells = [cells for _, cells in rows]

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        # DataTable forgets every rendered cell whenever any cell changes (its caches are keyed
        # on an update counter), so a refresh that moves or changes a few rows re-rendered the
        # whole visible page (~30 ms of CPU, ~80 % of it here). Cells are kept here by what they
        # show and where, so only the cells that really changed are rendered again.
        if row_index < 0 or column_index < 0:  # the header row, row labels (none here)
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = self.get_cell_at(Coordinate(row_index, column_index))
        if not isinstance(cell, Text):  # pragma: no cover - every cell is a Text
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        key = (row_index, column_index, cell.plain, cell.style, tuple(cell.spans), cell.justify,
               cell.overflow, cell.no_wrap, cell.end, base_style, width, cursor, hover,
               self.show_cursor, self._show_hover_cursor, self._pseudo_class_state,
               self.ordered_rows[row_index].height, self.cell_padding)  # fmt: skip
        lines = self._cell_lines.get(key)
        if lines is None:
            if len(self._cell_lines) >= CELL_CACHE_SIZE:
                self._cell_lines.clear()
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._cell_lines[key] = lines
        return lines

    def notify_style_update(self) -> None:
        self._cell_lines.clear()  # the theme or a CSS rule changed: every cell looks different
        super().notify_style_update()

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except LookupError:  # pragma: no cover - the cursor is always on a row here
            return None

    def action_cursor_down(self) -> None:
        if self.has_more and self.cursor_row >= self.row_count - 1:
            self.post_message(self.PageRequest(+1))
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.has_prev and self.cursor_row <= 0:
            self.post_message(self.PageRequest(-1))
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        if self.has_more and self.cursor_row >= self.row_count - 1:
            self.post_message(self.PageRequest(+1))
        else:
            super().action_page_down()

    def action_page_up(self) -> None:
        if self.has_prev and self.cursor_row <= 0:
            self.post_message(self.PageRequest(-1))
        else:
            super().action_page_up()

    def action_first_page(self) -> None:
        """Go back to the first page of the list."""
        if self.has_prev:
            self.post_message(self.PageRequest(0))
        elif self.row_count:
            self.move_cursor(row=0)
