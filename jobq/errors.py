"""Errors raised by jobq: each carries a one-line message fit for a person and an exit code."""

from __future__ import annotations

# Exit codes of the CLI (documented in the README).
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: busy, disk full or file replaced, try again later


class JobqError(Exception):
    """Base class of every error jobq raises on purpose."""

    exit_code = EXIT_FAILURE


class InvalidInput(JobqError, ValueError):
    """A value given by the user is malformed: bad JSON, priority, type, duration..."""

    exit_code = EXIT_USAGE


class JobNotFound(JobqError, LookupError):
    """No job with that id is in the queue file."""


class InvalidTransition(JobqError):
    """The job is not in a state where that action applies (e.g. cancel a succeeded job)."""


class QueueFileError(JobqError):
    """The queue file cannot be used: not a jobq file, newer version, corrupt, unsafe location."""


class NotAJobqFile(QueueFileError):
    """The file exists but was not created by jobq."""


class NewerSchema(QueueFileError):
    """The file was written by a newer jobq than this one."""


class CorruptFile(QueueFileError):
    """SQLite reports the file as damaged."""


class NetworkFilesystem(QueueFileError):
    """The file lives on a network filesystem, where SQLite locking is not safe."""


class FileReplaced(QueueFileError):
    """The path no longer names the queue file this process has open (replaced, moved, deleted):
    stop and start again, on whatever file the path names now. Not a TemporaryFailure: retrying
    on the open file would keep working a file nobody else sees."""

    exit_code = EXIT_TEMPFAIL


class TemporaryFailure(JobqError):
    """The database stayed locked past the busy timeout, or the disk is full: retry later."""

    exit_code = EXIT_TEMPFAIL


class DatabaseBusy(TemporaryFailure):
    """Another process held the write lock longer than the busy timeout."""


class DiskFull(TemporaryFailure):
    """The filesystem holding the queue file is full."""


class ServerUnavailable(TemporaryFailure):
    """The database server cannot be reached, or is restarting: retry later."""


class WaitTimeout(JobqError):
    """`wait` gave up before every job finished."""


class HandlerError(JobqError):
    """A handler module, command or handlers file could not be loaded."""

    exit_code = EXIT_USAGE
