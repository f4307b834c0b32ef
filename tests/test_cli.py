"""Every `jobq` command: output, `--json` shapes, exit codes (0/1/2/75), and safe rendering.

Most tests call `jobq.cli.main` in-process (the same edge as the console script, error handling
included); those about processes, signals and locks run the CLI in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobq import Job, Queue
from jobq.cli.app import main
from jobq.store import Store
from tests.conftest import wait_until

EVIL = "boom \x1b]52;c;ZXZpbA==\x07 \u202eevil\x1b[2J"
EVIL_RAW = ("\x1b", "\x07", "\u202e")


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(db_path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `jobq ARGS…` in-process with JOBQ_DB set; return exit code, stdout, stderr."""
    monkeypatch.setenv("JOBQ_DB", db_path)

    def invoke(*args: str, stdin: bytes = b"") -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        code = exc.value.code
        return Result(code if isinstance(code, int) else 1, out, err)

    return invoke


def one_error_line(r: Result) -> str:
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("jobq: error: ")
    assert "Traceback" not in r.err
    return lines[0]


def claim_all(store: Store, now: float | None = None) -> list[Job]:
    return store.claim("pool1/0", time.time() if now is None else now, 30, limit=100)


def fail_job(
    store: Store,
    job_id: int,
    error: str = "ValueError: bad",
    now: float | None = None,
    traceback: str | None = "Traceback (most recent call last):\n  boom\n",
) -> None:
    for j in claim_all(store, now):
        if j.id == job_id:
            assert j.lease_token is not None
            store.fail(
                j.id,
                j.lease_token,
                time.time() if now is None else now,
                error,
                traceback=traceback,
                output="some output",
                retryable=False,
            )
        else:
            assert j.lease_token is not None
            store.release(j.id, j.lease_token, time.time())  # fmt: skip


# ---- enqueue, ls, show ------------------------------------------------------------------------


def test_enqueue_prints_only_the_id(run: Run, db_path: str) -> None:
    r = run("enqueue", "email.send", "--payload", '{"to": "a@b"}', "--priority", "high")
    assert r.code == 0 and r.err == ""
    assert r.out == "1\n"
    r = run("enqueue", "x", "--json", "--queue", "q2", "--delay", "30s")
    assert json.loads(r.out) == {"id": 2}
    with Queue(db_path) as q:
        assert q.get(1).priority == 10
        assert q.get(2).queue == "q2" and q.get(2).run_at > time.time() + 20


def test_enqueue_unique_key_returns_the_existing_job(run: Run) -> None:
    assert run("enqueue", "t", "--unique-key", "k").out == "1\n"
    assert run("enqueue", "t", "--unique-key", "k").out == "1\n"


def test_enqueue_through_typer_when_the_fast_parser_declines(run: Run) -> None:
    r = run("enqueue", "--help")
    assert r.code == 0 and "--ndjson" in r.out
    r = run("enqueue", "t", "--no-such-flag")
    assert r.code == 2
    assert "No such option" in one_error_line(r)
    r = run("enqueue", "t", "--payload")  # missing value
    assert r.code == 2
    one_error_line(r)


def test_ls_json_shape_and_filters(run: Run, db_path: str) -> None:
    run("enqueue", "email.send", "--payload", '{"user": "ann"}')
    run("enqueue", "email.digest")
    run("enqueue", "resize", "--delay", "1h", "--queue", "images")
    r = run("ls", "--json")
    rows = json.loads(r.out)
    assert [row["id"] for row in rows] == [3, 2, 1]
    with Queue(db_path) as q:
        assert set(rows[0]) == set(q.get(3).to_dict())
    assert {"id", "type", "queue", "payload", "priority", "state", "run_at", "attempts",
            "max_attempts", "timeout", "unique_key", "result", "last_error", "created_at",
            "started_at", "finished_at"} <= set(rows[0])  # fmt: skip

    def ids(*args: str) -> list[int]:
        return [row["id"] for row in json.loads(run("ls", "--json", *args).out)]

    assert ids("--type", "email.*") == [2, 1]
    assert ids("--state", "scheduled") == [3]
    assert ids("--queue", "images") == [3]
    assert ids("--search", "ann") == [1]
    assert ids("--limit", "1") == [3]
    r = run("ls", "--state", "bogus")
    assert r.code == 2
    assert "unknown state" in one_error_line(r)


