"""Editing a job's payload from the dashboard (`E`): in the user's editor with the app suspended,
as `jobq edit` does, or, where the app cannot suspend (a browser via `jobq tui --serve`, a
headless run), in a modal JSON editor with the same validation.

The new payload goes back to the app (a message, or the modal's result), which writes it on its
writer connection, compare-and-set against the job as it was read (`Queue.edit(seen=…)`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

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
    session = EditorSession(job.id, job.payload_json, limit)
    result: str | None = None
    failure: str | None = None
    try:
        with app.suspend():
            # nothing may escape this block: textual resumes the app only when it ends normally
            try:
                result = session.run(os.environ)
            except JobqError as e:
                failure = str(e)
            except KeyboardInterrupt:  # Ctrl-C in the editor reaches us too: a cancel
                result = None
    except SuspendNotSupported:
        session.close()
        raise
    if failure is not None or result is None:
        session.close()
        if failure is not None:
            return Edited(None, note=f"edit of job {job.id}: {failure}", error=True)
        return Edited(None, note=f"edit of job {job.id} cancelled, nothing written")
    return Edited(result, session)


class EditScreen(ModalScreen[str | None]):
    """A JSON editor for one job's payload; ctrl+s saves (the new canonical payload), escape
    cancels (None). An invalid payload keeps the editor open with the error shown; an empty or
    unchanged one closes it like escape."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, job: Job, limit: int) -> None:
        super().__init__()
        self.job = job
        self.limit = limit

    def compose(self) -> ComposeResult:
        title = f"Payload of job {self.job.id} ({safe_line(self.job.type, 60)})"
        with Vertical(classes="dialog edit"):
            yield Static(Text(title, style="bold"), classes="question")
            yield _json_area(payload_for_edit(self.job.payload_json))
            yield Static(id="edit-error", classes="error")
            yield Static(Text.assemble(("ctrl+s", "bold"), " save    ", ("esc", "bold"),
                                       " cancel"), classes="hint")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#edit-area", TextArea).focus()

    def action_save(self) -> None:
        """Check the payload as `jobq enqueue` would; close with it, or show why not."""
        text = self.query_one("#edit-area", TextArea).text
        try:
            new = payload_from_edit(text, self.limit, self.job.payload_json)
        except InvalidInput as e:
            self.query_one("#edit-error", Static).update(Text(safe_line(str(e), 300)))
            return
        self.dismiss(new)

    def action_cancel(self) -> None:
        """Close without writing anything."""
        self.dismiss(None)


def _json_area(text: str) -> TextArea:
    # language json: highlighted where tree-sitter is installed, plain text elsewhere; line
    # numbers, as the errors name lines
    return TextArea.code_editor(text, language="json", id="edit-area", soft_wrap=True)
