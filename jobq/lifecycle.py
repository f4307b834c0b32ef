"""What happens to a job, decided in one place for every backend and every path.

The store runs the SQL; this module decides. Its rules:

- **An attempt counts once its handler has started**, whatever ends it: a return, an exception of
  any kind (BaseException included), a crash, a kill, a timeout. A job that was claimed but never
  started is released: back to pending with its attempt count unchanged.
- **Effective limits are fixed at claim.** max_attempts and timeout come from the job, else its
  handler, else the defaults, and the claim writes them on the job, so a rescue by any pool and
  every display use the values that really apply.
- **A pool is dead** when, on this host, its supervisor process (pid + start time, so pid reuse
  cannot fool it) is gone; from another host, when its heartbeat is older than `STALE_AFTER`.
  A dead pool's jobs are rescued at once. A lease that expired is rescued too, unless its pool is
  alive on this host (then its own supervisor handles it, on a monotonic clock). So the wall clock
  moving never makes a pool lose, rescue or time out a live attempt on its own host.
- **A rescued batch.** A worker claims several jobs at once (one lease token) and runs them one
  after the other, recording their successes together. When its whole pool died on this host, the
  pool's slots file (jobq.pool.slots) still says which job each child was running and which had
  run without their success recorded yet: those are charged an attempt (crashed), the rest of the
  batch never started and is released uncharged. Where nobody can tell (another host, an expired
  lease, no slots file), every job of the batch may have started, so each is charged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

from .basics import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, JobState, Outcome
from .model import record

# A pool heartbeats every few seconds; from another host, one silent for this long is dead.
STALE_AFTER = 30.0

# Pool status words, the same in `jobq workers`, its --json and the dashboard.
RUNNING, STOPPING, STOPPED, DEAD = "running", "stopping", "stopped", "dead"
LIVE_STATUSES = (RUNNING, STOPPING)


# ---- attempts --------------------------------------------------------------------------------


def effective_limits(
    max_attempts: int | None,
    timeout: float | None,
    handler_max_attempts: int | None,
    handler_timeout: float | None,
) -> tuple[int, float]:
    """The max_attempts and timeout that apply: the job's, else the handler's, else the defaults."""
    m = max_attempts if max_attempts is not None else handler_max_attempts
    t = timeout if timeout is not None else handler_timeout
    return (m if m is not None else DEFAULT_MAX_ATTEMPTS, t if t is not None else DEFAULT_TIMEOUT)


@record
class Ending:
    """What ending an attempt does to its job."""

    state: JobState
    outcome: Outcome
    attempts: int  # the job's attempt count afterwards
    run_at: float | None  # when pending again: when it is due; else None (unchanged)
    finished: bool  # whether finished_at is set (a final state)


def end_attempt(
    *,
    attempts: int,
    max_attempts: int | None,
    cancel_requested: bool,
    outcome: Outcome,
    counted: bool,
    retry_at: Callable[[int], float] | None,
    force_state: JobState | None = None,
) -> Ending:
    """Decide how an attempt ends.

    `attempts` is the job's count including this attempt (the claim counted it); `counted=False`
    gives it back (the job never started). `retry_at(attempts)` is when a retried job is due; None
    means the job may not be retried (a failure that must be final).
    """
    limit = max_attempts if max_attempts is not None else DEFAULT_MAX_ATTEMPTS
    new_attempts = attempts if counted else max(attempts - 1, 0)
    if force_state is not None:
        return Ending(force_state, outcome, new_attempts, None, True)
    if cancel_requested:
        return Ending(JobState.CANCELLED, Outcome.CANCELLED, new_attempts, None, True)
    if retry_at is not None and (not counted or new_attempts < limit):
        return Ending(JobState.PENDING, outcome, new_attempts, retry_at(new_attempts), False)
    return Ending(JobState.FAILED, outcome, new_attempts, None, True)


def snooze_or_fail(
    snoozes: int,
    now: float,
    retry_at: Callable[[int], float] | None,
    rand: float | None,
    error: str | None,
) -> tuple[bool, Outcome, bool, Callable[[int], float] | None, str | None]:
    """A snooze (jobq.Snooze) of a job that has snoozed `snoozes` times before: (still a snooze,
    outcome, counted, retry_at, error). Up to MAX_SNOOZES it is one: not counted, due at
    `retry_at`. Past it, the snooze counts as a failed attempt, retried after the default backoff.
    """
    from .control import MAX_SNOOZES
    from .retry import backoff

    if snoozes < MAX_SNOOZES:
        return True, Outcome.INTERRUPTED, False, retry_at, error

    def later(attempts: int) -> float:
        return now + backoff(attempts, rand)

    why = f"snoozed {snoozes} times (the most a job may): counted as a failed attempt"
    return False, Outcome.FAILED, True, later, why


# What a dead pool's child was doing: (job it was running or 0, jobs that ran but whose
# success was not recorded yet), by worker id.
Progress = Mapping[str, tuple[int, frozenset[int]]]


def split_batch(
    job_ids: Sequence[int], progress: tuple[int, frozenset[int]] | None
) -> tuple[list[int], list[int]]:
    """For the still-running jobs of one claim whose worker is gone: (charged, released).

    With the worker's progress, exactly the jobs that started are charged; without it, all.
    """
    if progress is None:
        return list(job_ids), []
    current, ran = progress
    started = [i for i in job_ids if i == current or i in ran]
    return started, [i for i in job_ids if i not in started]


# ---- pools -----------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


# Test-only: JOBQ_TEST_HOST=NAME makes this process a host of its own named NAME (its host key
# and host name), so that tests can run "several hosts" against one PostgreSQL server on one
# machine. Not a setting: nothing else about the process changes, and pools of such a "host"
# are judged as remote ones are (heartbeat staleness, lease expiry), never by pid.
ENV_TEST_HOST = "JOBQ_TEST_HOST"


def host_name() -> str:
    """The host name a pool records (`jobq workers`): the machine's, or JOBQ_TEST_HOST's."""
    import socket

    return os.environ.get(ENV_TEST_HOST) or socket.gethostname()


def host_key() -> str | None:
    """This machine and PID namespace ("boot id:pid namespace"), None where it cannot be told.

    Two pools with the same host key see each other's processes, so a pid is meaningful between
    them; a container with its own PID namespace is another host for this purpose.
    """
    fake = os.environ.get(ENV_TEST_HOST)
    if fake:
        return f"test-host {fake}"
    if not sys.platform.startswith("linux"):
        return None
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}:{ns}" if boot else None


_HOST: list[str | None] = []


def this_host() -> str | None:
    """`host_key()`, read once per process."""
    if not _HOST:
        _HOST.append(host_key())
    return _HOST[0]


def _start_ticks(pid: int) -> tuple[str, str] | None:
    """(start time in clock ticks since boot, state letter) of a process, None if it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[19], fields[0]