def test_ls_human_table_shows_views_and_relative_times(run: Run) -> None:
    run("enqueue", "later", "--delay", "90s")
    run("enqueue", "now")
    r = run("ls")
    assert r.code == 0
    header, *rows = r.out.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "TYPE", "QUEUE"]
    assert "scheduled" in rows[1] and "in 1m" in rows[1]
    assert "pending" in rows[0] and "due" in rows[0]


def test_show_json_has_attempts_history(run: Run, store: Store) -> None:
    run("enqueue", "t", "--payload", '{"a": 1}', "--max-attempts", "1")
    fail_job(store, 1)
    r = run("show", "1", "--json")
    d = json.loads(r.out)
    assert d["state"] == "failed" and d["payload"] == {"a": 1}
    assert d["last_error"] == "ValueError: bad"
    [attempt] = d["attempts_history"]
    assert set(attempt) == {"id", "job_id", "attempt", "worker_id", "started_at", "finished_at",
                            "outcome", "error", "traceback", "output"}  # fmt: skip
    assert attempt["outcome"] == "failed" and "boom" in attempt["traceback"]
    human = run("show", "1").out
    assert "attempts history (1)" in human and "some output" in human and "boom" in human


def test_unknown_job_id_exits_1(run: Run, db_path: str) -> None:
    run("enqueue", "t")
    for args in (["show", "42"], ["cancel", "42"], ["retry", "42"], ["priority", "42", "high"],
                 ["wait", "42"]):  # fmt: skip
        r = run(*args)
        assert r.code == 1, args
        assert one_error_line(r) == f"jobq: error: no job 42 in {db_path}"


def test_usage_errors_exit_2_on_one_line(run: Run) -> None:
    for args in (["nosuch"], ["show", "abc"], ["ls", "--bogus"], ["prune"], ["retry"],
                 ["retry", "1", "--all-failed"], ["priority", "1", "urgent"]):  # fmt: skip
        r = run(*args)
        assert r.code == 2, args
        one_error_line(r)


def test_no_arguments_prints_help(run: Run) -> None:
    r = run()
    assert r.code == 0 and "enqueue" in r.out and "errors" in r.out


# ---- actions ----------------------------------------------------------------------------------


def test_retry_all_failed_with_filters(run: Run, store: Store, db_path: str) -> None:
    for t in ("alpha.one", "alpha.two", "beta"):
        run("enqueue", t, "--max-attempts", "1")
    for job_id in (1, 2, 3):
        fail_job(store, job_id)
    r = run("retry", "--all-failed", "--type", "alpha.*", "--search", "bad")
    assert (r.code, r.out) == (0, "retried 2 jobs\n")
    with Queue(db_path) as q:
        assert [q.get(i).state.value for i in (1, 2, 3)] == ["pending", "pending", "failed"]
        assert q.get(1).attempts == 0
    assert run("retry", "3").out == "3 retried\n"
    r = run("retry", "3")
    assert r.code == 1
    assert "cannot retry job 3: it is pending" in one_error_line(r)
    assert run("retry", "--all-failed").out == "retried 0 jobs\n"


def test_cancel_pending_and_running(run: Run, store: Store, db_path: str) -> None:
    run("enqueue", "runs")
    claim_all(store)
    run("enqueue", "waits")
    r = run("cancel", "1", "2")
    assert r.code == 0
    assert r.out.splitlines() == ["1 cancel requested", "2 cancelled"]
    with Queue(db_path) as q:
        assert q.get(1).cancel_requested and q.get(2).state.value == "cancelled"
    assert run("cancel", "2").out == "2 cancelled\n"  # already cancelled: nothing to do
    run("enqueue", "done")
    [j] = claim_all(store)
    store.complete(j.id, j.lease_token or "", time.time(), None, None)
    r = run("cancel", str(j.id))
    assert r.code == 1
    assert f"cannot cancel job {j.id}: it is succeeded" in one_error_line(r)


