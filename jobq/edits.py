"""Payload edits (`jobq edit`, `Queue.edit`, `E` in the dashboard), backend-neutral.

Which jobs may be edited and when a compare-and-set edit is refused (`verdict`: both stores call
it inside the transaction that writes the edit, on the row they have just read, locked); the
text a person edits (pretty JSON in, the `jobq enqueue --payload` rules out); and the editor
session the CLI and the dashboard share ($VISUAL / $EDITOR on a private temp file, reopened with
the error of an invalid edit).
"""

from __future__ import annotations

from .backend import ActionOutcome, ActionResult
from .basics import JobState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .basics import JSONValue
    from .model import Job
    from .queue import Queue

# Pending (scheduled and retrying included), failed and cancelled jobs: no worker holds them. A
# running job's handler already has its payload; a succeeded one is history.
EDITABLE = (JobState.PENDING, JobState.FAILED, JobState.CANCELLED)
RETRYABLE = (JobState.FAILED, JobState.CANCELLED)


def verdict(
    state: str, attempts: int, started_at: float | None, payload: str, seen: Job | None
) -> ActionOutcome | None:
    """Why an edit of the job whose row is (state, attempts, started_at, payload) must not be
    written, or None if it may. `seen` is the job as the editor read it: a claim since then
    changes its state or its start, a retry its state or attempts, another edit its payload."""
    current = JobState(state)
    if seen is not None and (
        (current, attempts, started_at, payload)
        != (seen.state, seen.attempts, seen.started_at, seen.payload_json)
    ):
        return ActionOutcome(ActionResult.CHANGED, current)
    if current not in EDITABLE:
        return ActionOutcome(ActionResult.WRONG_STATE, current)
    return None


def edit_job(
    q: Queue,
    job_id: int,
    payload: JSONValue = None,
    *,
    retry: bool = False,
    payload_json: str | None = None,
    seen: Job | None = None,
) -> Job:
    """`Queue.edit`: validate, write through the backend as this user on this host, and turn a
    refusal into the error that says why."""
    import getpass
    import os
    import socket
    import time

    from .errors import InvalidInput, InvalidTransition
    from .queue_actions import outcome_error
    from .values import dump_json

    if payload_json is None:
        payload_json = dump_json({} if payload is None else payload, "payload", q.payload_limit)
    elif len(payload_json.encode("utf-8", "surrogatepass")) > q.payload_limit:
        raise InvalidInput(f"payload is over the limit of {q.payload_limit:,} bytes")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        user = f"uid {os.getuid()}"
    outcome = q.backend.edit_payload(job_id, payload_json, time.time(), user=user,
                                     host=socket.gethostname(), retry=retry,
                                     seen=seen)  # fmt: skip
    if outcome.result is ActionResult.CHANGED:
        now_state = outcome.state.value if outcome.state is not None else "changed"
        raise InvalidTransition(f"job {job_id} changed while it was being edited (it is"
                                f" {now_state} now); nothing written")  # fmt: skip
    if not outcome.done:
        raise outcome_error(job_id, outcome, "edit", q.location)
    return q.get(job_id)


# ---- the text a person edits ---------------------------------------------------------------


def payload_for_edit(payload_json: str) -> str:
    """The payload as a person edits it: JSON indented by 2, keys in their stored order, values
    exact (a stored payload is canonical JSON, so this text reads back as the same bytes);
    a stored text that is not strict JSON (written by hand) is given as it is."""
    import json

    from .errors import InvalidInput
    from .values import parse_json

    try:
        value = parse_json(payload_json)
    except InvalidInput:
        return payload_json if payload_json.endswith("\n") else payload_json + "\n"
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def strip_comments(text: str) -> str:
    """`text` without its leading blank and `#` lines (where the error of the previous try is
    shown: JSON text never starts with `#`)."""
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (
        not lines[start].strip() or lines[start].lstrip().startswith("#")
    ):
        start += 1
    return "".join(lines[start:])


def payload_from_edit(text: str, limit: int, original: str | None = None) -> str | None:
    """The canonical payload JSON of an edited text (after its leading `#` lines), validated as
    `jobq enqueue --payload` validates (raises InvalidInput); None if the text is empty or, given
    the `original` payload, the same JSON value: either cancels the edit. `null` is `{}`, as on
    every enqueue path."""
    from .values import payload_from_text

    body = strip_comments(text)
    if not body.strip():
        return None
    canonical = payload_from_text(body, limit)
    canonical = "{}" if canonical == "null" else canonical
    if original is not None and same_payload(canonical, original):
        return None
    return canonical


