"""`E` in the dashboard: Pilot tests of the in-app payload editor (what a browser gets: a headless
app cannot suspend, as a served one cannot), and real `jobq tui`s in tmux where `E` suspends the
app for a real editor program: the dashboard comes back with the new payload, or, when the write
is refused, names the temp file that keeps the edit. A refused write never loses typed text."""

from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.widgets import Static, TextArea

from devtools.screenshots import DISPLAY_PATH, SIZE, first_load, frozen_clock, seeded_app, settle
from jobq import JobState, Queue
from jobq.backend import ClaimFilter
from tests.conftest import ROOT
from tests.helpers import wait_until
from tests.test_tui_actions import until
from tui.app import JobqApp, make_app
from tui.screens.detail import DetailScreen, render_detail
from tui.screens.dialogs import ConfirmScreen
from tui.screens.edit import EditScreen

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(tmp_path: Path) -> JobqApp:
    return seeded_app(str(tmp_path / "q.db"))


@pytest.fixture
def tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's temp files go (as $TMPDIR would send them; brackets, as markup has)."""
    d = tmp_path / "tmp[b]"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def notes(app: JobqApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def kept_files(d: Path) -> list[Path]:
    return sorted(d.glob("jobq-edit-*.json"))


def assert_kept(app: JobqApp, d: Path, job_id: int, text: str) -> None:
    """One private file in `d` holds exactly `text`, and a notification names it."""
    (kept,) = kept_files(d)
    assert kept.name.startswith(f"jobq-edit-{job_id}-")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_text(encoding="utf-8") == text
    assert (f"edit of job {job_id} cancelled, nothing written; your text is kept in {kept}"
            in notes(app))  # fmt: skip


def error_line(app: JobqApp) -> str:
    """The line under the in-app editor ("" when it is not open)."""
    if not isinstance(app.screen, EditScreen):
        return ""
    return str(app.screen.query_one("#edit-error", Static).render())


async def open_editor(app: JobqApp, pilot: object, tab: str = "3") -> int:
    """Select the first job of `tab` (Failed by default), press E, wait for the modal."""
    await first_load(pilot)  # type: ignore[arg-type]
    await pilot.press(tab)  # type: ignore[attr-defined]
    await settle(pilot)  # type: ignore[arg-type]
    job = app.main.selected_job()
    assert job is not None
    await pilot.press("E")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, EditScreen), "the edit modal")
    return job.id


async def test_valid_edit_of_a_failed_job_is_saved_then_retried(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        job_id = await open_editor(app, pilot)
        with Queue(app.db_path) as q:
            before = q.get(job_id)
        assert before.state is JobState.FAILED
        area = app.screen.query_one(TextArea)
        # pretty-printed as `jobq edit` gives it to $EDITOR, reading back as the stored JSON
        assert area.text == json.dumps(before.payload, indent=2, ensure_ascii=False) + "\n"
        area.load_text('{"path": "uploads/small.png"}')
        await pilot.press("ctrl+s")
        # saved; then, as the job failed, a retry is offered
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the retry question")
        with Queue(app.db_path) as q:
            job = q.get(job_id)
            assert (job.payload_json, job.state) == ('{"path":"uploads/small.png"}',
                                                     JobState.FAILED)  # fmt: skip
            (edit,) = q.edits(job_id)
            assert edit.old_payload_json == before.payload_json
        await pilot.press("y")

        def retried() -> bool:
            with Queue(app.db_path) as q:
                return q.get(job_id).state is JobState.PENDING

        await until(pilot, retried, "the job retried")


async def test_invalid_edit_keeps_the_modal_open_with_the_error(
    app: JobqApp, tmp_dir: Path
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        job_id = await open_editor(app, pilot)
        with Queue(app.db_path) as q:
            before = q.get(job_id).payload_json
        app.screen.query_one(TextArea).load_text('{"a": 1,,}')
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)
        error = str(app.screen.query_one("#edit-error", Static).render())
        assert error.startswith("invalid JSON payload: ")
        # keys typed now go to the editor, not to the list below
        await pilot.press("r")
        assert isinstance(app.screen, EditScreen)
        app.screen.query_one(TextArea).load_text('{"a": NaN}')
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "NaN" in str(app.screen.query_one("#edit-error", Static).render())
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, EditScreen))
        with Queue(app.db_path) as q:
            assert (q.get(job_id).payload_json, q.edits(job_id)) == (before, [])
        # nothing written, but what was typed is not lost
        assert_kept(app, tmp_dir, job_id, '{"a": NaN}')


