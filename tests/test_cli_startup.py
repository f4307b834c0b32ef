"""The everyday commands start fast: `ls`, `show`, `stats`, `retry`, `cancel` and `wait` run
without typer (jobq.cli.fast), from the same declarations the typer app uses, and behave exactly
as the typer app does.

The import budget is checked in a fresh interpreter, where sys.modules tells the truth: a test
fails if someone puts typer, click, rich, textual, typing, subprocess or ctypes back on these
paths (each costs milliseconds that a shell loop pays at every call).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from jobq import Queue
from jobq.cli import app as cliapp
from jobq.cli import fast

# never on the fast commands' start-up
HEAVY = ("typer", "click", "rich", "textual", "typing", "subprocess", "ctypes", "watchfiles",
         "dataclasses", "inspect")  # fmt: skip


@pytest.fixture
def filled(db_path: str) -> str:
    with Queue(db_path) as q:
        ids = q.enqueue_many([("t", {"i": i}) for i in range(5)])
        q.cancel_many(ids[:3])  # 1-3 cancelled; 4, 5 pending
        q.enqueue("u", {"i": 9}, priority="high", queue="other")
    return db_path


def _modules_after(db: str, args: list[str], env: dict[str, str]) -> set[str]:
    code = (
        "import sys\n"
        "from jobq.cli import main\n"
        "try:\n"
        f"    main({['--db', db, *args]!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write('\\nMODULES ' + ' '.join(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    return set(out.stderr.rsplit("MODULES ", 1)[1].split())


@pytest.mark.parametrize(
    "args",
    [
        ["ls"],
        ["ls", "--json", "-n", "2"],
        ["show", "1"],
        ["stats"],
        ["wait", "1", "2"],
        ["cancel", "4"],
        ["retry", "1"],
        ["show", "4"],
        ["logs", "4"],
    ],
    ids=lambda a: " ".join(a),
)
def test_everyday_commands_load_nothing_heavy(
    filled: str, jobq_env: dict[str, str], args: list[str]
) -> None:
    loaded = {m.split(".")[0] for m in _modules_after(filled, args, jobq_env)}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    "args",
    [["ls"], ["show", "1"], ["show", "6"], ["stats"], ["wait", "1", "2"], ["cancel", "4"],
     ["retry", "1"]],
    ids=lambda a: " ".join(a),
)  # fmt: skip
def test_everyday_commands_load_neither_json_nor_re(
    filled: str, jobq_env: dict[str, str], args: list[str]
) -> None:
    """~3 ms of a ~35 ms start (issue 15): payloads are shown as stored (`show` indents them
    with jobq.prettyjson), a pool's lists are unpacked by SQLite, text is checked for unsafe
    characters without a regex when it is printable ASCII."""
    with Queue(filled) as q:
        q.backend.register_worker("pool-1", name="pool-1", host="h", pid=1, concurrency=2,
                                  queues=["default"], types=["t", "u"], type_globs=["img.*"],
                                  now=time.time())  # fmt: skip
    loaded = _modules_after(filled, args, jobq_env)
    assert not loaded & {"json", "re"}, sorted(loaded & {"json", "re"})
    if args[0] in ("ls", "show", "stats", "wait"):  # the read commands load no writer's parts
        writers = {"jobq.cli.actions", "jobq.store.sqlite.turnstile", "jobq.store.sqlite.admin",
                   "jobq.limits", "jobq.edits", "bisect"}  # fmt: skip
        assert not loaded & writers, sorted(loaded & writers)


def test_root_help_loads_nothing_heavy(jobq_env: dict[str, str]) -> None:
    """`jobq --help` / `jobq -h` / a bare `jobq`: the text typer would print (see
    tests/test_help_texts.py), without typer."""
    for argv in (["--help"], ["-h"], []):
        code = (
            "import sys, json\n"
            "from jobq.cli import main\n"
            "try:\n"
            f"    main({argv!r})\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "sys.stderr.write('\\nMODULES ' + json.dumps(list(sys.modules)))\n"
        )
        env = dict(jobq_env, COLUMNS="80")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0 and out.stdout.startswith("Usage: jobq"), out.stderr
        loaded = {m.split(".")[0] for m in json.loads(out.stderr.rsplit("MODULES ", 1)[1])}
        assert not loaded & set(HEAVY), (argv, sorted(loaded & set(HEAVY)))


def test_help_and_mistakes_still_go_to_typer(filled: str, jobq_env: dict[str, str]) -> None:
    assert "typer" in {m.split(".")[0] for m in _modules_after(filled, ["ls", "--help"], jobq_env)}
    assert "typer" in {m.split(".")[0] for m in _modules_after(filled, ["ls", "-n", "x"], jobq_env)}


# The same command lines through both paths: same stdout, stderr and exit code. Lines the fast
# path does not take (usage errors, --help) are included: it must hand them over, not guess.
LINES = [
    "ls",
    "ls --json",
    "ls -s pending",
    "ls --state=cancelled --limit 2",
    "ls -t 'u' -q other",
    "ls --search i",
    "ls -n 0",
    "ls -n 1x",
    "ls --nope",
    "show 5",
    "show 5 --json",
    "show 99",
    "show x",
    "show",
    "stats",
    "stats --json",
    "wait 1 2",
    "wait 1 -- 2",
    "wait 99",
    "wait",
    "wait 4 --timeout 0",
    "cancel 4 5",
    "cancel 1",
    "cancel",
    "retry 1 2",
    "retry 4",
    "retry",
    "retry --all-failed",
    "retry 1 --type x",
    "logs 5",
    "logs 5 --attempt 1 --raw",
    "logs 5 --attempt 0",
    "logs 5 --raw --escape",
    "logs 99",
    "logs",
    "logs x",
]


def _both(db: str, line: str, capsys: pytest.CaptureFixture[str]) -> list[tuple[int, str, str]]:
    import shlex

    args = shlex.split(line)
    results = []
    for runner in ("fast", "typer"):
        with Queue(db) as q:  # the same starting point for both runs
            q.backend.retry([1, 2, 3, 4, 5, 6], 0.0)
            q.backend.cancel([1, 2, 3], 0.0)
        if runner == "fast":
            try:
                code = fast.run(db, args[0], args[1:]) if args else None
                if code is None:
                    code = cliapp._run_typer(["--db", db, *args])
            except Exception as e:  # a JobqError: main() turns it into a line and a code
                code = _error_code(e)
        else:
            try:
                code = cliapp._run_typer(["--db", db, *args])
            except Exception as e:
                code = _error_code(e)
        out, err = capsys.readouterr()
        results.append((code, _no_ages(out), _no_ages(err)))
    return results


def _error_code(e: Exception) -> int:
    from jobq.errors import JobqError

    if not isinstance(e, JobqError):
        raise e
    sys.stderr.write(f"error: {e}\n")
    return e.exit_code


def _no_ages(text: str) -> str:
    # "3s ago" / run_at timestamps move between the two runs
    import re

    return re.sub(r"\d+(\.\d+)?(ms|s|m|h|d)( ago)?|\d{4}-\d\d-\d\dT[\d:.]+Z|\d{10}\.\d+", "T", text)


@pytest.mark.parametrize("line", LINES)
def test_the_fast_path_behaves_as_the_typer_app(
    filled: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fast_result, typer_result = _both(filled, line, capsys)
    assert fast_result == typer_result


def test_the_fast_path_takes_the_everyday_command_lines(filled: str) -> None:
    # not a vacuous parity test: these really run without typer
    for line in (
        "ls",
        "ls --json -n 2 -s pending",
        "show 5",
        "stats --json",
        "wait 1 2",
        "logs 5 --attempt 1 --escape",
    ):
        args = line.split()
        func = getattr(__import__(f"jobq.cli.{fast.COMMANDS[args[0]][0]}",
                                  fromlist=["x"]), args[0])  # fmt: skip
        params = fast.params_of(func)
        assert params is not None and fast.parse(params, args[1:]) is not None, line


def test_the_fast_parser_reads_the_typer_declarations() -> None:
    from jobq.cli import jobs

    params = fast.params_of(jobs.ls)
    assert params is not None
    flags = {str(f): p.name for p in params for f in p.decl.flags if p.decl.kind == "option"}
    assert flags == {"--state": "state", "-s": "state", "--type": "type_", "-t": "type_",
                     "--queue": "queue", "-q": "queue", "--search": "search",
                     "--where": "where", "-w": "where", "--since": "since", "--until": "until",
                     "--limit": "limit", "-n": "limit", "--json": "as_json"}  # fmt: skip
    assert fast.parse(params, ["-n", "3", "--json"]) == {
        "state": None,
        "type_": None,
        "queue": None,
        "search": None,
        "where": None,
        "since": None,
        "until": None,
        "limit": 3,
        "as_json": True,
    }


def test_records_are_frozen_dataclasses_to_every_reader(filled: str) -> None:
    """The read path's records are built without `dataclasses` (jobq.model.record), yet behave
    as the frozen dataclasses DESIGN.md promises: fields, replace, asdict, pickle, equality."""
    import copy
    import dataclasses
    import pickle

    from jobq.model import Job

    with Queue(filled) as q:
        job = q.get(4)
    assert dataclasses.is_dataclass(Job) and dataclasses.is_dataclass(job)
    assert [f.name for f in dataclasses.fields(job)][:3] == ["id", "type", "queue"]
    later = dataclasses.replace(job, priority=7)
    assert later.priority == 7 and later.id == job.id and later != job
    assert dataclasses.asdict(job)["payload_json"] == job.payload_json
    assert pickle.loads(pickle.dumps(job)) == job == copy.deepcopy(job)
    assert hash(job) == hash(copy.copy(job)) and repr(job).startswith("Job(id=4, type='t'")
    with pytest.raises(dataclasses.FrozenInstanceError.__mro__[1]):  # an AttributeError
        job.priority = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        job.not_a_field  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(job, "__dict__")  # slotted
