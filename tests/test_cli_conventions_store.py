"""Contract tests (every backend, over the `backend` fixture) for the operations the CLI
conventions added: `delete`, `count_prunable` (prune --dry-run), `forget_pools` (`jobq workers
--prune`) and prune forgetting stopped pools but never a running one; and the commands that use
them, run as `jobq` processes on each backend's queue."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from jobq import lifecycle
from jobq.backend import ActionOutcome, ActionResult, Role, open_backend
from jobq.model import JobState
from jobq.pool.maintenance import Pruner
from tests.conftest import ROOT
from tests.factories import T0, make_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

FINISHED = ("succeeded", "failed", "cancelled")

# (state, force) -> what delete does: True = deleted, else the job stays in that state
DELETE_TABLE = [
    ("succeeded", False, True),
    ("failed", False, True),
    ("cancelled", False, True),
    ("pending", False, False),
    ("running", False, False),
    ("succeeded", True, True),
    ("failed", True, True),
    ("cancelled", True, True),
    ("pending", True, True),
    ("running", True, False),  # a worker holds it: cancel it first, whatever --force says
]


@pytest.mark.parametrize(("state", "force", "deleted"), DELETE_TABLE)
def test_delete_by_state(backend: Backend, state: str, force: bool, deleted: bool) -> None:
    job = make_job(backend, state, now=T0)
    keep = make_job(backend, state, now=T0)  # a neighbour in the same state stays untouched
    had_attempts = bool(backend.attempts(job.id))
    got = backend.delete([job.id], force=force)
    if deleted:
        assert got == {job.id: ActionOutcome(ActionResult.DELETED)}
        assert got[job.id].done
        assert backend.get(job.id) is None
        assert backend.attempts(job.id) == []  # its history goes with it
    else:
        assert got == {job.id: ActionOutcome(ActionResult.WRONG_STATE, JobState(state))}
        assert not got[job.id].done
        after = backend.get(job.id)
        assert after is not None and after.state is JobState(state)
        assert bool(backend.attempts(job.id)) == had_attempts
    assert backend.get(keep.id) == keep


def test_delete_reports_each_id(backend: Backend) -> None:
    done = make_job(backend, "succeeded")
    pending = make_job(backend, "pending")
    got = backend.delete([done.id, 999_999, pending.id])
    assert got == {
        done.id: ActionOutcome(ActionResult.DELETED),
        999_999: ActionOutcome(ActionResult.NOT_FOUND),
        pending.id: ActionOutcome(ActionResult.WRONG_STATE, JobState.PENDING),
    }
    assert str(got[done.id]) == "deleted"


def test_count_prunable_counts_what_prune_deletes(backend: Backend) -> None:
    old = [make_job(backend, s, finished_at=T0 - 100) for s in FINISHED]
    make_job(backend, "succeeded", finished_at=T0 - 1)  # too recent
    make_job(backend, "pending")
    make_job(backend, "running")
    assert backend.count_prunable(T0 - 50, FINISHED) == 3
    assert backend.count_prunable(T0 - 50, ["failed"]) == 1
    assert backend.count_prunable(T0 - 50, ["pending", "running"]) == 0  # finished jobs only
    assert backend.get(old[0].id) is not None  # counting deletes nothing
    assert backend.prune(T0 - 50, FINISHED) == 3
    assert backend.count_prunable(T0 - 50, FINISHED) == 0


def _pool(backend: Backend, pool_id: str, beat: float, status: str = "running") -> None:
    """Register a pool of another host (no proc_key: alive while its heartbeat is fresh)."""
    backend.register_worker(pool_id, name=pool_id, host="elsewhere", pid=1, concurrency=1,
                            queues=[], types=["t"], now=beat - 5)  # fmt: skip
    backend.worker_heartbeat(pool_id, beat, 0, status)


def _pool_ids(backend: Backend) -> list[str]:
    return sorted(w.id for w in backend.workers())


def test_forget_pools_forgets_stopped_and_dead_keeps_live(backend: Backend) -> None:
    now = T0
    _pool(backend, "live", now - 1)
    _pool(backend, "stopping", now - 1, "stopping")
    _pool(backend, "stopped", now - 1, "stopped")
    _pool(backend, "dead", now - lifecycle.STALE_AFTER - 10)  # no heartbeat for 40 s
    assert backend.forget_pools(now) == ["dead", "stopped"]
    assert _pool_ids(backend) == ["live", "stopping"]
    assert backend.forget_pools(now) == []


def test_forget_pools_respects_before(backend: Backend) -> None:
    _pool(backend, "old", T0 - 1000, "stopped")
    _pool(backend, "recent", T0 - 10, "stopped")
    assert backend.forget_pools(T0, before=T0 - 100) == ["old"]
    assert _pool_ids(backend) == ["recent"]


def test_forget_pools_keeps_a_dead_pool_that_still_holds_a_job(backend: Backend) -> None:
    _pool(backend, "pool-a", T0 - 1000)  # the factory's worker is "pool-a/1"
    _pool(backend, "pool-ab", T0 - 1000)  # a prefix of nothing: holds no job
    job = make_job(backend, "running", now=T0 - 500)
    assert backend.forget_pools(T0) == ["pool-ab"]
    assert _pool_ids(backend) == ["pool-a"]
    rescued = backend.rescue(T0)  # its record is what the rescuer decides from
    assert [j for j, _ in rescued] == [job.id]
    assert backend.forget_pools(T0) == ["pool-a"]


def test_a_live_pool_is_forgotten_through_its_own_host_key(backend: Backend) -> None:
    here = lifecycle.host_key()
    if here is None:
        pytest.skip("no host key on this system")
    # this very process, with a heartbeat far in the past: alive, so never forgotten
    backend.register_worker("me", name="me", host="h", pid=1, concurrency=1, queues=[],
                            types=["t"], now=T0 - 1000,
                            proc_key=lifecycle.proc_key())  # fmt: skip
    assert backend.forget_pools(T0, here=here) == []
    assert _pool_ids(backend) == ["me"]


def test_prune_forgets_stopped_pools_never_a_running_one(backend: Backend) -> None:
    _pool(backend, "stopped-long-ago", T0 - 1000, "stopped")
    _pool(backend, "stopped-lately", T0 - 1, "stopped")
    # a running pool whose heartbeat is older than the cut-off (`prune --older-than 5s`
    # between two heartbeats): its record must stay, or the pool vanishes from `jobq workers`
    _pool(backend, "running", T0 - 8)
    backend.prune(T0 - 5, FINISHED)
    assert _pool_ids(backend) == ["running", "stopped-lately"]


def test_pool_maintenance_forgets_pools_stopped_longer_than_the_retention(
    backend: Backend,
) -> None:
    """A pool's Pruner (jobq work --retention) is what forgets stopped pools over time."""
    _pool(backend, "long-gone", T0 - 7200, "stopped")
    _pool(backend, "found-dead", T0 - 7200)
    assert backend.rescue(T0) == []  # a live pool's rescuer marks the silent one dead
    _pool(backend, "lately", T0 - 10, "stopped")
    _pool(backend, "me", T0 - 1)
    Pruner(backend, retention=3600).prune(T0)
    assert _pool_ids(backend) == ["lately", "me"]