@pytest.mark.parametrize("how", ["escape", "unchanged", "emptied"])
async def test_escape_unchanged_or_emptied_writes_nothing(
    app: JobqApp, how: str, tmp_dir: Path
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        job_id = await open_editor(app, pilot, tab="1")  # a pending job: no retry question
        with Queue(app.db_path) as q:
            before = q.get(job_id).payload_json
        if how == "emptied":
            app.screen.query_one(TextArea).load_text("  \n")
        await pilot.press("escape" if how == "escape" else "ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, EditScreen))
        with Queue(app.db_path) as q:
            assert (q.get(job_id).payload_json, q.edits(job_id)) == (before, [])
        assert f"edit of job {job_id} cancelled, nothing written" in notes(app)
        assert kept_files(tmp_dir) == []  # nothing typed, or what is stored: no file


async def test_a_retry_while_the_modal_is_open_is_refused(app: JobqApp, tmp_dir: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        job_id = await open_editor(app, pilot)
        with Queue(app.db_path) as q:
            q.retry(job_id)  # someone else retries it meanwhile
        app.screen.query_one(TextArea).load_text('{"x": 1}')
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "changed while it was being edited" in error_line(app),
                    "the refusal")  # fmt: skip
        assert isinstance(app.screen, EditScreen)
        assert app.screen.query_one(TextArea).text == '{"x": 1}'
        with Queue(app.db_path) as q:
            assert q.edits(job_id) == [] and q.get(job_id).payload_json != '{"x":1}'


# ---- a write the queue refuses loses nothing --------------------------------------------


@pytest.fixture
def one_job_app(location: str) -> tuple[JobqApp, int]:
    """A dashboard over one pending job, on each backend in turn."""
    with Queue(location) as q:
        job_id = q.enqueue("resize", {"path": "a.jpg"})
    return make_app(location, clock=frozen_clock(), display_path=DISPLAY_PATH, watch=False), job_id


async def test_a_claim_while_the_modal_is_open_keeps_the_text(
    one_job_app: tuple[JobqApp, int], tmp_dir: Path
) -> None:
    app, job_id = one_job_app
    typed = '{\n  "path": "b.jpg"  , "why": "[red]not markup[/red]"\n}\n'
    async with app.run_test(size=SIZE) as pilot:
        assert await open_editor(app, pilot, tab="1") == job_id
        # a worker claims the job through its own connection while the editor is open
        with Queue(app.db_path) as q:
            (claimed,) = q.backend.claim("elsewhere/1", time.time(), 600,
                                         ClaimFilter(types=("resize",)))  # fmt: skip
        assert claimed.id == job_id
        app.screen.query_one(TextArea).load_text(typed)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "changed while it was being edited" in error_line(app),
                    "the refusal under the editor")  # fmt: skip
        # still open, the text as typed, the one-line reason shown as plain text
        assert isinstance(app.screen, EditScreen)
        assert app.screen.query_one(TextArea).text == typed
        assert error_line(app) == (
            f"job {job_id} changed while it was being edited (it is running now); nothing"
            " written (ctrl+s tries again; esc keeps your text in a file)"
        )
        assert kept_files(tmp_dir) == []  # while the editor is open, the text is in it
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, EditScreen), "the editor closed")
        assert_kept(app, tmp_dir, job_id, typed)
        with Queue(app.db_path) as q:
            job = q.get(job_id)
            assert (job.state, job.payload_json, q.edits(job_id)) == (
                JobState.RUNNING,
                '{"path":"a.jpg"}',
                [],
            )


