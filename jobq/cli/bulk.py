"""Bulk actions by filter: `jobq retry|cancel|priority` given `ls`'s filters instead of ids.

The selection is every job that matches the filters and is in a state the action applies to
(retry: failed, cancelled; cancel: pending, running; priority: pending), read once at the start.
It is then acted on `BATCH` jobs per transaction, in id order, with the same store actions as
`jobq retry ID…` (one lifecycle, no second copy): a huge selection never holds the queue's write
lock for long, so workers go on claiming in between, and a job whose state changed after the
selection (a worker claimed it, another operator acted) is skipped by the store's own state
check and reported. A bulk action is therefore not one transaction: if it is interrupted, the
batches already done stay done.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..errors import InvalidInput
from .common import _note, _out

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..backend import ActionOutcome
    from ..queue import Queue
    from ..where import Condition

BATCH = 500  # jobs per write transaction
FIRST = 10  # ids a --dry-run shows
STATES = {
    "retry": ("failed", "cancelled"),
    "cancel": ("pending", "running", "scheduled", "retrying"),
    "priority": ("pending", "scheduled", "retrying"),
}
# without --state: the real states, each read once (the views are parts of pending)
DEFAULT_STATES = {"retry": ("failed", "cancelled"), "cancel": ("pending", "running"),
                  "priority": ("pending",)}  # fmt: skip
VERBS = {"retry": "retry", "cancel": "cancel", "priority": "reprioritise"}
FILTER_FLAGS = "--state, --type, --queue, --search, --where, --since or --until"


@dataclass(frozen=True, slots=True)
class Filters:
    """`ls`'s filters, parsed: what a bulk action selects besides the states it applies to."""

    state: str | None = None
    type: str | None = None
    queue: str | None = None
    search: str | None = None
    where: tuple[Condition, ...] = ()
    since: float | None = None
    until: float | None = None

    def given(self) -> bool:
        """Whether any filter was given (a bulk action refuses to run without one)."""
        return any(x is not None for x in (self.state, self.type, self.queue, self.search,
                                           self.since, self.until)) or bool(self.where)  # fmt: skip

    def query(self) -> dict[str, object]:
        """Keyword arguments of `Queue.list/count/matching_ids`, the state left out."""
        return {"type": self.type, "queue": self.queue, "search": self.search,
                "where": self.where, "since": self.since, "until": self.until}  # fmt: skip


def read_filters(
    state: str | None,
    type_: str | None,
    queue: str | None,
    search: str | None,
    where: Sequence[str] | None,
    since: str | None,
    until: str | None,
    now: float,
) -> Filters:
    """Parse the command line's filters (InvalidInput, exit 2, for a bad one)."""
    from ..queue import validate_state
    from ..where import parse_conditions, parse_time

    return Filters(
        validate_state(state), type_, queue, search, parse_conditions(where),
        None if since is None else parse_time(since, now, "--since"),
        None if until is None else parse_time(until, now, "--until"),
    )  # fmt: skip


def select(q: Queue, action: str, f: Filters) -> list[int]:
    """Ids of the jobs matching `f` in a state `action` applies to, in id order."""
    allowed = STATES[action]
    if f.state is not None and f.state not in allowed:
        raise InvalidInput(
            f"{action} acts on {' or '.join(DEFAULT_STATES[action])} jobs, not --state {f.state}"
        )
    states = (f.state,) if f.state is not None else DEFAULT_STATES[action]
    found: set[int] = set()
    for s in states:
        found.update(q.matching_ids(s, **f.query()))  # type: ignore[arg-type]
    return sorted(found)


_SKIPPED = {"not found": "deleted meanwhile", "duplicate unique key": "unique key held"}


def run(
    q: Queue,
    action: str,
    f: Filters,
    act: Callable[[Sequence[int]], dict[int, ActionOutcome]],
    *,
    dry_run: bool,
    what: str = "",
) -> None:
    """Select, then act in batches (or, with `dry_run`, print the count and the first ids)."""
    ids = select(q, action, f)
    plural = "job" if len(ids) == 1 else "jobs"
    if dry_run:
        head = " ".join(str(i) for i in ids[:FIRST])
        more = " …" if len(ids) > FIRST else ""
        _out(
            f"would {VERBS[action]} {len(ids)} {plural}{what}" + (f": {head}{more}" if ids else "")
        )
        return
    done: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for start in range(0, len(ids), BATCH):
        for outcome in act(ids[start : start + BATCH]).values():
            word = str(outcome)
            if outcome.done:
                done[word] += 1
            else:
                skipped[_SKIPPED.get(word, f"now {word}")] += 1
    _out(_summary(action, done, what))
    if skipped:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
        _note(f"skipped {sum(skipped.values())} (changed since the selection: {reasons})")


def _summary(action: str, done: Counter[str], what: str) -> str:
    def jobs(n: int) -> str:
        return f"{n} job" if n == 1 else f"{n} jobs"

    if action == "retry":
        return f"retried {jobs(done['retried'])}"
    if action == "cancel":
        line = f"cancelled {jobs(done['cancelled'])}"
        if done["cancel requested"]:
            line += f"; asked the pools to stop {done['cancel requested']} running"
        return line
    return f"reprioritised {jobs(done['ok'])}{what}"
