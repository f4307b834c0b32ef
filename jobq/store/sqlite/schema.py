"""The queue file's schema, as migrations keyed on `PRAGMA user_version`.

Migration N brings a file from user_version N-1 to N. Never edit a released migration: add one.
"""

from __future__ import annotations

# "jobq" in ASCII: marks a SQLite file as a queue file (PRAGMA application_id, header offset 68).
APPLICATION_ID = 0x6A6F6271

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: jobs, attempt history, worker pools, queue settings
    (
        """
        CREATE TABLE jobs (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after prune
            type             TEXT    NOT NULL,
            queue            TEXT    NOT NULL DEFAULT 'default',
            payload          TEXT    NOT NULL,
            priority         INTEGER NOT NULL DEFAULT 0,
            state            TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
            run_at           REAL    NOT NULL,
            attempts         INTEGER NOT NULL DEFAULT 0,
            max_attempts     INTEGER CHECK (max_attempts >= 1),  -- NULL: the handler's, else 4
            timeout          REAL    CHECK (timeout >= 0),       -- NULL: the handler's, else 300
            unique_key       TEXT,
            result           TEXT,
            last_error       TEXT,
            created_at       REAL    NOT NULL,
            started_at       REAL,
            finished_at      REAL,
            worker_id        TEXT,
            lease_token      TEXT,
            lease_until      REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            CHECK ((state = 'running') = (lease_token IS NOT NULL))
        )
        """,
        # The claim walks this index in claim order and stops at the first due row, so claiming
        # costs the same with 0 or 10 million finished jobs in the table.
        "CREATE INDEX jobs_pending ON jobs (priority DESC, run_at, id) WHERE state = 'pending'",
        "CREATE INDEX jobs_running ON jobs (lease_until) WHERE state = 'running'",
        "CREATE INDEX jobs_state ON jobs (state, id)",
        "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL",
        """CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
           WHERE unique_key IS NOT NULL AND state IN ('pending', 'running')""",
        """
        CREATE TABLE attempts (
            id          INTEGER PRIMARY KEY,
            job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            attempt     INTEGER NOT NULL,
            worker_id   TEXT,
            started_at  REAL    NOT NULL,
            finished_at REAL    NOT NULL,
            outcome     TEXT    NOT NULL CHECK (outcome IN
                ('succeeded', 'failed', 'timeout', 'crashed', 'cancelled', 'interrupted')),
            error       TEXT,
            traceback   TEXT,
            output      TEXT
        )
        """,
        "CREATE INDEX attempts_job ON attempts (job_id, attempt)",
        """CREATE INDEX attempts_errors ON attempts (id)
           WHERE outcome IN ('failed', 'timeout', 'crashed')""",
        """
        CREATE TABLE workers (
            id           TEXT PRIMARY KEY,
            name         TEXT    NOT NULL,
            host         TEXT    NOT NULL,
            pid          INTEGER NOT NULL,
            started_at   REAL    NOT NULL,
            heartbeat_at REAL    NOT NULL,
            concurrency  INTEGER NOT NULL,
            queues       TEXT    NOT NULL DEFAULT '[]',
            types        TEXT    NOT NULL DEFAULT '[]',
            jobs_done    INTEGER NOT NULL DEFAULT 0,
            status       TEXT    NOT NULL DEFAULT 'running'
        )
        """,
        """
        CREATE TABLE queues (
            name      TEXT PRIMARY KEY,
            paused    INTEGER NOT NULL DEFAULT 0,
            paused_at REAL
        )
        """,
    ),
    # 2: unique keys are scoped to (type, key); a pool's --type globs apart from its handler
    # names (NULL: registered before this migration, `types` holding both); a pool's process
    # identity (lifecycle.proc_key), so that another pool on the same host can tell at once that
    # it died, whatever its heartbeat and however its pid was reused
    (
        "DROP INDEX jobs_unique",
        """CREATE UNIQUE INDEX jobs_unique ON jobs (type, unique_key)
           WHERE unique_key IS NOT NULL AND state IN ('pending', 'running')""",
        "ALTER TABLE workers ADD COLUMN type_globs TEXT",
        "ALTER TABLE workers ADD COLUMN proc_key TEXT",
    ),
    # 3: what pruned attempts add to the Prometheus counters (jobq metrics), so that a prune
    # never makes a counter go down: per job type, a key ('attempts:<outcome>', 'seconds',
    # 'bucket:<i>') and the total of the attempts pruned so far
    (
        """
        CREATE TABLE metric_totals (
            type  TEXT NOT NULL,
            key   TEXT NOT NULL,
            value REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (type, key)
        ) WITHOUT ROWID
        """,
    ),
    # 4: how often a job snoozed (jobq.Snooze), so that it cannot snooze for ever
    ("ALTER TABLE jobs ADD COLUMN snoozes INTEGER NOT NULL DEFAULT 0",),
    # 5: periodic jobs (jobq.schedules): fired by pools, one job per due slot
    (
        """
        CREATE TABLE schedules (
            name        TEXT PRIMARY KEY,
            cron        TEXT    NOT NULL,
            tz          TEXT    NOT NULL DEFAULT 'UTC',
            type        TEXT    NOT NULL,
            queue       TEXT    NOT NULL DEFAULT 'default',
            payload     TEXT    NOT NULL DEFAULT '{}',
            priority    INTEGER NOT NULL DEFAULT 0,
            paused      INTEGER NOT NULL DEFAULT 0,
            next_at     REAL    NOT NULL,
            last_at     REAL,
            last_job_id INTEGER,
            created_at  REAL    NOT NULL
        )
        """,
        "CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