async def test_a_busy_queue_keeps_the_editor_open_then_a_second_save_writes(
    tmp_path: Path, tmp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBQ_BUSY_TIMEOUT", "0.2")  # the app's writer gives up after 0.2 s
    db = str(tmp_path / "q.db")
    with Queue(db) as q:
        job_id = q.enqueue("resize", {"path": "a.jpg"})
    app = make_app(db, clock=frozen_clock(), display_path=DISPLAY_PATH, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_editor(app, pilot, tab="1")
        holder = sqlite3.connect(db, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process writing for a long time
            app.screen.query_one(TextArea).load_text('{"path": "b.jpg"}')
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "past the busy timeout" in error_line(app),
                        "the busy refusal")  # fmt: skip
            assert isinstance(app.screen, EditScreen)
            assert app.screen.query_one(TextArea).text == '{"path": "b.jpg"}'
        finally:
            holder.rollback()
            holder.close()
        await pilot.press("ctrl+s")  # the queue is free again: the same text is written
        await until(pilot, lambda: not isinstance(app.screen, EditScreen), "the editor closed")
        await until(pilot, lambda: f"job {job_id}: payload saved" in notes(app))
        with Queue(db) as q:
            assert q.get(job_id).payload_json == '{"path":"b.jpg"}'
        assert kept_files(tmp_dir) == []


async def test_running_job_is_refused_without_an_editor(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("2")
        await settle(pilot)
        job = app.main.selected_job()
        assert job is not None and job.state is JobState.RUNNING
        await pilot.press("E")
        await until(pilot, lambda: f"cannot edit job {job.id}: it is running" in notes(app))
        assert not isinstance(app.screen, EditScreen)


async def test_read_only_refuses_e(tmp_path: Path) -> None:
    app = seeded_app(str(tmp_path / "q.db"), read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("E")
        await pilot.pause()
        assert not isinstance(app.screen, EditScreen)
        assert any("read-only" in n for n in notes(app))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("E")
        await pilot.pause()
        assert not isinstance(app.screen, EditScreen)


async def test_detail_view_edits_and_lists_them(app: JobqApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.job)
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, EditScreen))
        app.screen.query_one(TextArea).load_text('{"who": "\\u202eevil\\u001b[2J"}')
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: detail.snapshot is not None
                    and detail.snapshot.detail is not None
                    and bool(detail.snapshot.detail.edits), "the edit in the detail")  # fmt: skip
        snap = detail.snapshot
        assert snap is not None and snap.detail is not None
        text = render_detail(snap.detail, app.clock()).plain
        assert "Payload edits (1)" in text and "payload before:" in text
        assert "\x1b" not in text and "\u202e" not in text  # the new payload made visible


# ---- one real dashboard in a real terminal ------------------------------------------------

EDITOR = f"""#!{sys.executable}
import sys
with open(sys.argv[-1], "w") as f:
    f.write('{{"edited": "in tmux"}}')
"""


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    socket = str(tmp_path / "tmux.sock")
    yield socket, ["tmux", "-S", socket]
    subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True)


def _resize_job(tmp_path: Path) -> tuple[str, int]:
    """A queue file holding one pending resize job of a.jpg: (its path, the job's id)."""
    db = str(tmp_path / "q.db")
    with Queue(db) as q:
        return db, q.enqueue("resize", {"path": "a.jpg"})


def _dashboard_in_tmux(
    tm: list[str], db: str, editor_text: str, tmp_path: Path, env: str = "", editor_args: str = ""
) -> Callable[[], str]:
    """`jobq tui` in tmux, EDITOR a script of `editor_text`; returns what reads its screen."""
    editor = tmp_path / "ed"
    editor.write_text(editor_text)
    editor.chmod(0o755)
    editor_cmd = f"{editor} {editor_args}".strip()
    env = (f"PYTHONPATH={shlex.quote(str(ROOT))} {env} VISUAL="
           f" EDITOR={shlex.quote(editor_cmd)}")  # fmt: skip
    cmd = f"env {env} {shlex.quote(sys.executable)} -m jobq --db {shlex.quote(db)} tui"
    subprocess.run([*tm, "new-session", "-d", "-x", "140", "-y", "40", cmd], check=True)

    def pane() -> str:
        return subprocess.run([*tm, "capture-pane", "-p"], capture_output=True, text=True).stdout

    wait_until(lambda: "resize" in pane(), timeout=30, what="the dashboard's Pending list")
    return pane


def _quit_and_wait(tm: list[str]) -> None:
    subprocess.run([*tm, "send-keys", "q"], check=True)
    wait_until(lambda: subprocess.run([*tm, "has-session"], capture_output=True).returncode
               != 0, timeout=20, what="the dashboard to quit")  # fmt: skip


def test_e_suspends_the_real_dashboard_for_the_editor(
    tmp_path: Path, tmux: tuple[str, list[str]]
) -> None:
    _socket, tm = tmux
    db, job_id = _resize_job(tmp_path)
    screen = _dashboard_in_tmux(tm, db, EDITOR, tmp_path)
    subprocess.run([*tm, "send-keys", "enter"], check=True)
    wait_until(lambda: f"Job {job_id}" in screen() and '"a.jpg"' in screen(), timeout=20,
               what="the detail view")  # fmt: skip
    subprocess.run([*tm, "send-keys", "E"], check=True)
    # the editor ran in the terminal, the app came back and shows the new payload
    wait_until(lambda: '"in tmux"' in screen() and "Payload edits (1)" in screen(), timeout=30,
               what="the new payload in the detail view")  # fmt: skip
    with Queue(db) as q:
        assert q.get(job_id).payload_json == '{"edited":"in tmux"}'
        (edit,) = q.edits(job_id)
        assert edit.old_payload_json == '{"path":"a.jpg"}'
    subprocess.run([*tm, "send-keys", "q"], check=True)  # back to the list (not escape: an
    # escape followed at once by q reads as alt+q)
    wait_until(lambda: "Payload edits" not in screen(), timeout=20, what="the list again")
    _quit_and_wait(tm)