def with_error(body: str, error: str) -> str:
    """The edited text again, with `error` at the top as `#` lines (kubectl's way)."""
    from .safetext import safe_line

    return (
        f"# jobq: this edit was not saved: {safe_line(error, 500)}\n"
        "# Fix it and save, or save an empty or unchanged file to cancel.\n" + body
    )


def same_payload(a: str, b: str) -> bool:
    """Whether two payload texts are the same JSON value once canonical (an edit that only moved
    whitespace changes nothing)."""
    from .errors import InvalidInput
    from .values import payload_from_text

    if a == b:
        return True
    try:  # no size limit here: only the new payload is held to one, where it is validated
        return payload_from_text(a, 1 << 60) == payload_from_text(b, 1 << 60)
    except InvalidInput:
        return False


# ---- the editor ----------------------------------------------------------------------------


def editor_command(env: Mapping[str, str]) -> list[str]:
    """The editor to run, as git and kubectl choose it: $VISUAL, else $EDITOR, else vi; split
    as a shell would split words (quotes kept together), never run through a shell."""
    import shlex

    from .errors import InvalidInput

    for name in ("VISUAL", "EDITOR"):
        text = env.get(name, "")
        if text.strip():
            try:
                argv = shlex.split(text)
            except ValueError as e:
                raise InvalidInput(
                    f"cannot read ${name} ({e}): quote it as a shell would"
                ) from None
            if argv:
                return argv
    return ["vi"]


class EditorSession:
    """A payload in a private temp file (mode 0600, `.json`), edited in the user's editor until
    the text is valid or the user cancels; the file stays if the caller `keep`s it (an edit the
    queue then refused is not lost)."""

    def __init__(self, job_id: int, payload_json: str, limit: int) -> None:
        self.payload_json = payload_json
        self.limit = limit
        self.shown = payload_for_edit(payload_json)
        self.path = self.new_file(job_id, self.shown)
        self.kept = False

    @staticmethod
    def new_file(job_id: int, text: str) -> str:
        """A new private temp file (mode 0600, created exclusively) named as a session's file,
        holding `text`: its path (the dashboard's in-app editor keeps unwritten text in one)."""
        import os
        import tempfile

        fd, path = tempfile.mkstemp(prefix=f"jobq-edit-{job_id}-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run(
        self,
        env: Mapping[str, str],
        run: Callable[[list[str]], int] | None = None,
    ) -> str | None:
        """Open the editor until the text is valid: the new canonical payload, or None if the
        user cancelled (saved an empty file, an unchanged one, or the same payload). `run`
        runs the editor and returns its exit status (default: a child process on this
        terminal). Raises JobqError if the editor cannot run or exits non-zero."""
        from .errors import InvalidInput, JobqError
        from .safetext import safe_line

        argv = editor_command(env)
        run = run or _run_editor
        shown_body = self.shown
        while True:
            try:
                status = run([*argv, self.path])
            except OSError as e:
                raise JobqError(f"cannot run the editor {safe_line(argv[0], 200)!r}: "
                                f"{e.strerror or e}; nothing written") from None  # fmt: skip
            if status != 0:
                how = f"was killed by signal {-status}" if status < 0 else f"exited with {status}"
                raise JobqError(f"the editor {safe_line(argv[0], 200)!r} {how}; nothing written")
            text = self._read()
            body = strip_comments(text)
            if not body.strip() or body.strip() == strip_comments(shown_body).strip():
                return None
            try:
                return payload_from_edit(body, self.limit, self.payload_json)
            except InvalidInput as e:
                shown_body = body
                self._write(with_error(body, str(e)))

    def _read(self) -> str:
        from .errors import InvalidInput
        from .values import decode_utf8

        try:
            with open(self.path, "rb") as f:
                data = f.read(4 * self.limit + 1)
        except FileNotFoundError:  # an editor that deleted the file: as an emptied one
            return ""
        if len(data) > 4 * self.limit:
            raise InvalidInput(f"the edited payload is over the limit of {self.limit:,} bytes")
        return decode_utf8(data, "the edited file")

    def _write(self, text: str) -> None:
        import os

        # the file may have been replaced by the editor (write to a new file, rename): open by
        # name, keep it private
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)

    def keep(self) -> str:
        """Keep the file (the edit was refused); its path."""
        self.kept = True
        return self.path

    def close(self) -> None:
        """Delete the file unless it is kept."""
        import os

        if not self.kept and os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self) -> EditorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_editor(argv: list[str]) -> int:
    import subprocess

    # no shell: the editor and its arguments are the words of $VISUAL/$EDITOR, the path the
    # last one; stdin, stdout and stderr stay the terminal's
    return subprocess.run(argv, check=False).returncode
