"""The dashboard follows changes made by other processes, without a key press."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobq import Queue
from tui.app import make_app
from tui.screenshots import SIZE, first_load

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_enqueue_from_another_process_appears_and_selection_stays(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    with Queue(path) as q:
        q.enqueue_many([("first", {"n": i}) for i in range(5)])
    app = make_app(path)  # watching the WAL, fallback timer at its default (2 s)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("down", "down")
        chosen = app.main.table.selected_key
        loads = app.loads
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        code = ("import sys, jobq; q = jobq.Queue(sys.argv[1]);"
                " q.enqueue('from.elsewhere', {'x': 1}, priority='high')")  # fmt: skip
        subprocess.run([sys.executable, "-c", code, path], check=True, env=env, timeout=30)
        for _ in range(300):  # well under the 2 s fallback: the WAL watch woke the loader
            snap = app.main.snapshot
            if snap is not None and any(j.type == "from.elsewhere" for j in snap.jobs):
                break
            await pilot.pause(0.005)
        else:
            pytest.fail("the list did not follow the other process's enqueue")
        assert app.loads > loads
        assert app.main.snapshot.jobs[0].type == "from.elsewhere"  # type: ignore[union-attr]
        await pilot.pause()
        assert app.main.table.selected_key == chosen  # the selection survived the refresh
        assert app.main.snapshot.header.counts["pending"] == 6  # type: ignore[union-attr]
