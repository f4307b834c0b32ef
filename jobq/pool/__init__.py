"""`jobq work`: a supervisor and its worker children.

supervisor (the loop, signals, respawn, timeouts, cancels) · child (claim, run, record) ·
executor (Python handlers) · commands and guardian (command handlers and their process trees) ·
loader (handlers from --app, --exec, --handlers) · settings · systemd (notify, unit file).
"""

from __future__ import annotations

from .supervisor import Pool, run_pool

__all__ = ["Pool", "run_pool"]
