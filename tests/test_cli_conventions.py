"""The CLI conventions users expect (issue 13), each through a real `jobq` process: --version,
ISO 8601 times in every --json, wait's exit codes and error line, delete, prune's unit and
--dry-run, forgetting pools, pause's warning, --ndjson @FILE, and the start-up checks of
`jobq work` (one `jobq: error:` line, a documented exit code, nothing written)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

import jobq
from jobq import Queue, lifecycle
from jobq.backend import ClaimFilter, Ending
from jobq.cli.output import iso
from jobq.store import Store
from jobq.values import format_iso, parse_at
from tests.conftest import ROOT, wait_until
from tests.helpers import kill_all

ISO_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
EVIL = "boom \x1b]52;c;ZXZpbA==\x07 \u202eevil\x1b[2J"
TIME_KEYS = ("run_at", "created_at", "started_at", "finished_at", "lease_until")


def jq(env: dict[str, str], *args: str, stdin: str = "", cwd: Path | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run `python -m jobq ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "jobq", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          check=False)  # fmt: skip


def one_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    """The single `jobq: error:` line of a failed command with exit `code`."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobq: error: "), r.stderr
    return lines[0]


def finish(db_path: str, job_id: int, ok: bool, error: str = "ValueError: bad") -> None:
    """Run one attempt of `job_id` to success, or to a final failure."""
    with closing(Store(db_path)) as s:
        job = s.get(job_id)
        assert job is not None
        [lease] = s.claim("pool-x/0", time.time(), 30, ClaimFilter(types=(job.type,)))
        assert lease.id == job_id
        token = lease.lease_token or ""
        if ok:
            assert s.complete_many([(job_id, token, '"done"', None)], time.time()) == [True]
        else:
            s.end_attempt(job_id, token, time.time(), Ending.FAIL, error, retryable=False)


# ---- --version ---------------------------------------------------------------------------------


def test_version(jobq_env: dict[str, str], db_path: str) -> None:
    r = jq(jobq_env, "--version")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"jobq {jobq.__version__}\n", "")
    assert not os.path.exists(db_path)  # reads nothing, creates nothing


# ---- ISO 8601 times in every --json ---------------------------------------------------------


def test_every_json_time_is_iso_8601_utc_with_microseconds(
    jobq_env: dict[str, str], db_path: str
) -> None:
    at = "2030-12-02T00:23:44.123456Z"
    with Queue(db_path) as q:
        a = q.enqueue("a", {"created_at": 5, "result": {"run_at": 1}})  # the job's own data
        b = q.enqueue("b", {}, run_at=at)
    finish(db_path, a, ok=False)
    with closing(Store(db_path)) as s:
        s.register_worker("pool-x", name="x", host="h", pid=1, concurrency=1, queues=[],
                          types=["a"], now=1_800_000_000.25)  # fmt: skip

    shown = json.loads(jq(jobq_env, "show", str(a), "--json").stdout)
    assert shown["payload"] == {"created_at": 5, "result": {"run_at": 1}}
    stored = Queue(db_path).get(a)
    assert shown["created_at"] == format_iso(stored.created_at)
    for key in ("run_at", "created_at", "started_at", "finished_at"):
        assert ISO_US.fullmatch(shown[key]), (key, shown[key])
    [attempt] = shown["attempts_history"]
    assert ISO_US.fullmatch(attempt["started_at"]) and ISO_US.fullmatch(attempt["finished_at"])

    listed = json.loads(jq(jobq_env, "ls", "--json").stdout)
    assert {j["id"]: j["run_at"] for j in listed}[b] == at  # --at's form comes back unchanged
    for job in listed:
        assert all(job[k] is None or ISO_US.fullmatch(job[k]) for k in TIME_KEYS), job

    [err] = json.loads(jq(jobq_env, "errors", "--json").stdout)
    assert ISO_US.fullmatch(err["started_at"]) and ISO_US.fullmatch(err["finished_at"])

    [pool] = json.loads(jq(jobq_env, "workers", "--json").stdout)
    assert pool["started_at"] == "2027-01-15T08:00:00.250000Z"
    assert ISO_US.fullmatch(pool["heartbeat_at"])

    waited = json.loads(jq(jobq_env, "wait", str(a), "--json").stdout)
    assert waited["jobs"][0]["finished_at"] == shown["finished_at"]


