"""Editing a job's payload from the dashboard (`E`): in the user's editor with the app suspended,
as `jobq edit` does, or, where the app cannot suspend (a browser via `jobq tui --serve`, a
headless run), in a modal JSON editor with the same validation.

Either way the write is on the app's writer connection, compare-and-set against the job as it was
read (`Queue.edit(seen=…)`), and a refused write loses nothing: the $EDITOR temp file is kept and
named; the modal stays open with the reason and the text, and a cancel keeps typed text that was
never written in a private temp file named as `jobq edit` names its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea
from textual.worker import Worker, WorkerState

from jobq import (
    EditorSession,
    InvalidInput,
    Job,
    JobqError,
    payload_for_edit,
    payload_from_edit,
    safe_line,
)


@dataclass
class EditPayload(Message):
    """Edit the payload of job `job_id` (`E` on a list or in the detail view)."""

    job_id: int


@dataclass(frozen=True)
class Edited:
    """What the user's editor gave: a new payload (and the temp file holding it, kept if the
    write is refused), or why there is none."""

    payload_json: str | None
    session: EditorSession | None = None
    note: str = ""
    error: bool = False


def edit_in_terminal(app: App[None], job: Job, limit: int) -> Edited:
    """Run $VISUAL / $EDITOR on the job's payload with `app` suspended (the terminal is the
    editor's until it exits). Raises SuspendNotSupported before anything runs where the app
    cannot suspend."""
    session: EditorSession | None = None
    result: str | None = None
    failure: str | None = None
    with app.suspend():  # raises SuspendNotSupported on entry: then no temp file was made
        # nothing may escape this block: textual resumes the app only when it ends normally
        try:
            session = EditorSession(job.id, job.payload_json, limit)
            result = session.run(os.environ)
        except JobqError as e:
            failure = str(e)
        except OSError as e:  # the temp file cannot be written or read (a full $TMPDIR)
            failure = f"the temp file: {e}; nothing written"
        except KeyboardInterrupt:  # Ctrl-C in the editor reaches us too: a cancel
            result = None
    if session is None or failure is not None or result is None:
        if session is not None:
            session.close()
        if failure is not None:
            return Edited(None, note=f"edit of job {job.id}: {failure}", error=True)
        return Edited(None, note=f"edit of job {job.id} cancelled, nothing written")
    return Edited(result, session)


@dataclass(frozen=True)
class Closed:
    """How the in-app editor closed: the payload it wrote, or (a cancel) the file that keeps the
    operator's text that was never written (None when there was nothing to keep)."""

    written: str | None = None
    kept: str | None = None


class EditScreen(ModalScreen[Closed]):
    """A JSON editor for one job's payload; ctrl+s saves, escape cancels. An invalid payload, or
    a write the queue refuses (the job changed meanwhile, the queue is busy or unavailable),
    keeps the editor open with the reason shown and the text as typed; a cancel keeps typed text
    that was never written in a private temp file (`Closed.kept`). An empty or unchanged payload
    closes it like escape."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, job: Job, limit: int, write: Callable[[str], None]) -> None:
        """`write` writes a new canonical payload (on the app's writer connection, compare-and-
        set against `job`); it runs in a thread and raises JobqError when the write is
        refused."""
        super().__init__()
        self.job = job
        self.limit = limit
        self.write = write
        self.writing: str | None = None  # the payload being written, in a thread
        self.keep_failed = False  # the text could not be kept: a second escape discards it
        self.closed = False  # dismissed: the editor's outcome is known (see on_unmount)
        self.text = ""  # what the editor holds (its widget is gone by the time we unmount)
        self.kept_at_exit: str | None = None  # the file the text went to when the app quit

    def compose(self) -> ComposeResult:
        title = f"Payload of job {self.job.id} ({safe_line(self.job.type, 60)})"
        with Vertical(classes="dialog edit"):
            yield Static(Text(title, style="bold"), classes="question")
            yield _json_area(payload_for_edit(self.job.payload_json))
            yield Static(id="edit-error", classes="error")
            yield Static(Text.assemble(("ctrl+s", "bold"), " save    ", ("esc", "bold"),
                                       " cancel"), classes="hint")  # fmt: skip

    def on_mount(self) -> None:
        area = self.query_one("#edit-area", TextArea)
        self.text = area.text
        area.focus()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.text = event.text_area.text

    def show_error(self, text: str, then: str = "") -> None:
        """Show one line under the editor, `then` after it (plain text, never markup: it may
        quote the queue's strings)."""
        self.query_one("#edit-error", Static).update(Text(safe_line(text, 240) + then))

    def action_save(self) -> None:
        """Check the payload as `jobq enqueue` would, then write it; or show why not."""
        if self.writing is not None:  # one write at a time; its outcome decides what is next
            return
        text = self.query_one("#edit-area", TextArea).text
        try:
            new = payload_from_edit(text, self.limit, self.job.payload_json)
        except InvalidInput as e:
            self.show_error(str(e))
            return
        if new is None:  # empty or the same payload: nothing to write, nothing to keep
            self._close(Closed())
            return
        self.writing = new
        self.show_error("saving…")
        self.run_worker(partial(self.write, new), thread=True, group="edit-write",
                        exit_on_error=False)  # fmt: skip

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "edit-write" or self.writing is None:
            return
        if event.state is WorkerState.SUCCESS:
            self._close(Closed(written=self.writing))
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.writing = None
            error = event.worker.error
            why = str(error) if isinstance(error, JobqError) else f"not written: {error!r}"
            self.show_error(why, " (ctrl+s tries again; esc keeps your text in a file)")

    def action_cancel(self) -> None:
        """Close without writing; keep typed text that was never written in a private file."""
        if self.writing is not None:  # the write in flight decides: written, or refused and open
            return
        text = self.query_one("#edit-area", TextArea).text
        if self.keep_failed or not self._typed(text):
            self._close(Closed())
            return
        try:
            path = EditorSession.new_file(self.job.id, text)
        except (OSError, ValueError) as e:  # a full or read-only temp dir: the text stays here
            self.keep_failed = True
            self.show_error(f"cannot keep your text in a file: {e}", " (esc again discards it)")
            return
        self._close(Closed(kept=path))

    def _close(self, outcome: Closed) -> None:
        self.closed = True
        self.dismiss(outcome)

    def on_unmount(self) -> None:
        """The app quits with the editor open (ctrl+q, a closed browser tab): keep typed text
        that was never written, as a cancel would; `jobq tui` names the file once it exits."""
        if self.closed or not self._typed(self.text):
            return
        try:
            self.kept_at_exit = EditorSession.new_file(self.job.id, self.text)
        except (OSError, ValueError):
            return  # nowhere to keep it, and no screen left to say so
        kept = getattr(self.app, "kept_edits", None)
        if isinstance(kept, list):
            kept.append((self.job.id, self.kept_at_exit))

    def _typed(self, text: str) -> bool:
        # nothing typed (empty) or the payload as stored: nothing of the operator's to keep
        try:
            return payload_from_edit(text, self.limit, self.job.payload_json) is not None
        except InvalidInput:  # invalid or too big, but typed: kept all the same
            return True


def _json_area(text: str) -> TextArea:
    # language json: highlighted where tree-sitter is installed, plain text elsewhere; line
    # numbers, as the errors name lines
    return TextArea.code_editor(text, language="json", id="edit-area", soft_wrap=True)
