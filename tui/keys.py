"""Key bindings that act on the queue, marked where they are declared.

A binding made with `acting(...)` changes the queue file (or, like `space`, only selects jobs
for such a change). Read-only mode refuses exactly these: the screens disable their actions and
the app binds their keys to a refusal notice, both sets derived from the declarations, so a new
action key cannot be left out of read-only mode by forgetting a second list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding, BindingType

from jobq import PRIORITY_NAMES, InvalidInput

PRIORITY_STEP = 10  # one named level: low -10, normal 0, high 10, critical 20


@dataclass(frozen=True)
class ActingBinding(Binding):
    """A binding whose action changes the queue: refused in read-only mode."""


def acting(
    key: str,
    action: str,
    description: str = "",
    *,
    show: bool = True,
    key_display: str | None = None,
) -> ActingBinding:
    """Declare a key that acts on the queue (see the module docstring)."""
    return ActingBinding(key, action, description, show=show, key_display=key_display)


def acting_actions(bindings: Iterable[BindingType]) -> frozenset[str]:
    """The action names of the acting bindings among `bindings`."""
    return frozenset(b.action for b in bindings if isinstance(b, ActingBinding))


def acting_keys(bindings: Iterable[BindingType]) -> list[str]:
    """Every key of the acting bindings among `bindings` (compound keys split), sorted."""
    keys = {k.strip() for b in bindings if isinstance(b, ActingBinding) for k in b.key.split(",")}
    return sorted(keys)


def job_bindings(footer: bool) -> list[BindingType]:
    """The keys that act on jobs; `footer`: show +, -, P and E in the footer too (the main
    screen's footer has no room for them at 80 columns: `?` help lists them)."""
    return [
        acting("r", "retry", "Retry"),
        acting("c", "cancel", "Cancel"),
        acting("plus,equals_sign", "priority_up", "Prio+", key_display="+", show=footer),
        acting("minus", "priority_down", "Prio-", key_display="-", show=footer),
        acting("p", "set_priority", "Priority…"),
        acting("P", "pause", "Pause queue", key_display="P", show=footer),
        acting("E", "edit_payload", "Edit", key_display="E", show=footer),
    ]


JOB_BINDINGS = job_bindings(footer=False)


def parse_priority(value: int | str) -> int:
    """An integer, or a name: low, normal, high, critical (raises InvalidInput)."""
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    if text in PRIORITY_NAMES:
        return PRIORITY_NAMES[text]
    try:
        return int(text)
    except ValueError:
        names = ", ".join(PRIORITY_NAMES)
        raise InvalidInput(f"priority must be an integer or one of {names}") from None


def priority_error(text: str) -> str | None:
    """Why `text` is not a priority (None if it is): the check of every priority prompt."""
    try:
        parse_priority(text)
    except InvalidInput as e:
        return str(e)
    return None


# what `a` offers in each tab: only actions that can change a job there (retry takes failed and
# cancelled jobs, cancel pending and running ones; a priority matters only before a job runs)
BULK_KINDS: dict[str, tuple[str, ...]] = {
    "pending": ("cancel", "priority"),
    "running": ("cancel",),
    "failed": ("retry",),
    "cancelled": ("retry",),
}
PRIORITY_HINT = "a number, or low / normal / high / critical"