def test_errors_follow_json_lines_carry_iso_times(jobq_env: dict[str, str], db_path: str) -> None:
    with Queue(db_path) as q:
        a = q.enqueue("a", {})
    finish(db_path, a, ok=False)
    proc = subprocess.Popen([sys.executable, "-m", "jobq", "errors", "-f", "--json"],
                            env=jobq_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["job_id"] == a and ISO_US.fullmatch(line["finished_at"])
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "text", ["2030-12-02T00:23:44.123456Z", "2030-12-02T00:23:44.123456+00:00",
             "2030-12-02T01:23:44.123456+01:00", "2030-12-02T00:23:44.123456"],
)  # fmt: skip
def test_at_accepts_the_json_form(jobq_env: dict[str, str], text: str) -> None:
    r = jq(jobq_env, "enqueue", "t", "--at", text)
    assert r.returncode == 0, r.stderr
    shown = json.loads(jq(jobq_env, "show", r.stdout.strip(), "--json").stdout)
    assert shown["run_at"] == "2030-12-02T00:23:44.123456Z"
    assert format_iso(parse_at(shown["run_at"])) == shown["run_at"]  # a lossless round trip


def test_human_times_stay_to_the_second() -> None:
    assert iso(1_800_000_000.25) == "2027-01-15T08:00:00Z"


# ---- wait ----------------------------------------------------------------------------------


def test_wait_tells_failed_from_timed_out(jobq_env: dict[str, str], db_path: str) -> None:
    with Queue(db_path) as q:
        ok, bad, stuck = q.enqueue("ok", {}), q.enqueue("bad", {}), q.enqueue("stuck", {})
    finish(db_path, ok, ok=True)
    finish(db_path, bad, ok=False, error=EVIL)

    r = jq(jobq_env, "wait", str(ok), str(bad))
    assert r.returncode == 1
    assert r.stdout == f"{ok} succeeded\n{bad} failed\n"
    [line] = r.stderr.splitlines()
    assert line.startswith(f"jobq: job {bad} (bad) failed: boom ")
    assert not any(c in r.stderr for c in ("\x1b", "\x07", "\u202e"))  # one safe line

    r = jq(jobq_env, "wait", str(ok), str(stuck), "--timeout", "0.3s")
    assert r.returncode == 124  # timed out: a code of its own
    assert r.stdout == f"{ok} succeeded\n{stuck} pending\n"
    assert "timed out after 0.3s: job" in one_error(r, 124)

    r = jq(jobq_env, "wait", str(stuck), "--timeout", "0.2s", "--json")
    out = json.loads(r.stdout)
    assert (r.returncode, out["timed_out"], out["jobs"][0]["state"]) == (124, True, "pending")

    r = jq(jobq_env, "wait", str(ok), "--json")
    out = json.loads(r.stdout)
    assert (r.returncode, out["timed_out"], out["jobs"][0]["id"]) == (0, False, ok)


def test_wait_help_documents_the_timeout_code(jobq_env: dict[str, str]) -> None:
    text = " ".join(jq(jobq_env, "wait", "--help").stdout.split())
    assert "exit 124" in text and "124 if --timeout ran out" in text
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^\| 124 \| .*wait", readme, re.M), "README exit-code table"


# ---- delete --------------------------------------------------------------------------------


