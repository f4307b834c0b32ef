"""The command line: a thin layer over jobq's library (app: the typer commands; enqueue: the
typer-free fast path `jobq enqueue` takes in shell loops; output: tables and JSON)."""

from __future__ import annotations

from .app import main

__all__ = ["main"]
