"""A child's row of the array of doubles it shares with the supervisor (`Slot`).

The child writes its row (one writer per field); the supervisor reads it to enforce timeouts and
cancellations, to renew only the leases of live children, and to tell, when a child dies, which
of its jobs ran and which never started.
"""

from __future__ import annotations

import ctypes

MAX_BATCH = 64  # most jobs a child claims at once (and room for as many unrecorded successes)

# Fields of a child's row in the shared array; UNRECORDED_N ids from UNRECORDED on are jobs that
# ran to success but whose success is not committed yet (a batch): should the child die, the
# supervisor must not report them as never started.
JOB, STARTED, DEADLINE, PGID, DONE, BEAT, READY, PID, UNRECORDED_N = range(9)
UNRECORDED = 9
SLOT_SIZE = UNRECORDED + MAX_BATCH

SharedArray = ctypes.Array[ctypes.c_double]


class Slot:
    """One child's row of the shared array. Written by the child only (one writer per field)."""

    def __init__(self, shared: SharedArray, index: int) -> None:
        self.shared = shared
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