def proc_key(pid: int | None = None) -> str | None:
    """The identity of a process that pid reuse cannot fake: "host key:pid:start ticks"."""
    here = host_key()
    pid = os.getpid() if pid is None else pid
    ticks = _start_ticks(pid)
    if here is None or ticks is None:
        return None
    return f"{here}:{pid}:{ticks[0]}"


def process_state(key: str | None, here: str | None) -> str:
    """Whether the process named by a `proc_key` runs: 'alive', 'stopped', 'gone' or 'unknown'
    (another host, or no key). 'stopped' is SIGSTOPped or traced: its pool renews nothing."""
    if key is None or here is None:
        return "unknown"
    head, _, rest = key.rpartition(":")
    host, _, pid = head.rpartition(":")
    if host != here or not pid.isdigit():
        return "unknown"
    ticks = _start_ticks(int(pid))
    if ticks is None or ticks[0] != rest or ticks[1] in ("Z", "X"):
        return "gone"
    return "stopped" if ticks[1] in ("T", "t") else "alive"


def pool_status(
    status: str, proc: str | None, heartbeat_at: float, now: float, here: str | None
) -> str:
    """A pool's status word: running, stopping, stopped (said so itself) or dead."""
    if status == STOPPED:
        return STOPPED
    state = process_state(proc, here)
    if state == "gone":
        return DEAD
    if state == "unknown" and now - heartbeat_at > STALE_AFTER:
        return DEAD
    return status if status in LIVE_STATUSES else RUNNING


def pool_of(worker_id: str) -> str:
    """The pool id of a child's worker id ("pool/generation")."""
    return worker_id.split("/", 1)[0]


@record
class HeldJob:
    """A running job as the rescuer sees it."""

    id: int
    token: str
    worker_id: str
    lease_until: float
    claim_order: tuple[int, float, int]  # (-priority, run_at, id)


@record
class RescuePlan:
    """What a rescue does: jobs to end crashed (charged), jobs to release (uncharged), with why."""

    charge: list[tuple[HeldJob, str]]
    release: list[tuple[HeldJob, str]]


def plan_rescue(
    held: Iterable[HeldJob],
    pool_states: dict[str, str],
    now: float,
    *,
    own_pool: str | None = None,
    progress: Mapping[str, Progress | None] | None = None,
) -> RescuePlan:
    """Which running jobs to take back from pools that are gone or silent.

    `pool_states` maps pool ids to `process_state`-like words plus the heartbeat verdict:
    'alive', 'stopped', 'gone', 'stale' or 'unknown'. Jobs of `own_pool` are never touched:
    the supervisor knows its children better than any clock. `progress` holds, for dead pools
    of this host, what their children were doing (jobq.pool.slots.read_progress).
    """
    by_token: dict[str, list[HeldJob]] = {}
    dead: dict[str, str] = {}
    for job in held:
        pool = pool_of(job.worker_id)
        if pool == own_pool:
            continue
        state = pool_states.get(pool, "unknown")
        if state in ("gone", "stale"):
            dead[pool] = state
        elif state == "alive" or job.lease_until >= now:
            continue  # a live pool on this host keeps its leases whatever the clock says
        by_token.setdefault(job.token, []).append(job)
    charge: list[tuple[HeldJob, str]] = []
    release: list[tuple[HeldJob, str]] = []
    for jobs in by_token.values():
        jobs.sort(key=lambda j: j.claim_order)
        pool = pool_of(jobs[0].worker_id)
        if dead.get(pool) == "gone":
            why = f"worker pool {pool} died (its process is gone)"
        elif pool in dead:
            why = f"worker pool {pool} went silent (no heartbeat for {STALE_AFTER:g}s)"
        else:
            why = f"lease expired: worker {jobs[0].worker_id} stopped renewing it"
        known = (progress or {}).get(pool) if pool in dead else None
        charged, _rest = split_batch(
            [j.id for j in jobs], None if known is None else known.get(jobs[0].worker_id)
        )
        for j in jobs:
            if j.id in charged:
                charge.append((j, why))
            else:
                release.append((j, f"not started: {why}"))
    return RescuePlan(charge, release)
