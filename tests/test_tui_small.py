"""Usable at 80x24: every tab reachable and labelled, the footer fits, help scrolls (and
snapshots of the screens at that size)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.containers import VerticalScroll
from textual.widgets._footer import FooterKey

from devtools.screenshots import first_load, seeded_app, settle
from tests.test_tui_actions import until
from tui.app import JobqApp
from tui.data import TAB_TITLES, TABS
from tui.screens.detail import DetailScreen
from tui.screens.dialogs import HelpScreen
from tui.screens.tail import TailScreen

pytestmark = pytest.mark.anyio
SMALL = (80, 24)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(tmp_path: Path) -> JobqApp:
    return seeded_app(str(tmp_path / "q.db"))


async def test_every_tab_is_labelled_and_reachable_at_80x24(app: JobqApp) -> None:
    async with app.run_test(size=SMALL) as pilot:
        await first_load(pilot)
        line = str(app.main.query_one("#tabs").render())
        assert len(line.rstrip()) <= SMALL[0] - 2
        for i, tab in enumerate(TABS):
            assert f"{i + 1} {TAB_TITLES[tab]}" in line, line
        for i, tab in enumerate(TABS):
            await pilot.press(str(i + 1))
            await until(pilot, lambda t=tab: app.main.snapshot.request.tab == t)  # type: ignore[union-attr,misc]
        await pilot.press("right")  # from Errors round to Pending
        await until(pilot, lambda: app.main.snapshot.request.tab == "pending")  # type: ignore[union-attr]


def footer_overflow(app: JobqApp) -> list[str]:
    """The footer keys of the current screen that are not wholly on screen."""
    width = app.size.width
    keys = list(app.screen.query(FooterKey))
    assert keys, "no footer"
    return [f"{k.key_display or k.key} {k.description}" for k in keys
            if k.region.width == 0 or k.region.right > width]  # fmt: skip


async def test_the_footer_fits_at_80x24(app: JobqApp) -> None:
    async with app.run_test(size=SMALL) as pilot:
        await first_load(pilot)
        await pilot.pause(0.1)
        assert footer_overflow(app) == []
        descriptions = {k.description for k in app.screen.query(FooterKey)}
        assert {"Help", "Quit", "Retry", "Cancel", "Filter"} <= descriptions
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
        await pilot.pause(0.1)
        assert footer_overflow(app) == []
        await pilot.press("escape", "e")
        await until(pilot, lambda: isinstance(app.screen, TailScreen) and app.screen.snapshot)
        await pilot.pause(0.1)
        assert footer_overflow(app) == []


async def test_help_fits_and_scrolls_at_80x24(app: JobqApp) -> None:
    async with app.run_test(size=SMALL) as pilot:
        await first_load(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause(0.1)
        scroll = app.screen.query_one(VerticalScroll)
        assert scroll.region.right <= SMALL[0], "the help is wider than the screen"
        assert scroll.max_scroll_y > 0
        await pilot.press("end")
        await pilot.pause(0.1)
        assert scroll.scroll_y == scroll.max_scroll_y > 0
        await pilot.press("escape")
        assert app.screen is app.main


async def _at(pilot: object, keys: tuple[str, ...]) -> None:
    await first_load(pilot)  # type: ignore[arg-type]
    for key in keys:
        await pilot.press(key)  # type: ignore[attr-defined]
        await settle(pilot)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "keys",
    [(), ("question_mark",), ("3",), ("3", "enter"), ("6",), ("e",)],
    ids=["pending", "help", "failed", "detail", "workers", "errors-tail"],
)
def test_small_screens(keys: tuple[str, ...], snap_compare: Callable[..., bool],
                       tmp_path: Path) -> None:  # fmt: skip
    app = seeded_app(str(tmp_path / "q.db"))

    async def run_before(pilot: object) -> None:
        await _at(pilot, keys)

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


@pytest.mark.parametrize("theme", ["textual-light", "ansi-dark"])
def test_small_pending_in_other_themes(theme: str, snap_compare: Callable[..., bool],
                                       tmp_path: Path) -> None:  # fmt: skip
    """A light theme and an ANSI one: the lists take their colours from the theme."""
    app = seeded_app(str(tmp_path / "q.db"))
    app.theme = theme
    assert snap_compare(app, terminal_size=SMALL, run_before=first_load)
