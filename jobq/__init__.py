"""jobq: a durable local job queue in one SQLite file.

Public API: `Queue`, `handler`, `Job`, `Attempt`, `JobState`, `Outcome`, and the `JobqError`
family. Importing jobq loads neither the CLI (typer) nor the dashboard (textual).
"""

from __future__ import annotations

from .errors import (
    CorruptFile,
    DatabaseBusy,
    DiskFull,
    HandlerError,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    JobqError,
    NetworkFilesystem,
    NewerSchema,
    NotAJobqFile,
    QueueFileError,
    TemporaryFailure,
    WaitTimeout,
)
from .handlers import Handler, handler
from .model import (
    PRIORITY_NAMES,
    Attempt,
    FailedAttempt,
    Job,
    JobState,
    JSONValue,
    NewJob,
    Outcome,
    QueueStats,
    WorkerInfo,
)
from .queue import Queue
from .safetext import safe_block, safe_line, safe_text, truncate
from .wakeup import Waker

__version__ = "0.1.0"

__all__ = [
    "PRIORITY_NAMES",
    "Attempt",
    "CorruptFile",
    "DatabaseBusy",
    "DiskFull",
    "FailedAttempt",
    "Handler",
    "HandlerError",
    "InvalidInput",
    "InvalidTransition",
    "JSONValue",
    "Job",
    "JobNotFound",
    "JobState",
    "JobqError",
    "NetworkFilesystem",
    "NewJob",
    "NewerSchema",
    "NotAJobqFile",
    "Outcome",
    "Queue",
    "QueueFileError",
    "QueueStats",
    "TemporaryFailure",
    "WaitTimeout",
    "Waker",
    "WorkerInfo",
    "__version__",
    "handler",
    "safe_block",
    "safe_line",
    "safe_text",
    "truncate",
]
