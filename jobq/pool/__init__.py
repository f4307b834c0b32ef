"""`jobq work`: a supervisor and its worker children.

supervisor (the loop, signals, shutdown) · children (spawn, reap, kill; timeouts, cancels,
stopped children) · maintenance (renew, rescue, heartbeat, prune, systemd status) · child
(claim, run, record) and slot (what a child shares with the supervisor) · executor (Python
handlers) · commands and guardian (command handlers and their process trees) · loader (handlers
from --app, --exec, --handlers) · settings · systemd (notify, unit file).
"""

from __future__ import annotations

from .supervisor import Pool, run_pool

__all__ = ["Pool", "run_pool"]
