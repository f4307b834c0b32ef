"""jobq's own commands in Textual's command palette (ctrl+p).

Go to a job by id, switch tab, apply a filter (the filters used in this session, then presets
from what is on screen: the types and queues of the listed jobs), pause or resume a queue, retry
an error group. Actions go through the same messages as the keys, so they ask the same
questions and are refused the same way in read-only mode (where they are not offered at all).

Names from the queue file are untrusted: a hit is shown as plain `Content` (never markup; the
palette's own highlighter parses markup, so it is not used) after `safe_line`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from jobq import ErrorGroup, JobqError, Queue, group_errors, safe_line

from .data import ERROR_SAMPLE, TAB_TITLES, TABS, Filter
from .messages import TogglePause

if TYPE_CHECKING:
    from .app import JobqApp
    from .screens.main import MainScreen

JOB_ID = re.compile(r"^\s*(?:job\s*|#)?(\d{1,18})\s*$", re.IGNORECASE)
QUEUE_VERB = re.compile(r"^\s*(pause|resume)\s+(?:queue\s+)?(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    """One palette entry: what it says, what it does, a line of help."""

    text: str
    run: Callable[[], object]
    help: str


class JobqCommands(Provider):
    """The dashboard's commands (see the module docstring)."""

    groups: list[ErrorGroup]

    async def startup(self) -> None:
        self.groups = []
        if not self.jobq.read_only:
            # the latest failures, grouped as the Errors tab does: one short indexed read
            self.groups = await asyncio.to_thread(_load_groups, self.jobq.db_path)

    @property
    def jobq(self) -> JobqApp:
        """The dashboard app."""
        return cast("JobqApp", self.app)

    @property
    def main(self) -> MainScreen:
        """The main screen (its tabs, filter and snapshot)."""
        return self.jobq.main

    async def discover(self) -> Hits:
        for c in self.commands():
            yield DiscoveryHit(Content(c.text), c.run, text=c.text, help=c.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for c in self.typed(query):
            yield Hit(1.0, Content(c.text), c.run, text=c.text, help=c.help)
        for c in self.commands():
            score = matcher.match(c.text)
            if score > 0:
                yield Hit(score, _highlight(matcher, c.text), c.run, text=c.text, help=c.help)

    # ---- the commands ----------------------------------------------------------------------

    def typed(self, query: str) -> Iterator[Command]:
        """Commands read from the query itself: a job id, or `pause NAME` / `resume NAME`."""
        m = JOB_ID.match(query)
        if m:
            job_id = int(m.group(1))
            yield Command(f"Go to job {job_id}", partial(self.main.open_job, job_id),
                          "open its detail: payload, attempts, why it waits")  # fmt: skip
        m = QUEUE_VERB.match(query)
        if m and not self.jobq.read_only:
            verb, name = m.group(1).lower(), m.group(2)
            yield self._queue_command(name, paused=verb == "resume")

    def commands(self) -> Iterator[Command]:
        """Every command the palette offers without typing."""
        main = self.main
        for i, tab in enumerate(TABS):
            yield Command(f"Tab: {TAB_TITLES[tab]}", partial(main.action_tab, i),
                          f"switch to the {TAB_TITLES[tab]} list (key {i + 1})")  # fmt: skip
        yield Command("View: Metrics", main.action_metrics,
                      "charts of the last hour and day (key m)")  # fmt: skip
        yield Command("View: Schedules", self.jobq.action_schedules,
                      "cron schedules, their next runs and last jobs (key s)")  # fmt: skip
        if main.filter:
            now = safe_line(main.filter.describe(), 60)
            yield Command("Filter: clear", partial(main.set_filter, Filter()),
                          f"show every job again (now: {now})")  # fmt: skip
        for f in self.filter_presets():
            text = safe_line(f.describe(), 80)
            yield Command(f"Filter: {text}", partial(main.set_filter, f),
                          "narrow the lists (/ types a filter)")  # fmt: skip
        if self.jobq.read_only:
            return
        paused = set(main.snapshot.header.paused) if main.snapshot else set()
        for name in self.known_queues():
            yield self._queue_command(name, paused=name in paused)
        for g in self.groups:
            n = len(g.job_ids)
            text = (f"Retry error group: {safe_line(g.type, 40)}: {safe_line(g.error, 60)}"
                    f" ({n:,} job{'s' if n != 1 else ''})")  # fmt: skip
            yield Command(text, partial(main.retry_group, g),
                          "retry every job of this group (asks first)")  # fmt: skip

    def _queue_command(self, name: str, paused: bool) -> Command:
        shown = safe_line(name, 60)
        if paused:
            return Command(f"Resume queue {shown}",
                           partial(self.jobq.post_message, TogglePause(name, True)),
                           "workers claim from it again")  # fmt: skip
        return Command(f"Pause queue {shown}",
                       partial(self.jobq.post_message, TogglePause(name, False)),
                       "workers claim nothing from it until resumed")  # fmt: skip

    def filter_presets(self) -> list[Filter]:
        """The filters used in this session (latest first), then one per type and per queue of
        the jobs on screen."""
        main = self.main
        out: list[Filter] = [f for f in reversed(main.filters_used) if f != main.filter]
        jobs = main.snapshot.jobs if main.snapshot else []
        out += [Filter(type_glob=t) for t in sorted({j.type for j in jobs})]
        out += [Filter(queue=q) for q in sorted({j.queue for j in jobs})]
        return list(dict.fromkeys(out))  # without repeats, in order

    def known_queues(self) -> list[str]:
        """Queues the dashboard knows of without a scan: paused ones, the listed jobs', and the
        ones live pools serve (any other: type `pause NAME`)."""
        snap = self.main.snapshot
        if snap is None:
            return []
        names = {*snap.header.paused, *(j.queue for j in snap.jobs)}
        for w in snap.workers:
            names.update(w.queues)
        return sorted(names)


def _highlight(matcher: Matcher, text: str) -> Content:
    """`text` as plain content with the matched characters underlined (Matcher.highlight would
    parse `text` as markup)."""
    content = Content(text)
    _score, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for offset in offsets:
        content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def _load_groups(db_path: str) -> list[ErrorGroup]:
    try:
        with Queue(db_path, create=False) as q:
            return group_errors(q.errors(limit=ERROR_SAMPLE))
    except JobqError:
        return []  # the dashboard already says what is wrong with the file
