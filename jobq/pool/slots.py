"""The pool's shared slots: a child's row of doubles (`Slot`), in a file that outlives the pool.

The child writes its row (one writer per field); the supervisor reads it to enforce timeouts and
cancellations, to renew only the leases of live children, and to tell, when a child dies, which
of its jobs ran and which never started. Each row holds the job the child runs, the jobs
whose success it has not recorded yet, its generation. The rows live in a small file under
/dev/shm (memory, private to root or the pool's user), not in anonymous shared memory, so that when
the whole pool dies (SIGKILL, OOM killer) the next pool on this host can still read what each
child was doing and rescue exactly: a job that ran is charged its attempt, a job claimed in the
same batch that never started goes back uncharged (lifecycle.plan_rescue).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import mmap
import os
import tempfile
from collections.abc import Mapping

from .. import lifecycle

# Fields of a child's row; UNRECORDED_N ids from UNRECORDED on are jobs that ran to success but
# whose success is not committed yet (a batch).
JOB, STARTED, DEADLINE, PGID, DONE, BEAT, READY, PID, UNRECORDED_N, GEN = range(10)
UNRECORDED = 10
MAX_BATCH = 64
SLOT_SIZE = UNRECORDED + MAX_BATCH
_DOUBLE = ctypes.sizeof(ctypes.c_double)

SharedArray = ctypes.Array[ctypes.c_double]


class Slot:
    """One child's row of the shared array. Written by the child only (one writer per field)."""

    def __init__(self, shared: SharedArray | SharedSlots, index: int) -> None:
        self.shared = shared.array if isinstance(shared, SharedSlots) else shared
        self.base = index * SLOT_SIZE

    def get(self, field: int) -> float:
        """Read a field."""
        value: float = self.shared[self.base + field]
        return value

    def set(self, field: int, value: float) -> None:
        """Write a field."""
        self.shared[self.base + field] = value

    def begin(self, job_id: int, started: float, deadline: float) -> None:
        """Say that `job_id` runs now (the job id last, so a reader never pairs it with the
        previous job's deadline)."""
        self.shared[self.base + JOB] = 0.0
        self.shared[self.base + STARTED] = started
        self.shared[self.base + DEADLINE] = deadline
        self.shared[self.base + PGID] = 0.0
        self.shared[self.base + JOB] = float(job_id)

    def unrecorded(self) -> frozenset[int]:
        """Ids of jobs that succeeded but whose success is not recorded yet."""
        n = int(self.get(UNRECORDED_N))
        return frozenset(int(self.get(UNRECORDED + i)) for i in range(min(n, MAX_BATCH)))

    def end(self) -> None:
        """Say that no job runs now."""
        self.shared[self.base + JOB] = 0.0
        self.shared[self.base + PGID] = 0.0

    def reset(self) -> None:
        """Clear the row for a new child."""
        for i in range(SLOT_SIZE):
            self.shared[self.base + i] = 0.0


def path_for(pool_id: str) -> str:
    """Where the slots of pool `pool_id` live (any process on this host computes the same).

    Keyed on the host key as well as the pool id: a pool of another host (pools on several
    machines share a PostgreSQL queue) never names a file here, even if its id equals one of
    ours, and a test "host" (JOBQ_TEST_HOST) sees only its own files, as a real one would.
    """
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    key = f"{lifecycle.this_host()}\0{pool_id}"
    return os.path.join(base, "jobq-slots-" + hashlib.sha1(key.encode()).hexdigest()[:20])


class SharedSlots:
    """A file-backed array of doubles, passed to spawned children by path (picklable)."""

    def __init__(self, path: str, size: int, *, create: bool) -> None:
        self.path = path
        self.size = size
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, size * _DOUBLE)
            self._map = mmap.mmap(fd, size * _DOUBLE)
        finally:
            os.close(fd)
        self.array: SharedArray = (ctypes.c_double * size).from_buffer(self._map)

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return (_attach, (self.path, self.size))

    def unlink(self) -> None:
        """Remove the file (the mapping stays valid until this process exits)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _attach(path: str, size: int) -> SharedSlots:
    return SharedSlots(path, size, create=False)


def create(pool_id: str, children: int) -> SharedSlots:
    """The zeroed slots of a new pool (a stale file of a reused id is replaced)."""
    path = path_for(pool_id)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return SharedSlots(path, SLOT_SIZE * children, create=True)


def read_progress(pool_id: str) -> Mapping[str, tuple[int, frozenset[int]]] | None:
    """What each child of a (dead) pool was doing: worker id → (running job id or 0, jobs that ran
    but whose success is unrecorded). None when the pool left no slots on this host."""
    path = path_for(pool_id)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    n = len(data) // _DOUBLE
    values = (ctypes.c_double * n).from_buffer_copy(data[: n * _DOUBLE])
    out: dict[str, tuple[int, frozenset[int]]] = {}
    for base in range(0, n - SLOT_SIZE + 1, SLOT_SIZE):
        gen = int(values[base + GEN])
        if not gen:
            continue
        k = min(int(values[base + UNRECORDED_N]), MAX_BATCH)
        ran = frozenset(int(values[base + UNRECORDED + i]) for i in range(k))
        out[f"{pool_id}/{gen}"] = (int(values[base + JOB]), ran)
    return out


def forget(pool_id: str) -> None:
    """Remove a pool's slots file once its jobs are rescued."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path_for(pool_id))
