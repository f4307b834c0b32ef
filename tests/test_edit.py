"""`jobq edit` as a person runs it: a real editor program (a Python script as $EDITOR) in a real
`jobq` process, on every backend. The script does what a plan file says on each of its
invocations (write a text, leave the file as it is, exit 1, claim the job first) and keeps a copy
of the file it was given, its arguments and the file's mode, so the tests see what the person saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import InvalidTransition, Job, JobNotFound, Queue
from jobq.backend import Role, open_backend
from jobq.basics import JobState
from tests.conftest import ROOT
from tests.factories import make_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

EDITOR = f"""#!{sys.executable}
import json, os, stat, sys, time
path = sys.argv[-1]
log = os.environ["EDIT_LOG"]
plan = json.load(open(os.path.join(log, "plan.json")))
n = len([f for f in os.listdir(log) if f.startswith("seen-")])
with open(path, encoding="utf-8") as f:
    seen = f.read()
with open(os.path.join(log, "seen-%d" % n), "w", encoding="utf-8") as f:
    f.write(seen)
with open(os.path.join(log, "argv-%d" % n), "w") as f:
    json.dump({{"argv": sys.argv[1:], "mode": stat.S_IMODE(os.stat(path).st_mode)}}, f)
step = plan[min(n, len(plan) - 1)]
if "claim" in step:  # a worker claims the job while the editor is open
    from jobq.backend import Role, open_backend
    b = open_backend(step["claim"], Role.WORKER)
    assert b.claim("w1", time.time(), 60), "nothing claimed"
    b.close()
if "write" in step:
    with open(path, "w", encoding="utf-8") as f:
        f.write(step["write"])