def test_delete(jobq_env: dict[str, str], db_path: str) -> None:
    with Queue(db_path) as q:
        done, failed, pending, running = (q.enqueue(t, {}) for t in ("a", "b", "c", "d"))
        cancelled = q.enqueue("e", {})
        q.cancel(cancelled)
    finish(db_path, done, ok=True)
    finish(db_path, failed, ok=False)
    with closing(Store(db_path)) as s:
        s.claim("pool-x/0", time.time(), 30, limit=10)  # c and d run
        s.end_attempt(pending, s.get(pending).lease_token or "", time.time(), Ending.RELEASE)

    r = jq(jobq_env, "delete", str(done), str(failed), str(cancelled))
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"{done} deleted\n{failed} deleted\n{cancelled} deleted\n"
    with Queue(db_path) as q:
        assert q.count() == 2 and q.attempts(done) == []

    before = Path(db_path).read_bytes()
    assert "use --force" in one_error(jq(jobq_env, "delete", str(pending)), 1)
    assert "cancel it first" in one_error(jq(jobq_env, "delete", "--force", str(running)), 1)
    assert "no job 999" in one_error(jq(jobq_env, "delete", "999"), 1)
    one_error(jq(jobq_env, "delete", "abc"), 2)
    one_error(jq(jobq_env, "delete"), 2)
    assert Path(db_path).read_bytes() == before  # refused: nothing written

    r = jq(jobq_env, "delete", "--force", str(pending))
    assert (r.returncode, r.stdout) == (0, f"{pending} deleted\n")
    with Queue(db_path) as q:
        assert [j.id for j in q.list()] == [running]


# ---- prune ---------------------------------------------------------------------------------


def test_prune_needs_a_unit_and_has_a_dry_run(jobq_env: dict[str, str], db_path: str) -> None:
    with Queue(db_path) as q:
        ids = [q.enqueue("t", {}) for _ in range(3)]
    for job_id in ids:
        finish(db_path, job_id, ok=True)

    for bad in ("7", "0", "1.5", "7 days"):
        before = Path(db_path).read_bytes()
        err = one_error(jq(jobq_env, "prune", "--older-than", bad), 2)
        assert "unit" in err or "cannot parse" in err, err
        assert Path(db_path).read_bytes() == before

    r = jq(jobq_env, "prune", "--older-than", "0s", "--dry-run")
    assert (r.returncode, r.stdout) == (0, "would prune 3 jobs (dry run)\n")
    r = jq(jobq_env, "prune", "--older-than", "1d", "--dry-run", "--state", "failed")
    assert r.stdout == "would prune 0 jobs (dry run)\n"
    one_error(jq(jobq_env, "prune", "--older-than", "1d", "--dry-run", "--state", "pending"), 2)
    with Queue(db_path) as q:
        assert q.count() == 3  # a dry run writes nothing
    r = jq(jobq_env, "prune", "--older-than", "0s")
    assert (r.returncode, r.stdout) == (0, "pruned 3 jobs\n")


# ---- pools: workers --prune, and retention ---------------------------------------------------


def _register(
    db_path: str, pool_id: str, beat: float, status: str, proc: str | None = None
) -> None:
    with closing(Store(db_path)) as s:
        s.register_worker(pool_id, name=pool_id, host="h", pid=1, concurrency=1, queues=[],
                          types=["t"], now=beat, proc_key=proc)  # fmt: skip
        s.worker_heartbeat(pool_id, beat, 0, status)


def test_workers_prune_forgets_stopped_and_dead_pools_now(
    jobq_env: dict[str, str], db_path: str
) -> None:
    now = time.time()
    _register(db_path, "stopped", now - 5, "stopped")
    _register(db_path, "dead", now - 3600, "running")  # another host, silent for an hour
    _register(db_path, "alive", now - 3600, "running", lifecycle.proc_key())  # this process
    r = jq(jobq_env, "workers", "--prune")
    assert (r.returncode, r.stdout, r.stderr) == (0, "forgot 2 pools\n", "")
    assert [w["id"] for w in json.loads(jq(jobq_env, "workers", "--json").stdout)] == ["alive"]
    assert json.loads(jq(jobq_env, "workers", "--prune", "--json").stdout) == {"forgotten": []}


