"""The SQLite backend: one WAL-mode queue file, and the only package that imports sqlite3.

connection (open, PRAGMAs, transactions, file identity) · reads · writes (the state machine) ·
sql (every statement, named) · schema (migrations) · filecheck (refusals before any write) ·
waker (inotify on the real -wal) · turnstile (producers take turns) · checkpoint (WAL bound).
"""