def test_priority_by_name_and_number(run: Run, db_path: str) -> None:
    run("enqueue", "t")
    assert run("priority", "1", "critical").out == "1 priority 20\n"
    assert run("priority", "1", "-5").out == "1 priority -5\n"
    with Queue(db_path) as q:
        assert q.get(1).priority == -5


def test_pause_and_resume_affect_claims(run: Run, store: Store) -> None:
    run("enqueue", "t", "--queue", "mail")
    assert run("pause", "mail").out == "paused queue mail\n"
    assert claim_all(store) == []
    assert "mail" in json.loads(run("stats", "--json").out)["paused_queues"]
    assert run("resume", "mail").code == 0
    assert [j.id for j in claim_all(store)] == [1]


def test_prune_deletes_old_finished_jobs(run: Run, store: Store, db_path: str) -> None:
    run("enqueue", "old")
    run("enqueue", "new")
    ten_days_ago = time.time() - 10 * 86400
    [old] = store.claim("p/0", time.time(), 30, limit=1)
    assert old.lease_token is not None
    store.complete(old.id, old.lease_token, ten_days_ago, None, None)
    r = run("prune", "--older-than", "7d", "--state", "succeeded")
    assert (r.code, r.out) == (0, "pruned 1 job\n")
    with Queue(db_path) as q:
        assert sum(q.counts().values()) == 1
    r = run("prune", "--older-than", "7d", "--state", "pending")
    assert r.code == 2
    one_error_line(r)


def test_wait_exit_codes(run: Run, store: Store) -> None:
    run("enqueue", "ok")
    run("enqueue", "bad", "--max-attempts", "1")
    run("enqueue", "stuck")
    jobs = {j.id: j for j in claim_all(store)}
    store.complete(1, jobs[1].lease_token or "", time.time(), '"done"', None)
    store.fail(2, jobs[2].lease_token or "", time.time(), "nope", retryable=False)
    assert run("wait", "1") == Result(0, "1 succeeded\n", "")
    r = run("wait", "1", "2")
    assert (r.code, r.out) == (1, "1 succeeded\n2 failed\n")
    r = run("wait", "3", "--timeout", "0.2s")
    assert r.code == 124  # timed out: not "failed" (1)
    assert "timed out" in one_error_line(r)


def test_wait_returns_when_another_process_finishes_the_job(run: Run, db_path: str) -> None:
    run("enqueue", "t")

    def finish() -> None:
        s = Store(db_path)
        try:
            time.sleep(0.2)  # let `wait` block first
            [j] = s.claim("p/0", time.time(), 30)
            s.complete(j.id, j.lease_token or "", time.time(), None, None)
        finally:
            s.close()

    t = threading.Thread(target=finish)
    t.start()
    r = run("wait", "1", "--timeout", "10s")
    t.join()
    assert (r.code, r.out) == (0, "1 succeeded\n")


# ---- reads: errors, stats, workers, doctor, backup, db path ----------------------------------


def test_errors_lists_latest_failures_oldest_first(run: Run, store: Store) -> None:
    for t in ("a", "b"):
        run("enqueue", t, "--max-attempts", "1")
    fail_job(store, 1, "first")
    fail_job(store, 2, "second")
    lines = run("errors").out.splitlines()
    assert "first" in lines[0] and "second" in lines[1]
    rows = json.loads(run("errors", "--json", "--limit", "1").out)
    assert [r["error"] for r in rows] == ["second"]
    assert {"job_id", "attempt", "outcome", "error", "traceback", "type", "queue"} <= set(rows[0])