CLAIMING_EDITOR = f"""#!{sys.executable}
import sys, time
from jobq import Queue
from jobq.backend import ClaimFilter
# a worker claims the job while the editor is open; then the user saves
with Queue(sys.argv[1]) as q:
    q.backend.claim("elsewhere/1", time.time(), 600, ClaimFilter(types=("resize",)))
with open(sys.argv[-1], "w") as f:
    f.write('{{"edited": "meanwhile"}}')
"""


def test_a_refused_write_from_the_real_editor_keeps_its_file(
    tmp_path: Path, tmux: tuple[str, list[str]]
) -> None:
    _socket, tm = tmux
    db, job_id = _resize_job(tmp_path)
    tmp = tmp_path / "t[x]"  # $TMPDIR, with the brackets of markup
    tmp.mkdir()
    pane = _dashboard_in_tmux(tm, db, CLAIMING_EDITOR, tmp_path,
                              env=f"TMPDIR={shlex.quote(str(tmp))}", editor_args=db)  # fmt: skip

    def toasts() -> str:
        # the notifications' text (right of their border) without spaces: it wraps at any
        text = "".join(line.split("▌", 1)[1] for line in pane().splitlines() if "▌" in line)
        return "".join(text.split())

    subprocess.run([*tm, "send-keys", "E"], check=True)
    wait_until(lambda: kept_files(tmp) and "keptin" in toasts(), timeout=30,
               what="the refusal naming the kept file")  # fmt: skip
    (kept,) = kept_files(tmp)
    assert kept.name.startswith(f"jobq-edit-{job_id}-")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_text() == '{"edited": "meanwhile"}'
    assert "changedwhileitwasbeingedited" in toasts()
    assert f"keptin{kept}" in toasts()  # the path as it is, not read as markup
    with Queue(db) as q:
        job = q.get(job_id)
        assert (job.state, job.payload_json, q.edits(job_id)) == (
            JobState.RUNNING, '{"path":"a.jpg"}', [])  # fmt: skip
    _quit_and_wait(tm)


async def test_text_that_cannot_be_kept_stays_in_the_editor_until_a_second_escape(
    app: JobqApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # no such directory
    async with app.run_test(size=SIZE) as pilot:
        job_id = await open_editor(app, pilot)
        app.screen.query_one(TextArea).load_text('{"typed": true}')
        await pilot.press("escape")
        await until(pilot, lambda: error_line(app).startswith("cannot keep your text in a file: "),
                    "why the text was not kept")  # fmt: skip
        assert error_line(app).endswith(" (esc again discards it)")
        assert app.screen.query_one(TextArea).text == '{"typed": true}'
        await pilot.press("escape")  # the operator gives it up
        await until(pilot, lambda: not isinstance(app.screen, EditScreen), "the editor closed")
        assert f"edit of job {job_id} cancelled, nothing written" in notes(app)
        assert not (tmp_path / "gone").exists()


async def test_quitting_with_the_editor_open_keeps_the_typed_text(
    app: JobqApp, tmp_dir: Path
) -> None:
    """ctrl+q (or a browser tab closed) while the in-app editor holds typed text: the text is
    kept in a private file, as esc would keep it, and `jobq tui` names it once it exits."""
    async with app.run_test(size=SIZE) as pilot:
        job_id = await open_editor(app, pilot, tab="1")
        app.screen.query_one(TextArea).load_text('{"typed": "then quit"}')
        await pilot.press("ctrl+q")
    (kept,) = kept_files(tmp_dir)
    assert kept.name.startswith(f"jobq-edit-{job_id}-")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert kept.read_text(encoding="utf-8") == '{"typed": "then quit"}'
    assert app.kept_edits == [(job_id, str(kept))]
    with Queue(app.db_path) as q:
        assert q.edits(job_id) == []  # nothing written


async def test_quitting_with_the_editor_unchanged_keeps_nothing(
    app: JobqApp, tmp_dir: Path
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await open_editor(app, pilot, tab="1")
        await pilot.press("ctrl+q")
    assert kept_files(tmp_dir) == []
    assert app.kept_edits == []
