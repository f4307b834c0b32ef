"""Bad input to `jobq enqueue` (issue 2): exit 2, one line on stderr, no traceback, nothing written.

Each case runs the real CLI in a subprocess against a queue file that already holds one job.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from jobq import Queue


def _count(db_path: str) -> int:
    with Queue(db_path) as q:
        return sum(q.counts().values())


@pytest.fixture
def seeded(db_path: str) -> str:
    with Queue(db_path) as q:
        q.enqueue("seed")
    return db_path


def _run(
    cmd: list[str], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, input=stdin, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode("utf-8", "replace")
    )


DEEP = "[" * 100_000 + "]" * 100_000
GOOD = b'{"type": "ok", "payload": {"n": 1}}\n'

# (case id, arguments after `enqueue`, stdin, extra environment, text the message must contain)
BAD: list[tuple[str, list[str], bytes, dict[str, str], str]] = [
    ("invalid-json", ["t", "--payload", "{bad"], b"", {}, "invalid JSON"),
    ("nan", ["t", "--payload", '{"a": NaN}'], b"", {}, "NaN"),
    ("infinity", ["t", "--payload", "[Infinity]"], b"", {}, "Infinity"),
    ("1e400", ["t", "--payload", "[1e400]"], b"", {}, "out of range"),
    ("duplicate-keys", ["t", "--payload", '{"a": 1, "a": 2}'], b"", {}, "duplicate key"),
    ("deep-nesting", ["t", "--payload", "-"], DEEP.encode(), {}, "nested"),
    ("5000-digit-int", ["t", "--payload", "1" * 5000], b"", {}, "digits"),
    ("non-utf8-stdin", ["t", "--payload", "-"], b'{"a": "\xff\xfe"}', {}, "UTF-8"),
    ("lone-surrogate", ["t", "--payload", '"\\ud800"'], b"", {}, "surrogate"),
    ("over-limit-env", ["t", "--payload", json.dumps({"a": "x" * 200})], b"",
     {"JOBQ_PAYLOAD_LIMIT": "100"}, "limit"),
    ("over-default-limit", ["t", "--payload", "-"],
     json.dumps({"a": "x" * (1024 * 1024)}).encode(), {}, "limit"),
    ("unknown-priority", ["t", "--priority", "urgent"], b"", {}, "unknown priority"),
    ("bad-delay", ["t", "--delay", "soon"], b"", {}, "delay"),
    ("bad-at", ["t", "--at", "tomorrow at noon"], b"", {}, "cannot parse time"),
    ("empty-type", [""], b"", {}, "empty"),
    ("long-type", ["t" * 201], b"", {}, "limit is 200"),
    ("type-with-space", ["email send"], b"", {}, "whitespace"),
    ("type-with-control", ["email\x07send"], b"", {}, "control"),
    ("missing-file", ["t", "--payload", "@/nonexistent/payload.json"], b"", {}, "cannot read"),
    ("ndjson-bad-json-in-middle", ["--ndjson", "-"], GOOD + b"{oops\n" + GOOD, {}, "line 2"),
    ("ndjson-bad-type-in-middle", ["--ndjson", "-"],
     GOOD + b"\n" + b'{"type": "a b"}\n' + GOOD, {}, "line 3"),
    ("ndjson-unknown-field", ["--ndjson", "-"], GOOD * 3 + b'{"type": "x", "prio": 1}\n', {},
     "line 4"),
    ("ndjson-not-object", ["--ndjson", "-"], GOOD + b"[1, 2]\n", {}, "line 2"),
    ("ndjson-nan", ["--ndjson", "-"], GOOD + b'{"type": "x", "payload": NaN}\n', {}, "line 2"),
    # every bad payload of the single enqueue, on one line of a batch of good ones
    ("ndjson-1e400", ["--ndjson", "-"], GOOD * 2 + b'{"type": "x", "payload": [1e400]}\n' + GOOD,
     {}, "line 3: invalid JSON: number 1e400 is out of range"),
    ("ndjson-duplicate-key-in-payload", ["--ndjson", "-"],
     GOOD + b'{"type": "x", "payload": {"a": 1, "a": 2}}\n', {}, "line 2: invalid JSON: duplicate"),
    ("ndjson-duplicate-field", ["--ndjson", "-"], GOOD + b'{"type": "x", "type": "y"}\n', {},
     "line 2: invalid JSON: duplicate key 'type'"),
    ("ndjson-deep-nesting", ["--ndjson", "-"],
     GOOD + b'{"type": "x", "payload": ' + DEEP.encode() + b"}\n", {}, "line 2: invalid JSON"),
    ("ndjson-5000-digit-int", ["--ndjson", "-"],
     GOOD + b'{"type": "x", "payload": ' + b"1" * 5000 + b"}\n", {}, "line 2: invalid JSON"),
    ("ndjson-lone-surrogate", ["--ndjson", "-"], GOOD + b'{"type": "x", "payload": "\\ud800"}\n',
     {}, "line 2: payload contains a lone surrogate"),
    ("ndjson-non-utf8", ["--ndjson", "-"], GOOD + b'{"type": "x", "payload": "\xff"}\n', {},
     "line 2 is not valid UTF-8"),
    ("ndjson-over-limit", ["--ndjson", "-"], GOOD + json.dumps({"type": "x", "payload": "x" * 200})
     .encode() + b"\n", {"JOBQ_PAYLOAD_LIMIT": "100"}, "line 2: payload is 202 bytes"),
    ("ndjson-unknown-priority", ["--ndjson", "-"], GOOD + b'{"type": "x", "priority": "urgent"}\n',
     {}, "line 2: unknown priority"),
    ("ndjson-type-not-a-string", ["--ndjson", "-"], GOOD + b'{"type": ["x"]}\n', {},
     "line 2: job type must be a string"),
    ("ndjson-bad-delay", ["--ndjson", "-"], GOOD + b'{"type": "x", "delay": "soon"}\n', {},
     "line 2: cannot parse delay"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "stdin", "env_extra", "expected"),
                         [c[1:] for c in BAD], ids=[c[0] for c in BAD])  # fmt: skip
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    seeded: str,
    jobq_env: dict[str, str],
    jobq_cmd: list[str],
    args: list[str],
    stdin: bytes,
    env_extra: dict[str, str],
    expected: str,
) -> None:
    before = _count(seeded)
    proc = _run([*jobq_cmd, "enqueue", *args], {**jobq_env, **env_extra}, stdin)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("jobq: error: ")
    assert expected in lines[0]
    assert "\x07" not in proc.stderr  # a control character in the input is shown, not sent
    assert _count(seeded) == before


def test_bad_input_on_a_new_path_creates_no_file(
    db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    proc = _run([*jobq_cmd, "enqueue", "t", "--payload", "{bad"], jobq_env)
    assert proc.returncode == 2
    assert not Path(db_path).exists()


def test_payload_as_argument(db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]) -> None:
    proc = _run([*jobq_cmd, "enqueue", "t", "--payload", '{"a": [1, "é"]}'], jobq_env)
    assert proc.returncode == 0, proc.stderr
    job_id = int(proc.stdout)
    assert proc.stdout == f"{job_id}\n"
    with Queue(db_path) as q:
        assert q.get(job_id).payload == {"a": [1, "é"]}


def test_payload_from_stdin(db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]) -> None:
    proc = _run([*jobq_cmd, "enqueue", "t", "--payload", "-"], jobq_env, b'{"from": "stdin"}\n')
    assert proc.returncode == 0, proc.stderr
    with Queue(db_path) as q:
        assert q.get(int(proc.stdout)).payload == {"from": "stdin"}


def test_payload_from_file(
    db_path: str, tmp_path: Path, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    f = tmp_path / "payload.json"
    f.write_text('{"from": "file"}')
    proc = _run([*jobq_cmd, "enqueue", "t", f"--payload=@{f}", "--json"], jobq_env)
    assert proc.returncode == 0, proc.stderr
    job_id = json.loads(proc.stdout)["id"]
    with Queue(db_path) as q:
        assert q.get(job_id).payload == {"from": "file"}


def test_ndjson_of_1000_lines(db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]) -> None:
    lines = [
        json.dumps({"type": f"t{i % 3}", "payload": {"i": i}, "priority": "high" if i % 2 else 0,
                    "queue": "bulk", "delay": "1m" if i == 7 else None,
                    "unique_key": None, "max_attempts": 2, "timeout": "10s"})
        for i in range(1000)
    ]  # fmt: skip
    data = ("\n".join(lines[:500]) + "\n\n" + "\n".join(lines[500:])).encode()
    proc = _run([*jobq_cmd, "enqueue", "--ndjson", "-"], jobq_env, data)
    assert proc.returncode == 0, proc.stderr
    ids = [int(x) for x in proc.stdout.split()]
    assert len(ids) == 1000 and ids == sorted(ids)
    with Queue(db_path) as q:
        assert q.counts()["pending"] == 1000
        job = q.get(ids[1])
        assert (job.payload, job.priority, job.queue, job.max_attempts, job.timeout) == (
            {"i": 1}, 10, "bulk", 2, 10.0
        )  # fmt: skip
        assert q.get(ids[7]).run_at > q.get(ids[6]).run_at + 30
