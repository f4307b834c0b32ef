"""The command line: a thin layer over jobq's library.

app: `main()`, the error edge and the typer app; jobs, admin, work: the commands; common: what
they share; enqueue: the typer-free fast path `jobq enqueue` takes in shell loops; output: tables
and JSON.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
