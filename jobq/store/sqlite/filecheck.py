"""Checks made before SQLite touches a queue file, so a refused file gets zero bytes written."""

from __future__ import annotations

import os
import stat

from ...errors import (
    CorruptFile,
    FileReplaced,
    NetworkFilesystem,
    NewerSchema,
    NotAJobqFile,
    QueueFileError,
)
from .schema import APPLICATION_ID, SCHEMA_VERSION

SQLITE_MAGIC = b"SQLite format 3\x00"

# Filesystems where POSIX/SQLite locking is unreliable. Matched on the mountinfo fstype.
NETWORK_FSTYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph",
        "glusterfs", "lustre", "gpfs", "ocfs2", "gfs2", "davfs", "coda", "beegfs", "orangefs",
        "virtiofs", "vboxsf", "prl_fs", "vmhgfs",
    }
)  # fmt: skip
NETWORK_FUSE = ("sshfs", "s3fs", "gcsfuse", "rclone", "davfs", "glusterfs", "juicefs", "goofys")

MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal \040 etc.
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 0 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_of(path: str, mountinfo: str = MOUNTINFO) -> tuple[str, str] | None:
    """Return (mount point, fstype) of the mount holding `path`, or None if unknown."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[str, str] | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or not rfields:
            continue
        mount_point = _unescape(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        # later lines are mounted over earlier ones: keep the last longest match
        if inside and (best is None or len(mount_point) >= len(best[0])):
            best = (mount_point, rfields[0])
    return best


def is_network_fstype(fstype: str) -> bool:
    """Whether `fstype` (as in mountinfo) is a network or shared filesystem."""
    base = fstype.lower()
    if base in NETWORK_FSTYPES:
        return True
    if base.startswith("fuse."):
        return any(name in base for name in NETWORK_FUSE)
    return False


def check_not_network(path: str, mountinfo: str = MOUNTINFO) -> None:
    """Raise NetworkFilesystem if the directory holding `path` is on a network filesystem."""
    where = filesystem_of(os.path.dirname(os.path.abspath(path)) or ".", mountinfo)
    if where is not None and is_network_fstype(where[1]):
        raise NetworkFilesystem(
            f"{path} is on a {where[1]} filesystem ({where[0]}): SQLite locking is not safe there; "
            "use a local disk, or set JOBQ_ALLOW_NETWORK_FS=1 if you are sure only one host uses it"
        )


# POSIX locks belong to the process: closing *any* descriptor of a file drops all of them,
# SQLite's included ("How To Corrupt An SQLite Database File", 2.2). Another process then
# believes it closes the last connection and deletes the WAL under our feet. So while this
# process has a connection on a file, its header is read through a descriptor kept open.
_HELD: dict[tuple[int, int], list[int]] = {}  # (st_dev, st_ino) -> [fd, connections]


def hold(path: str) -> tuple[int, int]:
    """Note that a connection on `path` is open (see `release`); returns the file's key."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    fst = os.fstat(fd)  # replaced since stat()? key by the file we really hold
    key = (fst.st_dev, fst.st_ino)
    if key in _HELD:  # pragma: no cover - a race with a rename
        _HELD[key][1] += 1
        return key
    _HELD[key] = [fd, 1]
    return key


def release(key: tuple[int, int]) -> None:
    """Note that a connection opened with `hold` was closed."""
    entry = _HELD.get(key)
    if entry is not None:
        entry[1] -= 1
        if entry[1] <= 0:
            del _HELD[key]
            os.close(entry[0])  # no connection of ours is left to lose its locks


def _read_header(path: str, st: os.stat_result) -> bytes:
    entry = _HELD.get((st.st_dev, st.st_ino))
    if entry is not None:
        return os.pread(entry[0], 100, 0)
    with open(path, "rb") as f:
        return f.read(100)