sys.exit(step.get("exit", 0))
"""


class Editor:
    """The script editor of one test: its plan, and what it saw."""

    def __init__(self, where: Path) -> None:
        self.log = where / "log"
        self.log.mkdir()
        self.dir = where / "my dir"  # a space in the path: the command is split as a shell would
        self.dir.mkdir()
        self.path = self.dir / "ed"
        self.path.write_text(EDITOR)
        self.path.chmod(0o755)

    def plan(self, *steps: dict[str, object]) -> None:
        (self.log / "plan.json").write_text(json.dumps(list(steps)))

    def seen(self) -> list[str]:
        n = len(list(self.log.glob("seen-*")))
        return [(self.log / f"seen-{i}").read_text(encoding="utf-8") for i in range(n)]

    def calls(self) -> list[dict[str, object]]:
        n = len(list(self.log.glob("argv-*")))
        return [json.loads((self.log / f"argv-{i}").read_text()) for i in range(n)]


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    return Editor(tmp_path)


@pytest.fixture
def backend_at(location: str) -> Iterator[Backend]:
    b = open_backend(location, Role.WORKER)
    yield b
    b.close()


def jobq(
    location: str,
    *args: str,
    editor: Editor | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    e.pop("VISUAL", None)
    e.pop("EDITOR", None)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    if editor is not None:
        e["EDIT_LOG"] = str(editor.log)
        e["EDITOR"] = f'"{editor.path}"'
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "jobq", "--db", location, "edit", *args],
                          env=e, input=stdin, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def enqueue(location: str, payload: object, **kw: object) -> int:
    with Queue(location) as q:
        return q.enqueue("resize", payload, **kw)  # type: ignore[arg-type]


def get(location: str, job_id: int) -> tuple[Job, list[dict[str, object]]]:
    with Queue(location) as q:
        return q.get(job_id), [e.to_dict() for e in q.edits(job_id)]


PAYLOAD = {"path": "a.jpg", "size": [640, 480], "ratio": 1.5, "big": 12345678901234567890,
           "name": "café ✓", "nested": {"z": None, "a": True}}  # fmt: skip


def test_valid_edit_is_written_and_kept_in_history(location: str, editor: Editor) -> None:
    job_id = enqueue(location, PAYLOAD)
    before, _ = get(location, job_id)
    editor.plan({"write": '{"path": "b.jpg"}\n'})
    r = jobq(location, str(job_id), editor=editor)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{job_id} edited\n", "")
    # what the person saw: the payload indented by 2, keys in their stored order, exact values,
    # in a private .json temp file
    (shown,) = editor.seen()
    assert shown == json.dumps(PAYLOAD, indent=2, ensure_ascii=False) + "\n"
    assert json.dumps(json.loads(shown), ensure_ascii=False, separators=(",", ":")) == (
        before.payload_json
    )
    (call,) = editor.calls()
    path = str(call["argv"][-1])  # type: ignore[index]
    assert path.endswith(".json") and call["mode"] == 0o600
    assert not os.path.exists(path)  # removed once written
    job, edits = get(location, job_id)
    assert job.payload_json == '{"path":"b.jpg"}' and job.state is JobState.PENDING
    assert len(edits) == 1
    assert edits[0]["old_payload"] == PAYLOAD and edits[0]["retried"] is False
    assert edits[0]["user"] and edits[0]["host"]


def test_invalid_edit_is_reopened_with_the_error_then_saved(location: str, editor: Editor) -> None:
    job_id = enqueue(location, {"a": 1})
    editor.plan({"write": '{"a": 2,}\n'}, {"write": '# a comment of mine\n{"a": 3}\n'})
    r = jobq(location, str(job_id), editor=editor)
    assert (r.returncode, r.stdout) == (0, f"{job_id} edited\n"), r.stderr
    first, second = editor.seen()
    assert first == '{\n  "a": 1\n}\n'
    top = second.splitlines()[0]
    assert top.startswith("# jobq: this edit was not saved: invalid JSON payload:")
    assert second.endswith('{"a": 2,}\n')  # the person's text, to fix
    assert get(location, job_id)[0].payload_json == '{"a":3}'


@pytest.mark.parametrize(
    "steps",
    [
        [{}],  # saved unchanged
        [{"write": ""}],  # emptied
        [{"write": "# only a comment\n\n"}],  # emptied but for a comment
        [{"write": '{\n"a":   1}'}],  # the same payload, other whitespace
        [{"write": "{oops"}, {}],  # invalid, then left as it was reopened
    ],
    ids=["unchanged", "emptied", "comment-only", "same-value", "invalid-then-unchanged"],
)
def test_unchanged_or_emptied_writes_nothing(
    location: str, editor: Editor, steps: list[dict[str, object]]
) -> None:
    job_id = enqueue(location, {"a": 1})
    editor.plan(*steps)
    r = jobq(location, str(job_id), "--retry", editor=editor)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "edit cancelled, nothing written\n")
    job, edits = get(location, job_id)
    assert (job.payload_json, edits) == ('{"a":1}', [])
    assert len(editor.seen()) == len(steps)
    path = str(editor.calls()[0]["argv"][-1])  # type: ignore[index]
    assert not os.path.exists(path)


def test_editor_exiting_non_zero_writes_nothing(location: str, editor: Editor) -> None:
    job_id = enqueue(location, {"a": 1})
    editor.plan({"write": '{"a": 2}', "exit": 1})
    r = jobq(location, str(job_id), editor=editor)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "exited with 1; nothing written" in r.stderr
    (call,) = editor.calls()
    assert not os.path.exists(str(call["argv"][-1]))  # type: ignore[index]
    job, edits = get(location, job_id)
    assert (job.payload_json, edits) == ('{"a":1}', [])


def test_payload_option_forms(location: str, tmp_path: Path) -> None:
    job_id = enqueue(location, {"a": 1})
    r = jobq(location, str(job_id), "--payload", '{"b": 2}')
    assert (r.returncode, r.stdout) == (0, f"{job_id} edited\n"), r.stderr
    (tmp_path / "p.json").write_text('{"c": [3]}')
    assert jobq(location, str(job_id), "--payload", f"@{tmp_path / 'p.json'}").returncode == 0
    assert get(location, job_id)[0].payload_json == '{"c":[3]}'
    assert jobq(location, str(job_id), "--payload", "-", stdin='{"d": 4}').returncode == 0
    job, edits = get(location, job_id)
    assert job.payload_json == '{"d":4}'
    assert [e["old_payload"] for e in edits] == [{"a": 1}, {"b": 2}, {"c": [3]}]
    # bad input: one line, exit 2, nothing written
    for bad in ('{"x": NaN}', '{"x": 1', "@" + str(tmp_path / "missing.json")):
        r = jobq(location, str(job_id), "--payload", bad)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (bad, r.stderr)
        assert r.stderr.startswith("jobq: error: ") and "Traceback" not in r.stderr
    assert get(location, job_id)[0].payload_json == '{"d":4}'


def test_retry_moves_a_failed_job_back_to_pending_in_the_same_write(
    location: str, backend_at: Backend, editor: Editor
) -> None:
    failed = make_job(backend_at, "failed")  # type: ignore[arg-type]
    assert failed.state is JobState.FAILED and failed.attempts > 0
    editor.plan({"write": '{"fixed": true}'})
    r = jobq(location, str(failed.id), "--retry", editor=editor)
    assert (r.returncode, r.stdout) == (0, f"{failed.id} edited and retried\n"), r.stderr
    job, edits = get(location, failed.id)
    assert (job.state, job.attempts, job.payload_json) == (JobState.PENDING, 0, '{"fixed":true}')
    assert edits[0]["retried"] is True
    # a cancelled one, with --payload
    cancelled = make_job(backend_at, "cancelled")  # type: ignore[arg-type]
    r = jobq(location, str(cancelled.id), "--retry", "--payload", "{}")
    assert r.returncode == 0, r.stderr
    assert get(location, cancelled.id)[0].state is JobState.PENDING
    # without --retry a failed job stays failed, its payload edited
    other = make_job(backend_at, "failed")  # type: ignore[arg-type]
    assert jobq(location, str(other.id), "--payload", '{"n": 1}').returncode == 0
    assert get(location, other.id)[0].state is JobState.FAILED


@pytest.mark.parametrize("state", ["running", "succeeded"])
def test_running_or_succeeded_job_is_refused(
    location: str, backend_at: Backend, editor: Editor, state: str
) -> None:
    job = make_job(backend_at, state)  # type: ignore[arg-type]
    editor.plan({"write": '{"b": 2}'})
    for args in ([], ["--payload", '{"b": 2}']):
        r = jobq(location, str(job.id), *args, editor=editor)
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr == f"jobq: error: cannot edit job {job.id}: it is {state}\n"
    assert editor.seen() == []  # the editor never opened
    assert get(location, job.id) == (job, [])


def test_running_after_a_real_claim_is_refused(location: str, editor: Editor) -> None:
    job_id = enqueue(location, {"a": 1})
    b = open_backend(location, Role.WORKER)
    assert [j.id for j in b.claim("w1", time.time(), 60)] == [job_id]
    b.close()
    r = jobq(location, str(job_id), "--payload", "{}")
    assert r.returncode == 1 and "it is running" in r.stderr
    assert get(location, job_id)[0].payload_json == '{"a":1}'


def test_job_claimed_while_the_editor_is_open_is_refused_and_the_edit_kept(
    location: str, editor: Editor
) -> None:
    job_id = enqueue(location, {"a": 1})
    editor.plan({"claim": location, "write": '{"a": 2}\n'})
    r = jobq(location, str(job_id), editor=editor)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert f"job {job_id} changed while it was being edited (it is running now)" in r.stderr
    kept = r.stderr.rstrip("\n").rsplit("your edit is kept in ", 1)[1]
    assert kept == str(editor.calls()[0]["argv"][-1])  # type: ignore[index]
    assert Path(kept).read_text() == '{"a": 2}\n'
    os.unlink(kept)
    job, edits = get(location, job_id)
    assert (job.state, job.payload_json, edits) == (JobState.RUNNING, '{"a":1}', [])


def test_unknown_id_says_what_show_says(location: str) -> None:
    enqueue(location, {})
    r = jobq(location, "99", "--payload", "{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT)
    shown = subprocess.run([sys.executable, "-m", "jobq", "--db", location, "show", "99"],
                           env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (r.returncode, r.stderr) == (shown.returncode, shown.stderr) == (1, shown.stderr)
    assert shown.stderr.startswith("jobq: error: no job 99")


def test_history_in_show_text_and_json(location: str) -> None:
    job_id = enqueue(location, {"v": 1})
    assert jobq(location, str(job_id), "--payload", '{"v": 2}').returncode == 0
    assert jobq(location, str(job_id), "--payload", '{"v": "\\u001b[31mred"}').returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT)

    def show(*args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "jobq", "--db", location, "show", str(job_id),
                            *args], env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r.stdout

    d = json.loads(show("--json"))
    assert [e["old_payload"] for e in d["edits"]] == [{"v": 1}, {"v": 2}]
    for e in d["edits"]:
        assert set(e) == {"at", "user", "host", "old_payload", "retried"}
        # ISO 8601 UTC with microseconds
        assert time.strptime(e["at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert len(e["at"]) == len("2026-12-02T00:23:44.123456Z")
    text = show()
    assert "payload edits (2):" in text
    assert '"v": 1' in text and '"v": 2' in text
    assert "\x1b" not in text  # the new payload's escape is shown, never sent


def test_visual_beats_editor_and_arguments_are_split_without_a_shell(
    location: str, editor: Editor, tmp_path: Path
) -> None:
    job_id = enqueue(location, {"a": 1})
    editor.plan({"write": '{"a": 2}'})
    marker = tmp_path / "pwned"
    visual = f'"{editor.path}" --wait "two words" --x=$(touch {marker}) ;ls'
    r = jobq(location, str(job_id), editor=editor,
             env={"VISUAL": visual, "EDITOR": "/nonexistent/editor"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    (call,) = editor.calls()
    argv = call["argv"]
    assert isinstance(argv, list)
    assert argv[:-1] == ["--wait", "two words", "--x=$(touch", f"{marker})", ";ls"]
    assert not marker.exists()  # nothing went through a shell
    assert get(location, job_id)[0].payload_json == '{"a":2}'
    # $EDITOR when $VISUAL is empty; a missing editor: one line, exit 1, nothing written
    r = jobq(location, str(job_id), env={"VISUAL": "", "EDITOR": "/nonexistent/editor -w"})
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("jobq: error: cannot run the editor '/nonexistent/editor'")
    r = jobq(location, str(job_id), env={"EDITOR": '"unclosed'})
    assert r.returncode == 2 and r.stderr.startswith("jobq: error: cannot read $EDITOR")
    assert len(get(location, job_id)[1]) == 1


def test_edits_are_deleted_with_their_job(location: str, backend_at: Backend) -> None:
    job = make_job(backend_at, "failed")  # type: ignore[arg-type]
    with Queue(location) as q:
        q.edit(job.id, {"n": 1})
        assert len(q.edits(job.id)) == 1
        assert q.backend.delete([job.id])[job.id].done
        assert q.edits(job.id) == []
        assert q.doctor()["tables"]["job_edits"] == 0  # type: ignore[index]
    # pruned: a job edited while pending, then finished
    pending = enqueue(location, {})
    with Queue(location) as q:
        q.edit(pending, {"x": 1})
        q.cancel(pending)
        assert q.doctor()["tables"]["job_edits"] == 1  # type: ignore[index]
    assert backend_at.prune(time.time() + 10, ["cancelled"]) == 1
    with Queue(location) as q:
        assert q.edits(pending) == []
        assert q.doctor()["tables"]["job_edits"] == 0  # type: ignore[index]


def test_python_api(location: str, backend_at: Backend) -> None:
    job_id = enqueue(location, {"a": 1})
    with Queue(location) as q:
        seen = q.get(job_id)
        job = q.edit(job_id, {"b": [1, 2]})
        assert job.payload == {"b": [1, 2]}
        with pytest.raises(InvalidTransition, match="changed while it was being edited"):
            q.edit(job_id, {"c": 3}, seen=seen)  # another edit since it was read
        with pytest.raises(JobNotFound):
            q.edit(999, {})
        with pytest.raises(InvalidTransition, match="it is running"):
            q.edit(make_job(backend_at, "running").id, {})  # type: ignore[arg-type]
        # retry refused (a pending job of its type holds its unique key): nothing written
        held = make_job(backend_at, "failed", type="u", unique_key="k")  # type: ignore[arg-type]
        q.enqueue("u", {}, unique_key="k")
        with pytest.raises(InvalidTransition, match="unique key"):
            q.edit(held.id, {"n": 1}, retry=True)
        assert (q.get(held.id).payload_json, q.edits(held.id)) == (held.payload_json, [])
