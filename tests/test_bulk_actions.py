"""`jobq retry|cancel|priority` with `ls`'s filters instead of ids, on every backend: refused
without a filter, --dry-run writes nothing, batches of 500, the store's own per-job outcomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from jobq import Queue
from jobq.backend import ClaimFilter
from jobq.cli import bulk
from tests.conftest import ROOT


def _jobq(location: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "jobq", "--db", location, *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _everything(location: str) -> list[dict[str, object]]:
    """Every job as `--json` shows it: the store before and after, to compare."""
    with Queue(location) as q:
        return [j.to_dict() for j in q.list(limit=100_000, order="oldest")]


def _seed(location: str) -> dict[str, int]:
    """Pending, cancelled and running jobs of two kinds of payload."""
    with Queue(location) as q:
        ids = {
            "p1": q.enqueue("mail", {"user": {"id": 42}, "kind": "test"}),
            "p2": q.enqueue("mail", {"user": {"id": 42}, "kind": "prod"}),
            "p3": q.enqueue("resize", {"user": {"id": 7}}),
            "c1": q.enqueue("mail", {"user": {"id": 42}}),
            "c2": q.enqueue("resize", {"user": {"id": 7}}),
            "r1": q.enqueue("run", {"user": {"id": 42}}),
        }
        q.cancel_many([ids["c1"], ids["c2"]])
        claimed = q.backend.claim("w1", time.time(), 60, ClaimFilter(types=("run",)))
        assert [j.id for j in claimed] == [ids["r1"]]
    return ids


@pytest.mark.parametrize("command", [["retry"], ["cancel"], ["priority", "high"]])
def test_no_ids_and_no_filter_is_refused(location: str, command: list[str]) -> None:
    _seed(location)
    before = _everything(location)
    r = _jobq(location, *command)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.startswith("jobq: error: give job ids, or select jobs with --state")
    assert r.stderr.count("\n") == 1
    r = _jobq(location, *command, "--dry-run")
    assert r.returncode == 2 and r.stdout == ""
    assert _everything(location) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cancel", "1", "--where", "payload.n=1"], "give job ids or filters, not both"),
        (["retry", "1", "--since", "1h"], "give job ids or filters, not both"),
        (["priority", "1", "5", "--type", "mail"], "give job ids or filters, not both"),
        (["cancel", "1", "--dry-run"], "--dry-run previews a selection by filters"),
        (["retry", "--state", "pending"], "retry acts on failed or cancelled jobs"),
        (["priority", "--state", "running", "5"], "priority acts on pending jobs"),
        (["cancel", "--where", "payload.=1"], "bad --where"),
        (["retry", "--all-failed", "--state", "cancelled"], "--all-failed is --state failed"),
        (["priority", "x", "5"], "job ids are integers"),
        (["priority", "--where", "payload.n=1", "urgent"], "urgent"),
    ],
)
def test_bad_bulk_input_is_one_line_exit_2_nothing_written(
    location: str, args: list[str], message: str
) -> None:
    _seed(location)
    before = _everything(location)
    r = _jobq(location, *args)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert _everything(location) == before


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["cancel", "--where", "payload.user.id=42"], ["p1", "p2", "r1"]),
        (["retry", "--where", "payload.user.id=42"], ["c1"]),
        (["retry", "--type", "resize"], ["c2"]),
        (["priority", "--where", "payload.kind!=test", "high"], ["p2", "p3"]),
        (["cancel", "--since", "1h", "--state", "running"], ["r1"]),
        (["cancel", "--until", "1h"], []),
    ],
)
def test_dry_run_counts_shows_first_ids_writes_nothing(
    location: str, args: list[str], shown: list[str]
) -> None:
    ids = _seed(location)
    before = _everything(location)
    r = _jobq(location, *args, "--dry-run")
    assert r.returncode == 0, r.stderr
    n = len(shown)
    assert r.stdout.startswith(f"would {bulk.VERBS[args[0]]} {n} job")
    if shown:
        assert r.stdout.rstrip("\n").endswith(": " + " ".join(str(ids[k]) for k in shown))
    assert _everything(location) == before


def test_cancel_by_filter_cancels_pending_and_asks_running_to_stop(location: str) -> None:
    """A running job in the selection is treated as `jobq cancel ID` treats it: the pool is
    asked to stop it, the job stays running until then."""
    ids = _seed(location)
    r = _jobq(location, "cancel", "--where", "payload.user.id=42")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cancelled 2 jobs; asked the pools to stop 1 running\n"
    with Queue(location) as q:
        states = {k: q.get(i).state.value for k, i in ids.items()}
        running = q.get(ids["r1"])
    assert states == {"p1": "cancelled", "p2": "cancelled", "p3": "pending", "c1": "cancelled",
                      "c2": "cancelled", "r1": "running"}  # fmt: skip
    assert running.cancel_requested


def test_retry_and_priority_by_filter(location: str) -> None:
    ids = _seed(location)
    r = _jobq(location, "retry", "--where", "payload.user.id=7")
    assert (r.returncode, r.stdout) == (0, "retried 1 job\n"), r.stderr
    r = _jobq(location, "priority", "--where", "payload.user.id=42", "--", "-5")
    assert (r.returncode, r.stdout) == (0, "reprioritised 2 jobs to -5\n"), r.stderr
    with Queue(location) as q:
        jobs = {k: q.get(i) for k, i in ids.items()}
    assert jobs["c2"].state.value == "pending" and jobs["c2"].attempts == 0
    assert jobs["c1"].state.value == "cancelled"  # another payload: untouched
    # only pending jobs are reprioritised by a filter: the running and cancelled ones keep 0
    assert {k: j.priority for k, j in jobs.items()} == {"p1": -5, "p2": -5, "p3": 0, "c1": 0,
                                                       "c2": 0, "r1": 0}  # fmt: skip


def test_a_selection_larger_than_one_batch(location: str) -> None:
    """1,201 jobs: three transactions of at most 500, every job cancelled."""
    with Queue(location) as q:
        q.enqueue_many([("bulk", {"n": i}) for i in range(1201)])
        keep = q.enqueue("bulk", {"n": -1})
    r = _jobq(location, "cancel", "--where", "payload.n>=0")
    assert (r.returncode, r.stdout) == (0, "cancelled 1201 jobs\n"), r.stderr
    with Queue(location) as q:
        assert q.count("cancelled") == 1201 and q.get(keep).state.value == "pending"


def test_batches_are_separate_transactions_of_at_most_batch(
    location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The action is called per batch, in id order (each call is one store transaction)."""
    with Queue(location) as q:
        ids = q.enqueue_many([("bulk", {"n": i}) for i in range(23)])
        calls: list[list[int]] = []

        def act(chunk: list[int]) -> dict[int, object]:
            calls.append(list(chunk))
            return q.cancel_many(chunk)  # type: ignore[return-value]

        monkeypatch.setattr(bulk, "BATCH", 10)
        f = bulk.read_filters(None, "bulk", None, None, ["payload.n>=0"], None, None, time.time())
        bulk.run(q, "cancel", f, act, dry_run=False)  # type: ignore[arg-type]
    assert calls == [list(ids[:10]), list(ids[10:20]), list(ids[20:])]