# ---- pause ---------------------------------------------------------------------------------


def test_pause_of_an_unused_queue_warns(jobq_env: dict[str, str], db_path: str) -> None:
    with Queue(db_path) as q:
        q.enqueue("t", {}, queue="images")
    r = jq(jobq_env, "pause", "imgaes")
    assert (r.returncode, r.stdout) == (0, "paused queue imgaes\n")
    assert r.stderr == "jobq: warning: no job uses queue 'imgaes'; paused it anyway\n"
    r = jq(jobq_env, "pause", "images")
    assert (r.returncode, r.stdout, r.stderr) == (0, "paused queue images\n", "")
    with Queue(db_path) as q:
        assert q.paused_queues() == ["images", "imgaes"]  # paused all the same


# ---- enqueue --ndjson @FILE ------------------------------------------------------------------


def test_ndjson_reads_at_file(jobq_env: dict[str, str], db_path: str, tmp_path: Path) -> None:
    (tmp_path / "jobs.ndjson").write_text('{"type": "a"}\n{"type": "b", "payload": {"n": 1}}\n')
    r = jq(jobq_env, "enqueue", "--ndjson", "@jobs.ndjson", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "1\n2\n", "")
    with Queue(db_path) as q:
        assert [(j.type, j.payload) for j in q.list()] == [("b", {"n": 1}), ("a", {})]
    err = one_error(jq(jobq_env, "enqueue", "--ndjson", "@missing.ndjson", cwd=tmp_path), 2)
    assert "missing.ndjson" in err
    with Queue(db_path) as q:
        assert q.count() == 2


# ---- jobq work: start-up checks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--exec", "t=/nonexistent/bin/convert-job"], "program /nonexistent/bin/convert-job"),
        (["--exec", "t=no-such-program-for-jobq --x"], "'no-such-program-for-jobq' not found"),
        (["--exec", "t=./data.txt"], "program ./data.txt is not executable"),
        (["--handlers", "handlers.toml"], "'no-such-program-for-jobq' not found on PATH"),
        (["--app", "tasks/x.py"], "give a dotted module name: --app tasks.x"),
        (["--app", "x.py"], "give a dotted module name: --app x"),
        (["--app", "no_such_module_for_jobq"], "cannot import --app no_such_module_for_jobq"),
    ],
)  # fmt: skip
def test_work_start_up_errors_are_one_line_exit_2_nothing_written(
    jobq_env: dict[str, str], db_path: str, tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "data.txt").write_text("not a program")
    (tmp_path / "handlers.toml").write_text('[handlers.t]\ncommand = "no-such-program-for-jobq"\n')
    r = jq(jobq_env, "work", "--burst", *args, cwd=tmp_path)
    assert expected in one_error(r, 2)
    assert "MainProcess" not in r.stderr  # not a log record
    assert not os.path.exists(db_path)  # no queue file created, no pool registered


def test_work_refuses_a_foreign_file_with_one_line(jobq_env: dict[str, str], db_path: str) -> None:
    Path(db_path).write_text("not a queue")
    r = jq(jobq_env, "work", "--burst", "--exec", "t=true")
    assert "is not a jobq queue file" in one_error(r, 1)
    assert Path(db_path).read_text() == "not a queue"


def test_work_with_a_good_command_still_runs(jobq_env: dict[str, str], db_path: str) -> None:
    with Queue(db_path) as q:
        job_id = q.enqueue("t", {})
    r = jq(jobq_env, "work", "--burst", "-c", "1", "--exec", f"t={sys.executable} -c pass")
    assert r.returncode == 0, r.stderr
    with Queue(db_path) as q:
        assert q.get(job_id).state.value == "succeeded"


