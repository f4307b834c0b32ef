"""The main screen: header, tabs, one page of the selected list, footer."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from jobq import ErrorGroup, Job

from ..data import (
    JOB_TABS,
    TAB_TITLES,
    TABS,
    Cursor,
    Filter,
    Request,
    Snapshot,
    cursor_of,
    filter_error,
)
from ..data import parse_filter as parse_filter_text
from ..keys import (
    BULK_KINDS,
    JOB_BINDINGS,
    PRIORITY_HINT,
    PRIORITY_STEP,
    acting,
    acting_actions,
    priority_error,
)
from ..messages import (
    Bulk,
    BumpPriority,
    Cancel,
    Reload,
    Retry,
    ScreenOptions,
    SetPriority,
    TogglePause,
    group_retry,
    job_text,
)
from ..widgets.render import Palette, header_lines, palette_of, plain, tab_line
from ..widgets.table import (
    GROUP_COLUMNS,
    JOB_COLUMNS,
    RUNNING_PROGRESS_COLUMNS,
    WORKER_COLUMNS,
    PagedTable,
    fit_columns,
    group_row,
    job_row,
    worker_row,
)
from .detail import DetailScreen
from .dialogs import BulkScreen, HelpScreen, PromptScreen
from .edit import EditPayload
from .metrics import MetricsScreen
from .tail import TailScreen


class MainScreen(Screen[None]):
    """Lists of jobs by state, workers and error groups, one page at a time."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "detail", "Detail", priority=True),
        acting("space", "mark", "Mark", show=False),  # only serves acting: refused with the actions
        *JOB_BINDINGS,
        acting("a", "bulk", "All…"),
        Binding("e", "errors", "Error tail", show=False),
        Binding("m", "metrics", "Metrics: last hour / day", show=False),
        Binding("s", "app.schedules", "Schedules: next runs, last jobs", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear", "Clear filter/marks", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "app.quit", "Quit"),
        Binding("right", "next_tab", "Next tab", show=False, priority=True),
        Binding("left", "prev_tab", "Previous tab", show=False, priority=True),
        *[Binding(str(i + 1), f"tab({i})", TAB_TITLES[t], show=False)
          for i, t in enumerate(TABS)],
    ]  # fmt: skip

    ACTING: ClassVar[frozenset[str]] = acting_actions(BINDINGS)

    def __init__(self, options: ScreenOptions) -> None:
        super().__init__()
        self.options = options
        self.tab = "pending"
        self.filter = Filter()
        self.after: Cursor | None = None
        self.prev_pages: list[Cursor | None] = []
        self.marked: set[int] = set()
        self.filters_used: list[Filter] = []  # this session's filters, oldest first (palette)
        self.snapshot: Snapshot | None = None
        self._land: str | None = None
        self._keep: dict[str, str | None] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Static(id="tabs")
        yield Static(id="status")
        yield PagedTable(id="list")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._draw_tabs()
        if self.snapshot is not None:
            self.show(self.snapshot)
        self.app.theme_changed_signal.subscribe(self, self._redraw)

    def _redraw(self, _theme: object = None) -> None:
        if self.snapshot is not None:
            self.show(self.snapshot)
        else:
            self._draw_tabs()

    @property
    def palette(self) -> Palette:
        """The current theme's colours."""
        return palette_of(self.app.theme_variables)

    @property
    def table(self) -> PagedTable:
        """The list widget."""
        return self.query_one("#list", PagedTable)

    def request(self, detail_id: int | None, tail: bool) -> Request:
        """What to load for this screen (plus a detail or tail shown above it)."""
        return Request(self.tab, self.filter, self.after, detail_id=detail_id, tail=tail)

    # ---- drawing --------------------------------------------------------------------------

    def show(self, snap: Snapshot) -> None:
        """Draw a snapshot, if it is still the one we are looking at."""
        req = snap.request
        if (req.tab, req.filter, req.after) != (self.tab, self.filter, self.after):
            return  # an answer to an older request: the loader is already on the new one
        self.snapshot = snap
        if not self.is_mounted or not self.query("#header"):
            return  # not composed yet (drawn by on_mount), or already torn down at exit
        now = self.options.clock()
        pal = self.palette
        self.query_one("#header", Static).update(
            header_lines(self.options.display_path, snap.header, pal)
        )
        table = self.table
        keep = table.selected_key if table.row_count else self._keep.get(self.tab)
        if self.tab in JOB_TABS:
            paused = set(snap.header.paused)
            progress = snap.progress if self.tab == "running" and snap.progress else None
            rows = [job_row(self.tab, j, now, j.id in self.marked, pal, j.queue in paused,
                            progress) for j in snap.jobs]  # fmt: skip
            columns = fit_columns(
                JOB_COLUMNS[self.tab] if progress is None else RUNNING_PROGRESS_COLUMNS,
                table.content_size.width,
            )
            table.show_rows(columns, rows, keep, self._land)
        elif self.tab == "workers":
            table.show_rows(WORKER_COLUMNS, [worker_row(w, now, pal) for w in snap.workers], keep)
        else:
            rows = [group_row(i, g, now, pal) for i, g in enumerate(snap.groups)]
            table.show_rows(GROUP_COLUMNS, rows, keep)
        self._land = None
        table.has_more = snap.has_more
        table.has_prev = bool(self.prev_pages)
        self._draw_tabs()
        self._draw_status()

    def _draw_tabs(self) -> None:
        tabs = self.query_one("#tabs", Static)
        counts = self.snapshot.header.counts if self.snapshot else {}
        width = tabs.content_size.width or 10_000  # before the first layout: the long form
        t = tab_line(self.tab, counts, True)
        if t.cell_len > width:  # 80 columns: every tab keeps its label, the header the counts
            t = tab_line(self.tab, counts, False)
        tabs.update(t)

    def on_resize(self) -> None:
        self._redraw()

    def _draw_status(self) -> None:
        snap = self.snapshot
        t = Text(no_wrap=True, overflow="ellipsis")
        if snap is not None and self.tab in JOB_TABS:
            first = len(self.prev_pages) * snap.request.page_size
            if snap.jobs:
                t.append(f"{first + 1:,}–{first + len(snap.jobs):,} of {snap.total:,}")
            else:
                t.append(f"no {self.tab} jobs" + (" match" if self.filter else ""))
            if snap.has_more:
                t.append("  ↓ more", style="dim")
        elif snap is not None and self.tab == "errors":
            t.append(
                f"{snap.total:,} groups in the latest {sum(g.count for g in snap.groups):,}"
                " failed attempts · r retries a group · enter opens its latest job"
            )
        elif snap is not None:
            t.append(f"{snap.total:,} pools")
        pal, bold = self.palette, Style(bold=True)
        if self.filter:
            t.append("   filter: ", style=bold + pal.warning)
            t.append_text(plain(self.filter.describe(), 200, style=pal.warning))
            if snap is not None and snap.request.filter != self.filter:
                # a payload filter over a million jobs takes seconds in the loader thread: the
                # list below is still the previous one, and says so
                t.append("  filtering…", style="dim")
        if self.marked:
            t.append(f"   {len(self.marked):,} marked", style=bold + pal.accent)
        if self.options.read_only:
            t.append("   read-only", style=bold + pal.error)
        self.query_one("#status", Static).update(t)

    # ---- selection ------------------------------------------------------------------------

    def selected_job(self) -> Job | None:
        """The job under the cursor, if the list shows jobs."""
        key = self.table.selected_key
        if self.snapshot is None or key is None or self.tab not in JOB_TABS:
            return None
        return next((j for j in self.snapshot.jobs if str(j.id) == key), None)

    def targets(self) -> list[Job]:
        """The marked jobs on this page, or else the selected one."""
        if self.snapshot is None:
            return []
        if self.marked:
            return [j for j in self.snapshot.jobs if j.id in self.marked]
        job = self.selected_job()
        return [job] if job else []

    def target_text(self) -> str:
        """The targets as a question names them: "job 61 (resize)", or "3 marked jobs"."""
        if self.marked:
            n = len(self.marked)
            return "1 marked job" if n == 1 else f"{n:,} marked jobs"
        job = self.selected_job()
        return job_text(job) if job is not None else "no job"

    def target_ids(self) -> list[int]:
        """Marked job ids (on any page), or else the selected job's."""
        if self.marked:
            return sorted(self.marked)
        job = self.selected_job()
        return [job.id] if job else []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in self.ACTING and self.options.read_only)

    # ---- navigation -----------------------------------------------------------------------

    def _go(self, tab: str | None = None, after: Cursor | None = None) -> None:
        if tab is not None and tab != self.tab:
            self._keep[self.tab] = self.table.selected_key
            self.tab = tab
            self.prev_pages = []
            self.table.clear()
            self.table.has_prev = self.table.has_more = False
        self.after = after
        self._draw_tabs()
        self.post_message(Reload())

    def action_tab(self, index: int) -> None:
        """Show the tab with that index."""
        self._go(TABS[index])

    def action_next_tab(self) -> None:
        """Show the next tab."""
        self._go(TABS[(TABS.index(self.tab) + 1) % len(TABS)])

    def action_prev_tab(self) -> None:
        """Show the previous tab."""
        self._go(TABS[(TABS.index(self.tab) - 1) % len(TABS)])

    def on_paged_table_page_request(self, message: PagedTable.PageRequest) -> None:
        snap = self.snapshot
        if snap is None or not snap.jobs:
            return
        if message.direction > 0 and snap.has_more:
            self.prev_pages.append(self.after)
            self._land = "top"
            self._go(after=cursor_of(self.tab, snap.jobs[-1]))
        elif message.direction < 0 and self.prev_pages:
            self._land = "bottom"
            self._go(after=self.prev_pages.pop())
        elif message.direction == 0:
            self.prev_pages = []
            self._land = "top"
            self._go(after=None)

    def action_detail(self) -> None:
        """Open the selected job (in Errors: the group's latest job)."""
        job_id: int | None = None
        if self.tab == "errors" and self.snapshot is not None:
            key = self.table.selected_key
            if key is not None and int(key) < len(self.snapshot.groups):
                job_id = self.snapshot.groups[int(key)].job_ids[0]
        elif self.tab == "workers":
            return
        else:
            job = self.selected_job()
            job_id = job.id if job else None
        if job_id is not None:
            self.open_job(job_id)

    def open_job(self, job_id: int) -> None:
        """Open the detail of a job by id (it says so if there is no such job)."""
        self.app.push_screen(DetailScreen(job_id, self.options))
        self.app.post_message(Reload())

    def action_errors(self) -> None:
        """Open the live error tail."""
        self.app.push_screen(TailScreen(self.options))
        self.post_message(Reload())

    def action_metrics(self) -> None:
        """Open the Metrics view (charts of the last hour or day)."""
        self.app.push_screen(MetricsScreen(self.options))
        self.post_message(Reload())

    def action_help(self) -> None:
        """Show every key."""
        keys = [(b.key_display or b.key, b.description) for b in self.BINDINGS
                if isinstance(b, Binding) and b.description]  # fmt: skip
        self.app.push_screen(HelpScreen(keys))

    def action_filter(self) -> None:
        """Ask for a filter: type glob, queue, text."""
        hint = ("type:GLOB queue:NAME payload.PATH:[OP]VALUE since:2h until:30m text"
                "   e.g.  payload.user.id:42 payload.n:>9")  # fmt: skip

        def done(text: str | None) -> None:
            if text is not None:
                self.set_filter(parse_filter_text(text))

        prompt = PromptScreen("Filter", hint, self.filter.describe(), check=filter_error)
        self.app.push_screen(prompt, done)

    def set_filter(self, f: Filter) -> None:
        """Narrow the lists to `f` (an empty Filter shows everything), from the first page."""
        self.filter = f
        if f:
            self.filters_used = [g for g in self.filters_used if g != f] + [f]
        self.prev_pages = []
        self._land = "top"
        self._go(after=None)
        self._draw_status()

    def action_clear(self) -> None:
        """Clear the marks, else the filter."""
        if self.marked:
            self.marked.clear()
            self._go(after=self.after)
        elif self.filter:
            self.filter = Filter()
            self.prev_pages = []
            self._go(after=None)

    # ---- acting ---------------------------------------------------------------------------

    def action_mark(self) -> None:
        """Mark or unmark the selected job, and move down."""
        job = self.selected_job()
        if job is None:
            return
        self.marked.symmetric_difference_update({job.id})
        if self.snapshot is not None:
            self.show(self.snapshot)
        self.table.action_cursor_down()

    def _need_job(self) -> bool:
        if self.tab in JOB_TABS and self.target_ids():
            return True
        self.app.notify("select a job first (or use Errors: r retries a group)",
                        severity="warning")  # fmt: skip
        return False

    def action_retry(self) -> None:
        """Retry the marked or selected jobs (or, in Errors, the selected group)."""
        if self.tab == "errors" and self.snapshot is not None:
            key = self.table.selected_key
            if key is not None and int(key) < len(self.snapshot.groups):
                self.retry_group(self.snapshot.groups[int(key)])
            return
        if self._need_job():
            self.post_message(Retry(self.target_ids(), what=self.target_text()))
            self.marked.clear()

    def retry_group(self, group: ErrorGroup) -> None:
        """Retry every job of an error group, asking first with the group named."""
        self.post_message(group_retry(group))

    def action_cancel(self) -> None:
        """Cancel the marked or selected jobs (asks first, naming them)."""
        if self._need_job():
            self.post_message(Cancel(self.target_ids(), what=self.target_text()))
            self.marked.clear()

    def action_priority_up(self) -> None:
        """Raise the priority of the marked or selected jobs by one level."""
        if self._need_job():
            self.post_message(BumpPriority([(j.id, j.priority) for j in self.targets()],
                                           PRIORITY_STEP))  # fmt: skip

    def action_priority_down(self) -> None:
        """Lower the priority of the marked or selected jobs by one level."""
        if self._need_job():
            self.post_message(BumpPriority([(j.id, j.priority) for j in self.targets()],
                                           -PRIORITY_STEP))  # fmt: skip

    def action_edit_payload(self) -> None:
        """Edit the selected job's payload (marks do not apply: one job at a time)."""
        job = self.selected_job()
        if job is None:
            self.app.notify("select a job first", severity="warning")
            return
        self.post_message(EditPayload(job.id))

    def action_set_priority(self) -> None:
        """Ask for a priority (number or name) for the marked or selected jobs."""
        if not self._need_job():
            return
        ids, what = self.target_ids(), self.target_text()

        def done(text: str | None) -> None:
            if text:
                self.post_message(SetPriority(ids, text, confirm=len(ids) > 1, what=what))

        self.app.push_screen(PromptScreen(f"Priority of {what}", PRIORITY_HINT,
                                          check=priority_error), done)  # fmt: skip

    def action_pause(self) -> None:
        """Pause or resume the selected job's queue."""
        job = self.selected_job()
        if job is None:
            self.app.notify("select a job: P pauses or resumes its queue", severity="warning")
            return
        paused = self.snapshot is not None and job.queue in self.snapshot.header.paused
        self.post_message(TogglePause(job.queue, paused))

    def action_bulk(self) -> None:
        """Act on every job of this tab matching the filter (only the actions the tab allows)."""
        kinds = BULK_KINDS.get(self.tab, ())
        if not kinds:
            why = (f"no action changes {self.tab} jobs" if self.tab in JOB_TABS
                   else "they work on job lists")  # fmt: skip
            self.app.notify(f"bulk actions: {why}", severity="warning")
            return
        tab, f = self.tab, self.filter
        what = Text(f"Every job in the {TAB_TITLES[tab]} tab", style="bold")
        what.append(f" matching {f.describe()}" if f else " (no filter: ALL of them)")

        def chosen(kind: str | None) -> None:
            if kind == "priority":

                def prio(text: str | None) -> None:
                    if text:
                        self.post_message(Bulk("priority", tab, f, text))

                self.app.push_screen(PromptScreen("Priority of every matching job", PRIORITY_HINT,
                                                  check=priority_error), prio)  # fmt: skip
            elif kind is not None:
                self.post_message(Bulk(kind, tab, f))

        self.app.push_screen(BulkScreen(what, kinds), chosen)
