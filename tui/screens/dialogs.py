"""Small modal screens: confirm, prompt for a line of text, help, bulk actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from jobq import safe_line


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question naming what it acts on; only `y` confirms.

    Enter does not answer: it is the key most likely to arrive by accident (the end of a line
    typed into a prompt that has closed), and every question here is about changing jobs.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        Binding("enter", "enter", "", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(safe_line(self.question, 300), style="bold"), classes="question")
            yield Static(Text.assemble(("y", "bold"), " yes    ", ("n", "bold"), "/",
                                       ("esc", "bold"), " no"), classes="hint")  # fmt: skip
            yield Static(id="confirm-note", classes="note")

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)

    def action_enter(self) -> None:
        """Say how to answer: enter alone never confirms."""
        self.query_one("#confirm-note", Static).update(Text("press y to confirm, n to keep"))


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text; enter submits, escape cancels (None).

    With `check`, a value it rejects (it returns the reason) keeps the prompt open with the
    reason shown and the text selected, so whatever is typed next replaces it here instead of
    reaching the list below as keys.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        hint: str,
        value: str = "",
        check: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.value = value
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="question")
            yield Input(value=self.value, placeholder=self.hint, id="prompt-input")
            yield Static(id="prompt-error", classes="error")
            yield Static(Text(self.hint), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        error = self.check(event.value) if self.check is not None else None
        if error is None:
            self.dismiss(event.value)
            return
        self.query_one("#prompt-error", Static).update(Text(safe_line(error, 300)))
        self.query_one("#prompt-input", Input).select_all()

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)


BULK_LABELS = {"retry": "retry all", "cancel": "cancel all", "priority": "set priority of all"}
BULK_KEYS = {"retry": "r", "cancel": "c", "priority": "p"}


class BulkScreen(ModalScreen[str | None]):
    """Choose a bulk action over every job matching the current tab and filter, among `kinds`
    (only the actions that can change a job of that tab)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "choose('retry')", "Retry all"),
        Binding("c", "choose('cancel')", "Cancel all"),
        Binding("p", "choose('priority')", "Set priority of all"),
        Binding("escape,q", "choose(None)", "Close"),
    ]

    def __init__(self, what: Text, kinds: tuple[str, ...]) -> None:
        super().__init__()
        self.what = what
        self.kinds = kinds

    def compose(self) -> ComposeResult:
        hint = Text()
        for kind in self.kinds:
            hint.append(BULK_KEYS[kind], style="bold")
            hint.append(f" {BULK_LABELS[kind]}    ")
        hint.append("esc", style="bold")
        hint.append(" close")
        with Vertical(classes="dialog"):
            yield Static(self.what, classes="question")
            yield Static(hint, classes="hint")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose" and parameters and parameters[0] is not None:
            return parameters[0] in self.kinds
        return True

    def action_choose(self, kind: str | None) -> None:
        """Close with the chosen action."""
        self.dismiss(kind)


HELP = """\
Lists: [b]1[/b]–[b]7[/b] or [b]←[/b]/[b]→[/b] switch tab · [b]↑↓ PgUp PgDn[/b] move (the next page
loads at the edges) · [b]Home[/b] first page · [b]enter[/b] details of the job (why it waits,
payload, attempts with tracebacks, output)

Filter ([b]/[/b]): [b]type:email.*[/b] (a glob) [b]queue:mail[/b], payload fields
[b]payload.user.id:42[/b] [b]payload.n:>9[/b] [b]payload.kind:!=test[/b] (= != < <= > >=; a
missing field matches only !=), enqueued [b]since:2h[/b] [b]until:30m[/b] (or an ISO time), and
free text, searched in payload, type and last error. A bare word with [b]*[/b] is a type glob.
[b]esc[/b] clears it.

Acting: [b]r[/b] retry (failed/cancelled) · [b]c[/b] cancel (pending; running ones are stopped)
· [b]+[/b]/[b]-[/b] priority ±10 (one level: low -10, normal 0, high 10, critical 20) · [b]p[/b]
set priority (a number or a name) · [b]P[/b] pause/resume the job's queue · [b]space[/b] mark
jobs: r/c/+/-/p then act on every marked job · [b]a[/b] act on ALL jobs of this tab matching
the filter (the count is shown before anything happens). In [b]Errors[/b], r retries a group.
[b]E[/b] edits the selected job's payload (pending, failed or cancelled) in $VISUAL/$EDITOR, or in
the app where it cannot leave the terminal (a browser): ctrl+s saves, esc cancels (text that was
not saved is kept in a private file it names); after an edit of a failed or cancelled job, y
retries it.

[b]e[/b] error tail: the latest failed attempts, following new ones; enter opens the job.
[b]ctrl+p[/b] command palette: go to a job by id (type its number), switch tab, apply a filter
used before or one of the listed types and queues, pause/resume a queue, retry an error group.
Read-only mode ([b]--read-only[/b]) refuses every action.
"""


class HelpScreen(ModalScreen[None]):
    """Every key and what it does."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Text()
        for key, description in self.keys:
            table.append(f"{key:>8}  ", style="bold")
            table.append(f"{description}\n")
        with VerticalScroll(classes="dialog help"):
            yield Static(Text("jobq dashboard — keys", style="bold"))
            yield Static(table)
            yield Static(HELP)
            yield Static("[dim]esc to close[/dim]")

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