def test_jobs_that_changed_since_the_selection_are_skipped_and_reported(
    location: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Between the selection and its batch a job may move on (a worker claimed it, it was
    deleted): the store's state check skips it, and the summary says so."""
    with Queue(location) as q:
        a, b, c = (q.enqueue("t", {"n": i}) for i in range(3))
        q.cancel_many([a, b, c])
        real = bulk.select

        def stale_selection(queue: Queue, action: str, f: bulk.Filters) -> list[int]:
            chosen = real(queue, action, f)
            queue.retry(b)  # another operator got there first
            queue.backend.delete([c])
            return chosen

        monkeypatch.setattr(bulk, "select", stale_selection)
        f = bulk.read_filters("cancelled", None, None, None, None, None, None, time.time())
        bulk.run(q, "retry", f, q.retry_many, dry_run=False)
        assert q.get(a).state.value == "pending"
    out = capsys.readouterr()
    assert out.out == "retried 1 job\n"
    assert (
        out.err == "skipped 2 (changed since the selection: 1 deleted meanwhile, 1 now pending)\n"
    )


def test_ids_still_work_as_before(location: str) -> None:
    ids = _seed(location)
    r = _jobq(location, "cancel", str(ids["p1"]), str(ids["r1"]))
    assert (
        r.returncode == 0 and r.stdout == f"{ids['p1']} cancelled\n{ids['r1']} cancel requested\n"
    )
    r = _jobq(location, "priority", str(ids["p2"]), str(ids["p3"]), "critical")
    assert (r.returncode, r.stdout) == (0, f"{ids['p2']} priority 20\n{ids['p3']} priority 20\n")
    r = _jobq(location, "priority", str(ids["p2"]), "-3")
    assert (r.returncode, r.stdout) == (0, f"{ids['p2']} priority -3\n")
    r = _jobq(location, "retry", "--all-failed", "--json")
    assert r.returncode == 2  # no such option: typer says so
    r = _jobq(location, "ls", "--state", "cancelled", "--json")
    assert sorted(j["id"] for j in json.loads(r.stdout)) == sorted(
        [ids["p1"], ids["c1"], ids["c2"]]
    )