# ---- systemd-unit --user, db path ----------------------------------------------------------


def test_systemd_unit_user(jobq_env: dict[str, str]) -> None:
    r = jq(jobq_env, "systemd-unit", "--user", "jobq-svc", "--exec", "t=true")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    service = lines[lines.index("[Service]") :]
    assert "User=jobq-svc" in service and "WantedBy=multi-user.target" in lines
    assert "#   cp jobq-worker.service /etc/systemd/system/" in lines
    plain = jq(jobq_env, "systemd-unit", "--exec", "t=true").stdout
    assert "User=" not in plain and "WantedBy=default.target" in plain
    assert "--user" not in jq(jobq_env, "work", "--help").stdout  # systemd-unit's alone
    one_error(jq(jobq_env, "systemd-unit", "--user", "a\nExecStartPre=/bin/evil", "--exec",
                 "t=true"), 2)  # fmt: skip


def test_db_path_prints_the_default_location(jobq_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in jobq_env.items() if k != "JOBQ_DB"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    r = jq(env, "db", "path")
    assert (r.returncode, r.stdout) == (0, f"{tmp_path}/data/jobq/jobq.db\n")
    r = jq({**env, "JOBQ_DB": "/elsewhere/q.db"}, "db", "path", "--demo")
    assert (r.returncode, r.stdout) == (0, f"{tmp_path}/data/jobq/demo.db\n")
    assert not (tmp_path / "data").exists()  # printing it creates nothing


# ---- demo --reset ----------------------------------------------------------------------------


def _demo_env(jobq_env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = {k: v for k, v in jobq_env.items() if k != "JOBQ_DB"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env, tmp_path / "data" / "jobq" / "demo.db"


def _old_demo(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with Queue(str(path)) as q:
        q.enqueue("old.marker", {})


def test_demo_reset_starts_on_a_fresh_queue(jobq_env: dict[str, str], tmp_path: Path) -> None:
    import pty

    env, path = _demo_env(jobq_env, tmp_path)
    env.update(TERM="xterm-256color", COLUMNS="100", LINES="30")
    _old_demo(path)
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "jobq", "demo", "--reset"], env=env,
                            stdin=sub, stdout=sub, stderr=sub,
                            start_new_session=True)  # fmt: skip
    os.close(sub)
    seen = bytearray()

    def drain() -> None:  # a full pty would block the dashboard's writes
        try:
            while chunk := os.read(main, 65536):
                seen.extend(chunk)
        except OSError:
            pass  # the demo exited: EIO on the main side

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:

        def reseeded() -> bool:
            try:
                with Queue(str(path), create=False) as q:
                    return q.count(type="old.marker") == 0 and q.count() > 50
            except (jobq.JobqError, OSError):
                return False  # not there yet, or being deleted and created

        wait_until(reseeded, timeout=60, what="a fresh, seeded demo queue")
        wait_until(lambda: len(seen) > 1000, timeout=30, what="the dashboard on screen")
        os.write(main, b"q")
        assert proc.wait(60) == 0
    finally:
        kill_all([proc])
        reader.join(10)
        os.close(main)


def test_demo_reset_refuses_while_a_demo_pool_runs(
    jobq_env: dict[str, str], tmp_path: Path
) -> None:
    env, path = _demo_env(jobq_env, tmp_path)
    _old_demo(path)
    _register(str(path), "demo", time.time(), "running", lifecycle.proc_key())  # this process
    before = path.read_bytes()
    assert "still runs on" in one_error(jq(env, "demo", "--reset"), 1)
    assert path.read_bytes() == before


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_pause_of_a_bad_queue_name_writes_nothing(
    jobq_env: dict[str, str], db_path: str, command: str
) -> None:
    assert "whitespace" in one_error(jq(jobq_env, command, "a b"), 2)
    assert not os.path.exists(db_path)