def test_the_new_commands_on_every_backend(location: str) -> None:
    """delete, prune --dry-run, workers --prune and ISO times, through `jobq` processes, on
    each backend's queue (the CLI reaches the new verbs through the Backend protocol only)."""
    now = time.time()
    b = open_backend(location, Role.WORKER)
    try:
        gone, kept = make_job(b, "succeeded", now=now), make_job(b, "succeeded", now=now)
        pending = make_job(b, "pending", now=now)
        _pool(b, "stopped", now - 5, "stopped")
    finally:
        b.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(JOBQ_DB=location, PYTHONPATH=str(ROOT))

    def jq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobq", *args], env=env, text=True,
                              capture_output=True, timeout=60, check=False)  # fmt: skip

    assert jq("delete", str(gone.id)).stdout == f"{gone.id} deleted\n"
    r = jq("delete", str(pending.id))
    assert (r.returncode, r.stdout) == (1, "") and "use --force" in r.stderr
    assert jq("prune", "--older-than", "0s", "--dry-run").stdout == "would prune 1 job (dry run)\n"
    assert jq("workers", "--prune").stdout == "forgot 1 pool\n"
    shown = json.loads(jq("show", str(kept.id), "--json").stdout)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", shown["finished_at"])
    b = open_backend(location, Role.WORKER)
    try:
        assert b.get(gone.id) is None and b.get(kept.id) is not None and b.workers() == []
    finally:
        b.close()
