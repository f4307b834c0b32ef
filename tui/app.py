"""The dashboard app and its one factory, `make_app`, used by `jobq tui`, the tests and the
screenshot script alike."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from rich.markup import escape
from textual import events
from textual.app import App, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.message import Message

from jobq import (
    ActionOutcome,
    ActionResult,
    FileReplaced,
    InvalidInput,
    Job,
    JobqError,
    JobState,
    Queue,
    safe_line,
)

from .data import TAB_TITLES, Request, Snapshot
from .keys import acting_keys, parse_priority
from .loader import Loader
from .messages import (
    Bulk,
    BumpPriority,
    Cancel,
    Reload,
    Retry,
    ScreenOptions,
    SetPriority,
    TogglePause,
    job_text,
)
from .palette import JobqCommands
from .screens.detail import DetailScreen
from .screens.dialogs import ConfirmScreen
from .screens.edit import Closed, Edited, EditPayload, EditScreen, edit_in_terminal
from .screens.main import MainScreen
from .screens.metrics import MetricsScreen
from .screens.schedules import SchedulesScreen, ToggleSchedule
from .screens.tail import TailScreen

# every key that acts on the queue on any screen: in read-only mode the screens disable their
# actions, and the key reaches this binding instead, which says why nothing happened
ACTION_KEYS = ",".join(
    acting_keys([*MainScreen.BINDINGS, *DetailScreen.BINDINGS, *TailScreen.BINDINGS,
                 *SchedulesScreen.BINDINGS])
)  # fmt: skip


@dataclass
class Loaded(Message):
    """The loader read a new snapshot."""

    snapshot: Snapshot


@dataclass
class LoadFailed(Message):
    """The loader could not read the file."""

    error: str


@dataclass
class FileGone(Message):
    """The path no longer names the file the dashboard opened: the app exits 75."""

    error: FileReplaced


@dataclass
class ActionDone(Message):
    """An action finished in its thread: a one-line summary, and whether it failed."""

    summary: str
    error: bool = False


class JobqApp(App[None]):
    """The jobq dashboard over one queue file."""

    CSS_PATH = "app.tcss"
    TITLE = "jobq"
    COMMANDS = App.COMMANDS | {JobqCommands}  # ctrl+p: go to a job, tabs, filters, queues, …
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(ACTION_KEYS, "refuse", "read-only", show=False),
    ]

    def __init__(
        self,
        db_path: str,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
        display_path: str | None = None,
        watch: bool = True,
        fallback: float = 2.0,
    ) -> None:
        super().__init__()
        self.db_path = db_path
        self.read_only = read_only
        self.clock = clock
        self.display_path = display_path or db_path
        self.loader = Loader(db_path, self._post_load, clock, watch=watch, fallback=fallback)
        self._writer: Queue | None = None
        self._write_lock = threading.Lock()
        self.main = MainScreen(ScreenOptions(read_only, clock, self.display_path))
        self.loads = 0
        self.fatal: JobqError | None = None  # why the app exited on its own (`jobq tui` raises it)
        self.kept_edits: list[tuple[int, str]] = []  # (job id, file): editors open at quit

    # ---- loading --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(self.main)
        self.loader.start(self.current_request())

    def on_unmount(self) -> None:
        self.loader.stop()
        # a write may still run in a worker thread: closing its connection under it crashes
        # the interpreter (seen: a segfault at teardown while a busy write waited). Wait for it
        # a while; past that, the process's exit closes the connection.
        if self._write_lock.acquire(timeout=5.0):
            try:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            finally:
                self._write_lock.release()

    async def on_event(self, event: events.Event) -> None:
        # a key (or scroll) from the user: the loader eases off so that the keys come first
        if isinstance(event, (events.Key, events.MouseScrollDown, events.MouseScrollUp)) and (
            not event.is_forwarded
        ):
            self.loader.busy()
        await super().on_event(event)

    def _post_load(self, result: Snapshot | str | FileReplaced) -> None:
        if isinstance(result, FileReplaced):
            self.post_message(FileGone(result))
        else:
            self.post_message(LoadFailed(result) if isinstance(result, str) else Loaded(result))

    def current_request(self) -> Request:
        """What the screens show now: the main list, plus an open detail or error tail."""
        detail_id = None
        tail = False
        metrics = None
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen):
                detail_id = screen.job_id
            elif isinstance(screen, TailScreen):
                tail = True
            elif isinstance(screen, MetricsScreen):
                metrics = screen.span
        return dataclasses.replace(self.main.request(detail_id, tail), metrics=metrics)

    def on_reload(self, message: Reload) -> None:
        """Ask the loader for what the screens show now."""
        self.loader.request(self.current_request())

    def on_loaded(self, message: Loaded) -> None:
        self.loads += 1
        snap = message.snapshot
        self.main.show(snap)
        for screen in self.screen_stack:
            if isinstance(screen, (DetailScreen, TailScreen, MetricsScreen)):
                screen.show(snap)
            elif isinstance(screen, SchedulesScreen):
                screen.reload()  # a change was read, or the fallback timer fired

    def on_load_failed(self, message: LoadFailed) -> None:
        self.notify(message.error, title="cannot read the queue file", severity="error")

    def on_file_gone(self, message: FileGone) -> None:
        # showing the old file's jobs, or acting on them, would mislead: stop like a pool does
        self.fatal = message.error
        self.exit(return_code=message.error.exit_code)

    # ---- actions --------------------------------------------------------------------------

    def action_refuse(self) -> None:
        """What every action key does in read-only mode."""
        self.notify("read-only: actions are disabled (--read-only, or --serve without "
                    "--allow-actions)", severity="warning")  # fmt: skip

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "refuse":
            return self.read_only
        if action == "schedules":  # `s` opens them from the lists only (a prompt types it)
            return self.screen is self.main
        return True

    def action_schedules(self) -> None:
        """Open the schedules screen."""
        self.push_screen(SchedulesScreen(self.db_path, self.main.options))

    def allowed(self) -> bool:
        """False (and say so) in read-only mode."""
        if self.read_only:
            self.action_refuse()
            return False
        return True

    def act(self, what: str, work: Callable[[Queue], str], confirm: str | None = None) -> None:
        """Run `work` on the writer connection in a thread, after an optional confirmation."""
        if not self.allowed():
            return

        def run() -> None:
            with self._write_lock:
                try:
                    if self._writer is None:
                        self._writer = Queue(self.db_path, create=False)
                    msg = ActionDone(work(self._writer))
                except JobqError as e:
                    msg = ActionDone(f"{what}: {e}", error=True)
            self.post_message(msg)

        def go(yes: bool | None = True) -> None:
            if yes:
                self.run_worker(run, thread=True, group="actions", exit_on_error=False)

        if confirm is None:
            go()
        else:
            self.push_screen(ConfirmScreen(confirm), go)

    def on_action_done(self, message: ActionDone) -> None:
        # an error is a JobqError's text as it is (untrusted, never markup); a summary is markup
        self.notify(message.summary, severity="error" if message.error else "information",
                    timeout=4, markup=not message.error)  # fmt: skip
        self.loader.refresh()

    def on_retry(self, message: Retry) -> None:
        """Retry failed or cancelled jobs (asking first when there are several)."""
        ids = list(message.ids)
        ask = (len(ids) > 1) if message.confirm is None else message.confirm
        what = message.what or _jobs(len(ids))
        self.act("retry", lambda q: summarize("retried", q.retry_many(ids)),
                 f"Retry {what}?" if ask else None)  # fmt: skip

    def on_cancel(self, message: Cancel) -> None:
        """Cancel jobs, after a confirmation that names them."""
        ids = list(message.ids)
        what = message.what or _jobs(len(ids))
        self.act("cancel", lambda q: summarize("cancelled", q.cancel_many(ids)),
                 f"Cancel {what}?")  # fmt: skip

    def on_set_priority(self, message: SetPriority) -> None:
        """Set the priority of jobs (a number or a name)."""
        ids = list(message.ids)
        try:
            p = parse_priority(message.value)
        except InvalidInput as e:  # the prompts check first: only a caller's mistake gets here
            self.notify(str(e), severity="error")
            return
        what = message.what or _jobs(len(ids))
        self.act(
            "priority",
            lambda q: summarize(f"priority {p}", q.set_priority_many(ids, p)),
            f"Set the priority of {what} to {p}?" if message.confirm else None,
        )

    def on_bump_priority(self, message: BumpPriority) -> None:
        """Move each job's priority by `delta` (one named level is 10)."""
        items, delta = list(message.jobs), message.delta

        def work(q: Queue) -> str:
            by_value: dict[int, list[int]] = {}
            for job_id, prio in items:
                by_value.setdefault(prio + delta, []).append(job_id)
            for p, ids in by_value.items():
                q.set_priority_many(ids, p)
            if len(items) == 1:
                return f"job {items[0][0]}: priority {items[0][1] + delta}"
            return f"priority {delta:+d} on {_jobs(len(items))}"

        self.act("priority", work)

    def on_toggle_pause(self, message: TogglePause) -> None:
        """Pause a running queue, or resume a paused one."""
        queue, paused = message.queue, message.paused

        def work(q: Queue) -> str:
            if paused:
                q.resume(queue)
                return f"queue {queue!r} resumed"
            q.pause(queue)
            return f"queue {queue!r} paused: workers claim nothing from it"

        self.act("pause", work)

    def on_edit_payload(self, message: EditPayload) -> None:
        """Read the job, then edit its payload: in $EDITOR with the app suspended, else (in a
        browser, headless) in the modal JSON editor."""
        if not self.allowed():
            return
        job_id = message.job_id

        def load() -> None:
            with self._write_lock:
                try:
                    if self._writer is None:
                        self._writer = Queue(self.db_path, create=False)
                    job, limit = self._writer.get(job_id), self._writer.payload_limit
                except JobqError as e:
                    self.post_message(ActionDone(f"edit: {e}", error=True))
                    return
            self.call_from_thread(self._edit, job, limit)

        self.run_worker(load, thread=True, group="actions", exit_on_error=False)

    def _edit(self, job: Job, limit: int) -> None:
        if job.state not in (JobState.PENDING, JobState.FAILED, JobState.CANCELLED):
            self.notify(f"cannot edit job {job.id}: it is {job.state.value}", severity="error")
            return
        try:
            edited = edit_in_terminal(self, job, limit)
        except SuspendNotSupported:  # a browser or a headless run: the editor in the app
            self.push_screen(EditScreen(job, limit, partial(self._write_edit, job)),
                             partial(self._edit_closed, job))  # fmt: skip
            return
        if edited.payload_json is None:
            self.notify(edited.note, severity="error" if edited.error else "information",
                        markup=False)  # fmt: skip
            return
        self._save_edit(job, edited)

    def _write_edit(self, job: Job, payload: str) -> None:
        # an edit's write, in a worker thread; raises JobqError when the queue refuses it
        with self._write_lock:
            if self._writer is None:
                self._writer = Queue(self.db_path, create=False)
            self._writer.edit(job.id, payload_json=payload, seen=job)

    def _edit_closed(self, job: Job, closed: Closed | None) -> None:
        if closed is not None and closed.written is not None:
            self.post_message(ActionDone(f"job {job.id}: payload saved"))
            if job.state in (JobState.FAILED, JobState.CANCELLED):
                self._offer_retry(job)
        elif closed is not None and closed.kept is not None:
            # plain text: the path is under $TMPDIR, which may hold markup's brackets
            self.notify(f"edit of job {job.id} cancelled, nothing written; your text is kept"
                        f" in {closed.kept}", severity="warning", timeout=30,
                        markup=False)  # fmt: skip
        else:
            self.notify(f"edit of job {job.id} cancelled, nothing written")

    def _save_edit(self, job: Job, edited: Edited) -> None:
        """Write the payload from $EDITOR if the job is as it was read (then offer a retry if it
        failed); if not, keep the editor's temp file and name it, as `jobq edit` does."""
        session, payload = edited.session, edited.payload_json
        assert payload is not None and session is not None  # only an edit to write gets here

        def run() -> None:
            try:
                self._write_edit(job, payload)
            except Exception as e:  # a refusal (JobqError) or a fault: the edit is kept either way
                why = str(e) if isinstance(e, JobqError) else f"not written: {e!r}"
                # plain text, shown for 30 s: the path is where the user's edit is
                self.call_from_thread(self.notify, f"edit: {why}; your edit is kept in "
                                      f"{session.keep()}", severity="error", timeout=30,
                                      markup=False)  # fmt: skip
                return
            finally:
                session.close()  # deletes the file unless it was kept
            self.call_from_thread(self._edit_closed, job, Closed(written=payload))

        self.run_worker(run, thread=True, group="actions", exit_on_error=False)

    def _offer_retry(self, job: Job) -> None:
        def go(yes: bool | None) -> None:
            if yes:
                self.post_message(Retry([job.id], confirm=False, what=job_text(job)))

        self.push_screen(ConfirmScreen(f"Retry {job_text(job)} with its new payload?"), go)

    def on_toggle_schedule(self, message: ToggleSchedule) -> None:
        """Pause a schedule, or resume it from its next slot."""
        name, paused = message.name, message.paused
        shown = escape(safe_line(name, 60))  # the summary is shown as markup: escape it

        def work(q: Queue) -> str:
            if not q.pause_schedule(name, not paused):
                return f"no schedule named {shown} any more"
            return f"schedule {shown} " + ("resumed" if paused else "paused")

        self.act("schedule", work)

    def on_bulk(self, message: Bulk) -> None:
        """Count the jobs matching the tab and filter, confirm with the count, then act."""
        if not self.allowed():
            return
        kind, tab, f, priority = message.kind, message.tab, message.filter, message.priority
        query = f.query(time.time())  # since:2h: the same jobs for the count and the action

        def count() -> None:
            with self._write_lock:
                if self._writer is None:
                    self._writer = Queue(self.db_path, create=False)
                n = self._writer.count(tab, **query)
            self.call_from_thread(ask, n)

        def ask(n: int) -> None:
            if n == 0:
                self.notify("no job matches", severity="warning")
                return
            verb = {"retry": "Retry", "cancel": "Cancel", "priority": "Set the priority of"}[kind]
            where = f" in the {TAB_TITLES.get(tab, tab)} tab"
            if f:
                where += f" matching {f.describe()}"
            extra = f" to {priority}" if priority is not None else ""
            self.act(kind, work, f"{verb} {_jobs(n)}{where}{extra}?")

        def work(q: Queue) -> str:
            ids = q.matching_ids(tab, **query)
            if kind == "retry":
                return summarize("retried", q.retry_many(ids))
            if kind == "cancel":
                return summarize("cancelled", q.cancel_many(ids))
            return summarize(f"priority {priority}", q.set_priority_many(ids, priority or 0))

        self.run_worker(count, thread=True, group="actions", exit_on_error=False)


