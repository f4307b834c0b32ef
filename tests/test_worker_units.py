"""The parts of a worker that run in-process: executor, command runner, loader, systemd helpers."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from jobq.errors import HandlerError
from jobq.model import Job, JobState
from jobq.pool.commands import command_env, run_command, stdout_to_result
from jobq.pool.executor import Executor, TailBuffer, result_to_json
from jobq.pool.loader import handlers_from_toml, load_handlers, parse_exec, split_command
from jobq.pool.settings import PoolSettings
from jobq.pool.systemd import Notifier, quote_arg, quote_env, render_unit


def make_job(payload: object = None, **kw: object) -> Job:
    fields: dict[str, object] = {
        "id": 7, "type": "t", "queue": "default", "payload_json": json.dumps(payload),
        "priority": 0, "state": JobState.RUNNING, "run_at": 0.0, "attempts": 1,
        "max_attempts": None, "timeout": None, "unique_key": None, "result_json": None,
        "last_error": None, "created_at": 0.0, "started_at": 0.0, "finished_at": None,
        "worker_id": "w/1", "lease_token": "tok", "lease_until": 10.0, "cancel_requested": False,
    }  # fmt: skip
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


# ---- executor ------------------------------------------------------------------------------------


def test_executor_captures_print_stderr_and_logging_per_job() -> None:
    import logging

    ex = Executor()

    def chatty(payload: object, job: Job) -> dict[str, object]:
        print("to stdout")
        print("to stderr", file=sys.stderr)
        logging.getLogger("x").warning("logged")
        return {"payload": payload}

    r = ex.run(chatty, make_job({"a": 1}))
    assert r.ok and json.loads(r.result_json or "") == {"payload": {"a": 1}}
    assert r.output is not None
    assert "to stdout" in r.output and "to stderr" in r.output and "WARNING x: logged" in r.output
    # the next attempt starts with an empty capture, and the real streams are restored
    r2 = ex.run(lambda p, j: None, make_job())
    assert r2.ok and r2.output is None and r2.result_json is None
    assert sys.stdout is sys.__stdout__ or "pytest" in type(sys.stdout).__module__


def test_executor_exception_gives_summary_and_traceback() -> None:
    def bad(payload: object, job: Job) -> None:
        print("before")
        raise KeyError("missing")

    r = Executor().run(bad, make_job())
    assert not r.ok
    assert r.error == "KeyError: 'missing'"
    assert r.traceback is not None
    assert "Traceback" in r.traceback and "raise KeyError" in r.traceback
    assert r.output == "before\n"


def test_executor_long_traceback_keeps_its_end_and_says_how_much_was_dropped() -> None:
    def deep(payload: object, job: Job) -> None:
        raise ValueError("v" * 100_000)

    r = Executor().run(deep, make_job())
    assert r.traceback is not None and r.traceback.endswith("v" * 100 + "\n")
    marker = re.match(r"\[… ([\d,]+) earlier characters dropped\]\n", r.traceback)
    assert marker is not None and int(marker[1].replace(",", "")) > 30_000
    assert len(r.traceback) - len(marker[0]) == 64 * 1024  # the last 64 KiB, whole


def test_executor_non_json_result_fails_clearly() -> None:
    r = Executor().run(lambda p, j: {"x": object()}, make_job())
    assert not r.ok and r.error is not None and "not JSON-serialisable" in r.error
    r = Executor().run(lambda p, j: float("nan"), make_job())
    assert not r.ok


def test_result_is_size_capped_with_a_marker() -> None:
    text = result_to_json("x" * 200_000)
    assert text is not None and len(text) < 5000
    marker = json.loads(text)
    assert marker["truncated"] is True and marker["chars"] == 200_002


def test_tail_buffer_keeps_the_last_characters() -> None:
    buf = TailBuffer(limit=100)
    for i in range(1000):
        buf.write(f"{i:04d}\n")
    value = buf.getvalue()
    assert value is not None and value.endswith("0999\n")
    assert "earlier characters dropped" in value
    assert len(value) < 200


# ---- command handlers ----------------------------------------------------------------------------


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_command_gets_payload_on_stdin_and_json_stdout_is_the_result(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        "c.py",
        """
        import json, sys
        data = json.load(sys.stdin)
        print(json.dumps({"text": data["text"], "big": len(data["big"])}))
        print("progress note", file=sys.stderr)
    """,
    )
    payload = {"text": "$(rm -rf /); `x`", "big": "y" * 300_000}  # bigger than a pipe buffer
    r = run_command(argv, payload_json=json.dumps(payload), env=dict(os.environ))
    assert r.ok, r.error
    assert json.loads(r.result_json or "") == {"text": payload["text"], "big": 300_000}
    assert r.output == "progress note\n"


def test_command_text_stdout_is_a_string_result(tmp_path: Path) -> None:
    argv = script(tmp_path, "c.py", "print('plain text, not JSON')\n")
    r = run_command(argv, payload_json="null", env=dict(os.environ))
    assert r.ok and json.loads(r.result_json or "") == "plain text, not JSON"
    assert stdout_to_result(b"", False) is None
    assert json.loads(stdout_to_result(b"NaN", False) or "") == "NaN"


def test_command_failure_keeps_stderr_tail_as_error(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        "c.py",
        """
        import sys
        for i in range(20000):
            print(f"noise line {i}", file=sys.stderr)
        print("disk quota exceeded", file=sys.stderr)
        sys.exit(3)
    """,
    )
    r = run_command(argv, payload_json="{}", env=dict(os.environ))
    assert not r.ok
    assert r.error == "command exited with status 3: disk quota exceeded"
    assert r.traceback is not None and r.traceback.endswith("disk quota exceeded\n")
    assert len(r.traceback) < 70_000 and "earlier bytes dropped" in r.traceback


def test_command_environment(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        "c.py",
        """
        import json, os
        env = os.environ.items()
        print(json.dumps({k: v for k, v in env if k.startswith(("JOBQ_", "NOTIFY"))}))
    """,
    )
    env = command_env(12, "resize", 3, "rel/q.db")
    r = run_command(argv, payload_json="{}", env=env)
    assert json.loads(r.result_json or "") == {
        "JOBQ_JOB_ID": "12",
        "JOBQ_JOB_TYPE": "resize",
        "JOBQ_ATTEMPT": "3",
        "JOBQ_DB": os.path.abspath("rel/q.db"),
    }


def test_command_not_found_and_signal_deaths(tmp_path: Path) -> None:
    r = run_command(["/nonexistent/cmd"], payload_json="{}", env=dict(os.environ))
    assert not r.ok and r.error is not None and "cannot run '/nonexistent/cmd'" in r.error
    argv = script(tmp_path, "c.py", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)\n")
    r = run_command(argv, payload_json="{}", env=dict(os.environ))
    assert r.error == "command killed by signal 15 (SIGTERM)"


def test_command_that_ignores_stdin_and_leaves_a_daemon_holding_stdout(tmp_path: Path) -> None:
    argv = [
        *script(
            tmp_path,
            "c.py",
            """
        import subprocess, sys
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        open(sys.argv[1], "w").write(str(p.pid))
        print('"done"')
    """,
        ),
        str(tmp_path / "daemon.pid"),
    ]
    started: list[int] = []
    r = run_command(argv, payload_json=json.dumps("x" * 500_000), env=dict(os.environ),
                    on_start=started.append)  # fmt: skip
    assert r.ok and r.result_json == '"done"'
    assert started and started[0] > 0
    os.killpg(started[0], 9)  # the daemon is in the command's process group


# ---- loader --------------------------------------------------------------------------------------


def test_handlers_file(tmp_path: Path) -> None:
    path = tmp_path / "handlers.toml"
    path.write_text(
        textwrap.dedent("""
        [handlers.resize]
        command = "convert -resize '50%' - -"
        timeout = "1m"
        max_attempts = 3

        [handlers."email.send"]
        command = ["sendmail", "-t"]
    """)
    )
    found = handlers_from_toml(str(path))
    assert found["resize"].command == ("convert", "-resize", "50%", "-", "-")
    assert found["resize"].timeout == 60 and found["resize"].max_attempts == 3
    assert found["email.send"].command == ("sendmail", "-t")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "not valid TOML"),
        ("[other]\nx = 1\n", "no [handlers.TYPE] table"),
        ('[handlers.a]\ntimeout = "1m"\n', "needs command"),
        ('[handlers.a]\ncommand = "x"\ntimeout = "soon"\n', "cannot parse timeout"),
        ('[handlers.a]\ncommand = "x"\nmax_attempts = 0\n', "max_attempts"),
        ('[handlers.a]\ncommand = "x"\nretries = 2\n', "unknown key 'retries'"),
        ('[handlers."has space"]\ncommand = "x"\n', "type"),
        ('[handlers.a]\ncommand = "x \'unclosed"\n', "cannot parse command"),
    ],
)
def test_bad_handlers_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "h.toml"
    path.write_text(text)
    with pytest.raises(HandlerError, match=re.escape(message)):
        handlers_from_toml(str(path))


def test_exec_specs_and_app_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_exec("resize=convert a b") == ("resize", "convert a b")
    with pytest.raises(HandlerError, match="TYPE=COMMAND"):
        parse_exec("resize")
    assert split_command("t", "a 'b c' \"d\"") == ("a", "b c", "d")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "myapp_for_loader_test.py").write_text(
        "import jobq\n@jobq.handler('from.cwd')\ndef f(p, j):\n    return 1\n"
    )
    (tmp_path / "broken_app_for_loader_test.py").write_text("raise RuntimeError('oops')\n")
    found = load_handlers(["myapp_for_loader_test"], [("shell.thing", "echo hi")])
    assert found["from.cwd"].func is not None
    assert found["shell.thing"].command == ("echo", "hi")
    with pytest.raises(HandlerError, match="cannot import --app no_such_module_xyz"):
        load_handlers(["no_such_module_xyz"])
    with pytest.raises(HandlerError, match="RuntimeError: oops"):
        load_handlers(["broken_app_for_loader_test"])


# ---- systemd -------------------------------------------------------------------------------------


def test_notifier_abstract_socket_and_environment_removal() -> None:
    name = f"jobq-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000", "OTHER": "1"}
        n = Notifier.from_environ(env)
        assert env == {"OTHER": "1"}
        assert n.watchdog_interval == 1.5
        assert n.notify("READY=1", "STATUS=up")
        assert sock.recv(1024) == b"READY=1\nSTATUS=up"
        assert n.status("two\nlines")
        assert sock.recv(1024) == b"STATUS=two lines"
        n.close()
    off = Notifier.from_environ({})
    assert not off.enabled and not off.notify("READY=1") and off.watchdog_interval is None
    other_pid = Notifier.from_environ(
        {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    assert other_pid.watchdog_interval is None


def test_systemd_quoting() -> None:
    assert quote_arg("/usr/bin/jobq") == "/usr/bin/jobq"
    assert quote_arg("a b") == '"a b"'
    assert quote_arg('say "hi" $HOME 100%') == '"say \\"hi\\" $$HOME 100%%"'
    assert quote_arg("back\\slash") == '"back\\\\slash"'
    assert quote_env("JOBQ_DB", "/srv/my q%.db") == '"JOBQ_DB=/srv/my q%%.db"'


def test_render_unit(tmp_path: Path) -> None:
    settings = PoolSettings(db_path=str(tmp_path / "q.db"), concurrency=4, shutdown_timeout=45)
    unit = render_unit(
        settings,
        argv=["-c", "4", "--exec", "resize=convert in out", "--shutdown-timeout", "45"],
        executable=["/opt/jobq/bin/jobq"],
        working_directory="/srv/app",
    )
    lines = unit.splitlines()
    assert lines[0].startswith("#")
    assert "Type=notify" in lines and "KillMode=mixed" in lines and "Restart=on-failure" in lines
    assert "TimeoutStopSec=60" in lines
    assert f"Environment=JOBQ_DB={tmp_path / 'q.db'}" in lines
    assert "WorkingDirectory=/srv/app" in lines
    assert any(ln.startswith("WatchdogSec=") for ln in lines)
    exec_line = next(ln for ln in lines if ln.startswith("ExecStart="))
    assert exec_line == (
        f"ExecStart=/opt/jobq/bin/jobq --db {tmp_path / 'q.db'} work -c 4 "
        '--exec "resize=convert in out" --shutdown-timeout 45'
    )
    derived = render_unit(PoolSettings(db_path="q.db", concurrency=2, apps=("app",)),
                          executable=["/x/jobq"])  # fmt: skip
    assert "work --concurrency 2 --app app --shutdown-timeout 30s --lease 30s" in derived
    assert os.path.abspath("q.db") in derived


def test_a_second_connection_in_a_process_keeps_the_first_ones_locks(db_path: str) -> None:
    """Opening a second Store used to read the file header with open()/close(), which dropped
    every POSIX lock of the process: a worker closing its connection then deleted the WAL that
    the first Store was writing to, and its commits vanished ("disk I/O error")."""
    import subprocess

    from jobq.store import Store

    first = Store(db_path)
    second = Store(db_path)
    try:
        code = f"from jobq.store import Store; Store({db_path!r}).close()"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
        with first._write() as conn:
            conn.execute("INSERT INTO queues (name, paused) VALUES ('q', 1)")
        code = (f"from jobq.store import Store; s = Store({db_path!r}); "
                "assert s.paused_queues() == ['q'], s.paused_queues()")  # fmt: skip
        subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
        assert second.paused_queues() == ["q"]
    finally:
        second.close()
        first.close()
