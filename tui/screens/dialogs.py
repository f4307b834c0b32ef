"""Small modal screens: confirm, prompt for a line of text, help, bulk actions."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; `y`/enter confirms, `n`/escape declines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question, style="bold"), classes="question")
            yield Static("[b]y[/b] yes    [b]n[/b] no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text; enter submits, escape cancels (None)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, hint: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.title_text, style="bold"), classes="question")
            yield Input(value=self.value, placeholder=self.hint, id="prompt-input")
            yield Static(Text(self.hint), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)


class BulkScreen(ModalScreen[str | None]):
    """Choose a bulk action over every job matching the current tab and filter."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "choose('retry')", "Retry all"),
        Binding("c", "choose('cancel')", "Cancel all"),
        Binding("p", "choose('priority')", "Set priority of all"),
        Binding("escape,q", "choose(None)", "Close"),
    ]

    def __init__(self, what: Text) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.what, classes="question")
            yield Static("[b]r[/b] retry all    [b]c[/b] cancel all    [b]p[/b] set priority"
                         " of all    [b]esc[/b] close", classes="hint")  # fmt: skip

    def action_choose(self, kind: str | None) -> None:
        """Close with the chosen action."""
        self.dismiss(kind)


HELP = """\
Lists: [b]1[/b]–[b]7[/b] or [b]←[/b]/[b]→[/b] switch tab · [b]↑↓ PgUp PgDn[/b] move (the next page
loads at the edges) · [b]Home[/b] first page · [b]enter[/b] details of the job (why it waits,
payload, attempts with tracebacks, output)

Filter ([b]/[/b]): [b]type:email.*[/b] (a glob) [b]queue:mail[/b] and free text, searched in
payload, type and last error. A bare word with [b]*[/b] is a type glob. [b]esc[/b] clears it.

Acting: [b]r[/b] retry (failed/cancelled) · [b]c[/b] cancel (pending; running ones are stopped)
· [b]+[/b]/[b]-[/b] priority ±10 (one level: low -10, normal 0, high 10, critical 20) · [b]p[/b]
set priority (a number or a name) · [b]P[/b] pause/resume the job's queue · [b]space[/b] mark
jobs: r/c/+/-/p then act on every marked job · [b]a[/b] act on ALL jobs of this tab matching
the filter (the count is shown before anything happens). In [b]Errors[/b], r retries a group.

[b]e[/b] error tail: the latest failed attempts, following new ones; enter opens the job.
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