def _jobs(n: int) -> str:
    return "1 job" if n == 1 else f"{n:,} jobs"


def summarize(ok: str, outcomes: dict[int, ActionOutcome]) -> str:
    """`retried 3 jobs; 2 skipped (running: 2)` from per-id outcomes."""
    done = [i for i, o in outcomes.items() if o.done]
    requested = sum(1 for o in outcomes.values() if o.result is ActionResult.CANCEL_REQUESTED)
    other: dict[str, int] = {}
    for o in outcomes.values():
        if not o.done:
            other[str(o)] = other.get(str(o), 0) + 1
    if len(outcomes) == 1 and done:
        job_id = done[0]
        return f"job {job_id}: " + ("cancel requested" if requested else ok)
    text = f"{ok} {_jobs(len(done))}"
    if requested:
        text += f" ({requested:,} running: asked their workers to stop)"
    if other:
        text += "; skipped " + ", ".join(f"{n:,} {o}" for o, n in sorted(other.items()))
    return text


def make_app(
    db_path: str | os.PathLike[str],
    *,
    read_only: bool = False,
    clock: Callable[[], float] = time.time,
    display_path: str | None = None,
    watch: bool = True,
) -> JobqApp:
    """Build the dashboard for the queue file at `db_path`.

    Refuses (raises the JobqError the CLI would) a file that is not a jobq queue file, a newer or
    damaged one, and a missing one when `read_only` (otherwise it creates it, as `jobq enqueue`
    would). `clock` gives "now" for countdowns and ages (tests freeze it); `display_path` is
    shown in the header instead of the real path (tests and screenshots use a fixed one).
    """
    path = os.fspath(db_path)
    with Queue(path, create=not read_only) as q:  # before any screen opens: one line, not a notice
        shown = q.location  # a password in a server URL masked
    return JobqApp(path, read_only=read_only, clock=clock, display_path=display_path or shown,
                   watch=watch)  # fmt: skip