def test_errors_follow_sees_a_failure_recorded_after_it_started(
    db_path: str, store: Store, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    with Queue(db_path) as q:
        q.enqueue("early", max_attempts=1)
        q.enqueue("late", max_attempts=1)
    fail_job(store, 1, "before start")
    proc = subprocess.Popen([*jobq_cmd, "errors", "-f"], env=jobq_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:
        # the first line proves it has made its first query, after arming its watch
        wait_until(lambda: len(lines) >= 1, what="the failure recorded before the start")
        fail_job(store, 2, "it broke \x1b[31m")
        wait_until(lambda: len(lines) >= 2, what="the failure recorded after the start")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    assert "job 1" in lines[0] and "before start" in lines[0]
    assert "job 2" in lines[1] and "it broke ␛[31m" in lines[1] and "\x1b" not in lines[1]
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_stats_and_workers(run: Run, store: Store) -> None:
    run("enqueue", "t", "--queue", "q1")
    run("enqueue", "t", "--delay", "1h")
    store.register_worker("pool1", name="w\x1bname", host="h", pid=123, concurrency=2,
                          queues=["q1"], types=["t"], now=time.time() - 600)  # fmt: skip
    claim_all(store)
    s = json.loads(run("stats", "--json").out)
    assert s["by_state"]["running"] == 1 and s["scheduled"] == 1
    assert s["by_queue"]["q1"]["running"] == 1
    human = run("stats").out
    assert "running 1" in human and "q1" in human
    [w] = json.loads(run("workers", "--json").out)
    assert w["current_jobs"] == [1] and w["alive"] is False and w["name"] == "w\x1bname"
    table = run("workers").out
    assert "dead" in table and "\x1b" not in table and "w␛name" in table


def test_doctor(run: Run, db_path: str, tmp_path: Path) -> None:
    run("enqueue", "t")
    r = run("doctor", "--json")
    report = json.loads(r.out)
    assert r.code == 0 and report["ok"] is True and report["integrity"] == "ok"
    assert run("doctor").code == 0
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    r = run("--db", str(other), "doctor", "--json")
    assert r.code == 1
    assert json.loads(r.out)["ok"] is False and "error" in json.loads(r.out)
    missing = tmp_path / "missing.db"
    assert run("--db", str(missing), "doctor").code == 1
    assert not missing.exists()


def test_backup_is_a_consistent_queue_file(run: Run, db_path: str, tmp_path: Path) -> None:
    for i in range(50):
        run("enqueue", f"t{i}")
    out = tmp_path / "copy.db"
    r = run("backup", str(out))
    assert (r.code, r.out) == (0, f"{out}\n")
    conn = sqlite3.connect(out)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 50
    conn.close()
    r = run("backup", db_path)
    assert r.code == 2
    assert "queue file itself" in one_error_line(r)


def test_db_path_precedence(run: Run, db_path: str, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    flag = str(tmp_path / "flag.db")
    assert run("--db", flag, "db", "path").out == flag + "\n"
    assert run(f"--db={flag}", "db", "path").out == flag + "\n"
    assert run("db", "path").out == db_path + "\n"
    monkeypatch.delenv("JOBQ_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    default = run("db", "path").out.strip()
    assert default.endswith(os.path.join("jobq", "jobq.db")) and default != db_path


def test_global_db_flag_applies_to_enqueue(run: Run, tmp_path: Path) -> None:
    other = str(tmp_path / "other.db")
    assert run("--db", other, "enqueue", "t").out == "1\n"
    with Queue(other) as q:
        assert q.get(1).type == "t"


# ---- untrusted text ---------------------------------------------------------------------------


def test_control_characters_never_reach_the_terminal(run: Run, store: Store) -> None:
    run("enqueue", "t", "--payload", json.dumps({"x": EVIL}), "--max-attempts", "1")
    fail_job(store, 1, EVIL, traceback=EVIL + "\n" + EVIL)
    for args in (["ls"], ["show", "1"], ["errors"], ["ls", "--json"], ["show", "1", "--json"],
                 ["errors", "--json"], ["stats"]):  # fmt: skip
        r = run(*args)
        assert r.code == 0, args
        for ch in EVIL_RAW:
            assert ch not in r.out, (args, ch)
    shown = run("show", "1").out
    assert "␛]52;c;ZXZpbA==␇" in shown and "<U+202E>" in shown
    assert "\\u001b]52" in run("show", "1", "--json").out


# ---- exit 75, broken pipe, work options -------------------------------------------------------


def test_busy_file_exits_75(db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]) -> None:
    with Queue(db_path) as q:
        q.enqueue("seed")
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = subprocess.run([*jobq_cmd, "enqueue", "t"], env={**jobq_env,
                              "JOBQ_BUSY_TIMEOUT": "0.2"}, capture_output=True, text=True,
                              timeout=30)  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 75, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "locked" in proc.stderr
    assert proc.stdout == ""


def test_broken_pipe_exits_quietly(
    db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    with Queue(db_path) as q:
        q.enqueue_many([("t", {"pad": "x" * 1000})] * 2000)
    proc = subprocess.Popen([*jobq_cmd, "ls", "--limit", "2000"], env=jobq_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=30)
    assert err == b"" or b"Traceback" not in err
    assert b"Traceback" not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--exec", "noequals"], "expected TYPE=COMMAND"),
        (["--exec", "=cmd"], "expected TYPE=COMMAND"),
        (["--log-level", "loud"], "unknown log level"),
        (["--lease", "soon"], "lease"),
        (["--shutdown-timeout", "x"], "shutdown timeout"),
        (["--handlers", "/nonexistent.toml"], "does not exist"),
        (["-q", "has space"], "whitespace"),
        (["-c", "0"], "at least 1"),
    ],
)
def test_work_options_are_validated_before_anything_starts(
    run: Run, args: list[str], expected: str
) -> None:
    for command in ("work", "systemd-unit"):
        r = run(command, *args)
        assert r.code == 2, (command, args, r)
        assert expected in one_error_line(r)


def test_work_options_from_environment(monkeypatch: pytest.MonkeyPatch, db_path: str) -> None:
    from jobq.pool.settings import pool_settings

    monkeypatch.setenv("JOBQ_APP", "a.handlers,b.handlers" + os.pathsep + "c")
    monkeypatch.setenv("JOBQ_EXEC", "resize=convert - -;thumb=magick x\nocr=tesseract - -")
    monkeypatch.setenv("JOBQ_QUEUE", "images, mail")
    s = pool_settings(db_path, concurrency=None, apps=None, execs=None, handlers=None,
                      queues=None, type_globs=None, burst=False, shutdown_timeout="1m",
                      max_jobs_per_child=0, name=None, log_level="debug", lease="10s",
                      retention="7d")  # fmt: skip
    assert s.apps == ("a.handlers", "b.handlers", "c")
    assert s.execs == (("resize", "convert - -"), ("thumb", "magick x"), ("ocr", "tesseract - -"))
    assert s.queues == ("images", "mail")
    assert (s.shutdown_timeout, s.lease_seconds, s.retention) == (60.0, 10.0, 7 * 86400.0)
    assert s.log_level == "DEBUG" and s.concurrency == (os.cpu_count() or 1)
    flags = pool_settings(db_path, concurrency=3, apps=["x"], execs=["t=cmd"], handlers=None,
                          queues=["q"], type_globs=["email.*"], burst=True, shutdown_timeout="5s",
                          max_jobs_per_child=10, name="n", log_level="INFO", lease="30s",
                          retention=None)  # fmt: skip
    assert (flags.apps, flags.execs, flags.queues, flags.type_globs) == (
        ("x",), (("t", "cmd"),), ("q",), ("email.*",)
    )  # fmt: skip


def test_systemd_unit_runs_work_with_the_same_flags(run: Run, db_path: str) -> None:
    r = run("systemd-unit", "-c", "3", "--exec", "resize=convert - -", "-q", "images")
    assert r.code == 0, r.err
    [exec_start] = [line for line in r.out.splitlines() if line.startswith("ExecStart=")]
    assert f"--db {db_path} work --concurrency 3" in exec_start
    assert "--queue images" in exec_start and "resize=convert" in exec_start
