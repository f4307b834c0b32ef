"""`jobq tui --read-only` can act on nothing: every action key, everywhere, changes no byte."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobq.store import Store
from tests.conftest import SLOW

# Every key that acts, each followed by what a confirmation or prompt would accept; escape then
# closes whatever is left open. Run on every tab, in the detail view and in the error tail.
SEQUENCES = [["r", "y"], ["c", "y"], ["c", "enter"], ["plus"], ["equals_sign"], ["minus"],
             ["p", "5", "enter"], ["P", "y"], ["space"], ["a", "r", "y"], ["a", "c", "y"],
             ["a", "p", "5", "enter"]]  # fmt: skip


def _dump(path: str) -> list[tuple[object, ...]]:
    """Every row of every table, in a stable order (what "nothing changed" means)."""
    import sqlite3  # tests may; only jobq/ may not

    conn = sqlite3.connect(path)
    try:
        out: list[tuple[object, ...]] = []
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            out += [(name, *r) for r in conn.execute(f"SELECT * FROM [{name}] ORDER BY 1")]
        return out
    finally:
        conn.close()


def _seed_every_state(path: str) -> None:
    from tests.factories import make_job

    store = Store(path)
    now = time.time()
    store.register_worker("pool-a", name="a", host="h", pid=1, concurrency=1, queues=[],
                          types=[], now=now)  # fmt: skip
    for state in ("pending", "running", "failed", "succeeded", "cancelled"):
        for _ in range(2):
            make_job(store, state, now=now, worker="pool-a/1")
    store.close()


async def _press_everything(app, pilot, tabs: tuple[str, ...]) -> None:
    from tui.data import JOB_TABS, TABS

    async def every_sequence() -> None:
        for seq in SEQUENCES:
            await pilot.press(*seq, "escape")
            while len(app.screen_stack) > depth:
                app.pop_screen()

    for i, tab in enumerate(TABS):
        if tab not in tabs:
            continue
        await pilot.press(str(i + 1))
        depth = len(app.screen_stack)
        await every_sequence()
        if tab in JOB_TABS:
            await pilot.press("enter")  # the detail view of the selected job
            depth = len(app.screen_stack)
            await every_sequence()
            while len(app.screen_stack) > 2:
                app.pop_screen()
    await pilot.press("e")  # the error tail and its retry
    await pilot.press("r", "y", "enter", "y")
    await pilot.pause()  # the last key's handler has run, and started its action if it has one
    await app.workers.wait_for_complete([w for w in app.workers if w.group == "actions"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "control"])
def test_read_only_dashboard_acts_on_nothing(tmp_path: Path, read_only: bool):
    """Read-only: every action key on every tab, detail view and error tail changes nothing.
    The control run (not read-only) proves the same keys do change the file."""
    import asyncio

    pytest.importorskip("textual")
    from tui.app import make_app
    from tui.data import TABS

    # pending, failed (retry/cancel targets) and the error groups by default; every tab when slow
    tabs = TABS if SLOW and read_only else ("pending", "failed", "errors")
    if not read_only:
        tabs = ("pending",)
    path = str(tmp_path / "q.db")
    _seed_every_state(path)
    before = _dump(path)

    async def run() -> None:
        app = make_app(path, read_only=read_only, watch=False)
        async with app.run_test(size=(160, 50)) as pilot:
            t0 = time.monotonic()
            while app.loads == 0:  # the keys act on the first page's selected job
                await pilot.pause(0.02)
                assert time.monotonic() - t0 < 30, "no first page within 30 s"
            await _press_everything(app, pilot, tabs)
            if read_only:
                assert app._writer is None, "read-only app opened a writer connection"

    asyncio.run(run())
    after = _dump(path)
    if read_only:
        assert after == before
    else:
        assert after != before, "the control run changed nothing: the keys tested nothing"
