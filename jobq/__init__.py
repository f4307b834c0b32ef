"""jobq: a durable local job queue in one SQLite file.

Public API: `Queue`, `handler`, `Job`, `Attempt`, `JobState`, `Outcome`, the `JobqError`
family, and the diagnoses every view shares (`diagnose_job`, `pool_alive`, `group_errors`).
Importing jobq loads neither the CLI (typer) nor the dashboard (textual).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from .backend import ActionOutcome, ActionResult
    from .control import Fail, Snooze
    from .diagnose import (
        Diagnosis,
        ErrorGroup,
        WaitReason,
        diagnose_job,
        fingerprint,
        group_errors,
        pool_alive,
    )
    from .edits import EditorSession, payload_for_edit, payload_from_edit
    from .errors import (
        CorruptFile,
        DatabaseBusy,
        DiskFull,
        FileReplaced,
        HandlerError,
        InvalidInput,
        InvalidTransition,
        JobNotFound,
        JobqError,
        NetworkFilesystem,
        NewerSchema,
        NotAJobqFile,
        QueueFileError,
        ServerUnavailable,
        TemporaryFailure,
        WaitTimeout,
    )
    from .handlers import Handler, handler, on_failure
    from .liveoutput import JobProgress, OutputChunk
    from .model import (
        PRIORITY_NAMES,
        Attempt,
        Event,
        EventKind,
        FailedAttempt,
        Job,
        JobEdit,
        JobState,
        JSONValue,
        NewJob,
        Outcome,
        QueueStats,
        WorkerInfo,
    )
    from .queue import Queue
    from .rollup import History, HistoryReader
    from .safetext import safe_block, safe_line, safe_text, truncate
    from .schedules import Schedule
    from .values import format_duration
    from .waiting import Waiter
    from .where import Condition, parse_colon, parse_condition, parse_time

# Names are imported on first use (PEP 562): `jobq enqueue` in a shell loop pays only for what
# it touches, and `import jobq` stays cheap.
_EXPORTS = {
    "ActionOutcome": "backend",
    "ActionResult": "backend",
    "Attempt": "model",
    "Condition": "where",
    "CorruptFile": "errors",
    "DatabaseBusy": "errors",
    "Diagnosis": "diagnose",
    "DiskFull": "errors",
    "EditorSession": "edits",
    "ErrorGroup": "diagnose",
    "Event": "model",
    "EventKind": "model",
    "Fail": "control",
    "FailedAttempt": "model",
    "FileReplaced": "errors",
    "Handler": "handlers",
    "HandlerError": "errors",
    "History": "rollup",
    "HistoryReader": "rollup",
    "InvalidInput": "errors",
    "InvalidTransition": "errors",
    "JSONValue": "model",
    "Job": "model",
    "JobEdit": "model",
    "JobNotFound": "errors",
    "JobProgress": "liveoutput",
    "JobState": "model",
    "JobqError": "errors",
    "NetworkFilesystem": "errors",
    "NewJob": "model",
    "ServerUnavailable": "errors",
    "NewerSchema": "errors",
    "NotAJobqFile": "errors",
    "Outcome": "model",
    "OutputChunk": "liveoutput",
    "PRIORITY_NAMES": "model",
    "Queue": "queue",
    "Schedule": "schedules",
    "QueueFileError": "errors",
    "QueueStats": "model",
    "Snooze": "control",
    "TemporaryFailure": "errors",
    "WaitReason": "diagnose",
    "WaitTimeout": "errors",
    "Waiter": "waiting",
    "WorkerInfo": "model",
    "diagnose_job": "diagnose",
    "fingerprint": "diagnose",
    "format_duration": "values",
    "group_errors": "diagnose",
    "handler": "handlers",
    "on_failure": "handlers",
    "parse_colon": "where",
    "parse_condition": "where",
    "parse_time": "where",
    "payload_for_edit": "edits",
    "payload_from_edit": "edits",
    "pool_alive": "diagnose",
    "safe_block": "safetext",
    "safe_line": "safetext",
    "safe_text": "safetext",
    "truncate": "safetext",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jobq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "PRIORITY_NAMES",
    "ActionOutcome",
    "ActionResult",
    "Attempt",
    "Condition",
    "CorruptFile",
    "DatabaseBusy",
    "Diagnosis",
    "DiskFull",
    "EditorSession",
    "ErrorGroup",
    "Event",
    "EventKind",
    "Fail",
    "FailedAttempt",
    "FileReplaced",
    "Handler",
    "HandlerError",
    "History",
    "HistoryReader",
    "InvalidInput",
    "InvalidTransition",
    "JSONValue",
    "Job",
    "JobEdit",
    "JobNotFound",
    "JobProgress",
    "JobState",
    "JobqError",
    "NetworkFilesystem",
    "NewJob",
    "NewerSchema",
    "NotAJobqFile",
    "Outcome",
    "OutputChunk",
    "Queue",
    "QueueFileError",
    "QueueStats",
    "Schedule",
    "ServerUnavailable",
    "Snooze",
    "TemporaryFailure",
    "WaitReason",
    "WaitTimeout",
    "Waiter",
    "WorkerInfo",
    "__version__",
    "diagnose_job",
    "fingerprint",
    "format_duration",
    "group_errors",
    "handler",
    "on_failure",
    "parse_colon",
    "parse_condition",
    "parse_time",
    "payload_for_edit",
    "payload_from_edit",
    "pool_alive",
    "safe_block",
    "safe_line",
    "safe_text",
    "truncate",
]