def check_existing(path: str) -> bool:
    """Validate an existing file's header without writing. Return False if there is no file.

    Raises a QueueFileError subclass for a directory, an empty or foreign file, a damaged header
    or a schema newer than this jobq.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise QueueFileError(f"cannot access {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise QueueFileError(f"{path} is a directory, not a queue file")
    if not stat.S_ISREG(st.st_mode):
        raise QueueFileError(f"{path} is not a regular file")
    try:
        header = _read_header(path, st)
    except PermissionError:
        raise QueueFileError(f"cannot read {path}: permission denied") from None
    except OSError as e:
        raise QueueFileError(f"cannot read {path}: {e.strerror}") from None
    if len(header) == 0:
        raise NotAJobqFile(f"{path} is an empty file, not a jobq queue file")
    if not header.startswith(SQLITE_MAGIC):
        raise NotAJobqFile(f"{path} is not a jobq queue file (not a SQLite database)")
    if len(header) < 100:
        raise CorruptFile(f"{path} is damaged: its SQLite header is truncated")
    user_version = int.from_bytes(header[60:64], "big")
    app_id = int.from_bytes(header[68:72], "big")
    page_size = int.from_bytes(header[16:18], "big")
    if page_size == 1:
        page_size = 65536
    # bytes 18/19: file format write/read versions (1 legacy, 2 WAL); anything else makes SQLite
    # open the file read-only or not at all
    if header[18] not in (1, 2) or header[19] not in (1, 2):
        raise CorruptFile(f"{path} is damaged: its SQLite header is invalid")
    if page_size < 512 or page_size & (page_size - 1) or header[21:24] != b"\x40\x20\x20":
        raise CorruptFile(f"{path} is damaged: its SQLite header is invalid")
    if app_id != APPLICATION_ID:
        raise NotAJobqFile(f"{path} is a SQLite database but not a jobq queue file")
    if user_version > SCHEMA_VERSION:
        raise NewerSchema(
            f"{path} was written by a newer jobq (schema {user_version}, this jobq knows up to "
            f"{SCHEMA_VERSION}): upgrade jobq"
        )
    if not os.access(path, os.W_OK):
        raise QueueFileError(f"cannot write {path}: permission denied")
    return True


def check_same_file(path: str, key: tuple[int, int]) -> None:
    """Raise FileReplaced unless `path` (symlinks followed) still names the file `key`
    ((st_dev, st_ino), as returned by `hold`).

    A file renamed over it, a copy moved into place, a deletion, a renamed directory and a
    retargeted symlink all show here; a process that went on would work a file that new
    processes no longer see (jobs enqueued now would wait for ever).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileReplaced(
            f"{path} was deleted or moved away while in use; stopping (start again to use the "
            "file at that path)"
        ) from None
    except OSError as e:
        raise FileReplaced(f"{path} can no longer be reached ({e.strerror}); stopping") from None
    if (st.st_dev, st.st_ino) != key:
        raise FileReplaced(
            f"{path} was replaced by another file while in use; stopping (start again to use "
            "the new file)"
        )


def check_no_orphan_wal(path: str, real_path: str) -> None:
    """Before creating a queue file at `real_path`: raise FileReplaced if a write-ahead log is
    still there without its database.

    SQLite finds side files by name, so a new file would take that log for its own and read the
    old file's pages from it. Such a log belongs to a queue file deleted or moved away while a
    process still has it open (it empties the log when it stops), or to one that crashed.
    """
    try:
        size = os.stat(real_path + "-wal").st_size
    except OSError:
        return  # no log (or none we could open anyway)
    if size > 0:  # an empty log is harmless: it is what a replaced file's users leave behind
        raise FileReplaced(
            f"no queue file at {path}, but its write-ahead log {real_path}-wal is still there: a "
            "process still has a deleted or moved queue file open (a jobq pool or dashboard stops "
            "within seconds), or one crashed; retry shortly, or remove that -wal file once no "
            "process uses it"
        )
