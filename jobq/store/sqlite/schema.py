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
    # 6: lifecycle events (jobq events, Queue.events), written by triggers in the transaction
    # of the change they describe, so every write path records them and none pays a round trip
    # (since 12, `created` is written by the inserting statement's next one).
    # Kinds and what each means: jobq/store/sqlite/events.py. No index but the id: readers
    # scan forward from a cursor, and the table is bounded (retention and a hard cap).
    (
        # Ids are rowids, max + 1: one writer at a time makes them commit-ordered (a reader of
        # `id > last` misses nothing), and as pruning always keeps the newest event they are
        # never reused. (Not AUTOINCREMENT: its sqlite_sequence update on every insert cost the
        # drain ~3 % more.)
        """
        CREATE TABLE events (
            id        INTEGER PRIMARY KEY,
            at        REAL    NOT NULL,
            kind      TEXT    NOT NULL,
            job_id    INTEGER NOT NULL,
            type      TEXT    NOT NULL,
            queue     TEXT    NOT NULL,
            attempt   INTEGER NOT NULL,
            error     TEXT,
            duration  REAL,
            worker_id TEXT
        )
        """,
        """
        CREATE TRIGGER events_created AFTER INSERT ON jobs
        BEGIN
            INSERT INTO events (at, kind, job_id, type, queue, attempt)
            VALUES (NEW.created_at, 'created', NEW.id, NEW.type, NEW.queue, NEW.attempts);
        END
        """,
        # (COALESCE here and below: a hand-written UPDATE that leaves the time out still gets
        # its event, at the current time, rather than failing)
        """
        CREATE TRIGGER events_started AFTER UPDATE OF state ON jobs
        WHEN NEW.state = 'running' AND OLD.state <> 'running'
        BEGIN
            INSERT INTO events (at, kind, job_id, type, queue, attempt, worker_id)
            VALUES (COALESCE(NEW.started_at, (julianday('now') - 2440587.5) * 86400.0),
                    'started', NEW.id, NEW.type, NEW.queue, NEW.attempts, NEW.worker_id);
        END
        """,
        # an operator's cancel of a pending job (a running one ends through its attempt)
        """
        CREATE TRIGGER events_cancelled AFTER UPDATE OF state ON jobs
        WHEN NEW.state = 'cancelled' AND OLD.state = 'pending'
        BEGIN
            INSERT INTO events (at, kind, job_id, type, queue, attempt, error)
            VALUES (COALESCE(NEW.finished_at, (julianday('now') - 2440587.5) * 86400.0),
                    'cancelled', NEW.id, NEW.type, NEW.queue, NEW.attempts, NEW.last_error);
        END
        """,
        # an operator's retry of a failed or cancelled job (its attempts start again at 0)
        """
        CREATE TRIGGER events_retried AFTER UPDATE OF state ON jobs
        WHEN NEW.state = 'pending' AND OLD.state IN ('failed', 'cancelled')
        BEGIN
            INSERT INTO events (at, kind, job_id, type, queue, attempt)
            VALUES (NEW.run_at, 'retried', NEW.id, NEW.type, NEW.queue, NEW.attempts);
        END
        """,
        # A success, from the job's own row (no lookup: the most frequent event of a drain)
        """
        CREATE TRIGGER events_succeeded AFTER UPDATE OF state ON jobs
        WHEN NEW.state = 'succeeded' AND OLD.state = 'running'
        BEGIN
            INSERT INTO events (at, kind, job_id, type, queue, attempt, duration, worker_id)
            VALUES (NEW.finished_at, 'succeeded', NEW.id, NEW.type, NEW.queue, NEW.attempts,
                    NEW.finished_at - NEW.started_at, NEW.worker_id);
        END
        """,
        # Every other ended attempt. The store updates the job before it records the attempt,
        # so the job's state here is its new one: one event per attempt, named by what became
        # of the job. The error is its first line, at most 1000 characters.
        """
        CREATE TRIGGER events_ended AFTER INSERT ON attempts
        WHEN NEW.outcome <> 'succeeded'
        BEGIN
            INSERT INTO events (at, kind, job_id, type, queue, attempt, error, duration,
                                worker_id)
            SELECT NEW.finished_at,
                   CASE
                       WHEN NEW.outcome = 'interrupted' THEN 'released'
                       WHEN j.state = 'cancelled' THEN 'cancelled'
                       WHEN j.state = 'pending' AND NEW.outcome = 'crashed' THEN 'crashed'
                       WHEN j.state = 'pending' THEN 'retrying'
                       ELSE 'failed'
                   END,
                   NEW.job_id, j.type, j.queue, NEW.attempt,
                   substr(NEW.error, 1, CASE instr(NEW.error, char(10))
                                        WHEN 0 THEN 1000
                                        ELSE min(instr(NEW.error, char(10)) - 1, 1000) END),
                   NEW.finished_at - NEW.started_at, NEW.worker_id
            FROM jobs AS j WHERE j.id = NEW.job_id;
        END
        """,
    ),
    # 7: live output and progress of running attempts (jobq.liveoutput): flushed by the pool while
    # the attempt runs, fenced by its lease; deleted with the job. A retried job's attempt
    # numbers start again: the first write of an attempt replaces what an earlier one of the
    # same number left.
    (
        """
        CREATE TABLE job_output (
            job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            seq     INTEGER NOT NULL,
            at      REAL    NOT NULL,
            stream  TEXT    NOT NULL CHECK (stream IN ('stdout', 'stderr', 'log', 'jobq')),
            text    TEXT    NOT NULL
        )
        """,
        "CREATE UNIQUE INDEX job_output_seq ON job_output (job_id, attempt, seq)",
        """
        CREATE TABLE job_progress (
            job_id   INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            attempt  INTEGER NOT NULL,
            fraction REAL    NOT NULL CHECK (fraction >= 0 AND fraction <= 1),
            message  TEXT,
            at       REAL    NOT NULL
        )
        """,
    ),
    # 8: the per-minute history (jobq.rollup): one row per figure, a minute written once by
    # whichever pool rolls it up first (its 'rolled' row is the key). Failed attempts by finish
    # time (successes are found by jobs_finished): rolling up a minute reads only that minute's,
    # however long the history, and the drain's successful attempts pay for no new index.
    (
        """
        CREATE TABLE rollup (
            minute INTEGER NOT NULL,  -- the minute's start, seconds since the epoch
            queue  TEXT    NOT NULL,  -- '' where a figure is not per queue
            type   TEXT    NOT NULL,  -- '' where a figure is not per type
            key    TEXT    NOT NULL,
            value  REAL    NOT NULL,
            PRIMARY KEY (minute, queue, type, key)
        ) WITHOUT ROWID
        """,
        """CREATE INDEX attempts_failures ON attempts (finished_at)
           WHERE outcome IN ('failed', 'timeout', 'crashed')""",
    ),
    # 9: limits that hold across pools (jobq.limits): a key (a job type or 'queue:NAME'), at
    # most `concurrency` running, at most `rate_count` started per `rate_period` seconds, and
    # the rate's GCRA theoretical arrival time (epoch seconds)
    (
        """
        CREATE TABLE limits (
            key         TEXT PRIMARY KEY,
            concurrency INTEGER CHECK (concurrency >= 1),
            rate_count  INTEGER CHECK (rate_count >= 1),
            rate_period REAL    CHECK (rate_period > 0),
            tat         REAL    NOT NULL DEFAULT 0,
            created_at  REAL    NOT NULL,
            CHECK (concurrency IS NOT NULL OR rate_count IS NOT NULL),
            CHECK ((rate_count IS NULL) = (rate_period IS NULL))
        ) WITHOUT ROWID
        """,
    ),
    # 10: the payload edits of jobs (`jobq edit`): when, who (user, host), the payload replaced,
    # and whether the edit also retried the job; deleted with their job (prune, delete)
    (
        """
        CREATE TABLE job_edits (
            id          INTEGER PRIMARY KEY,
            job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            at          REAL    NOT NULL,
            user        TEXT    NOT NULL,
            host        TEXT    NOT NULL,
            old_payload TEXT    NOT NULL,
            retried     INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX job_edits_job ON job_edits (job_id, id)",
    ),
    # 11: dependencies (`enqueue --after`). A job runs once every job it is after succeeded:
    # `blocked` counts those that have not yet, and the claim's partial index leaves blocked
    # jobs out, so claims cost the same however many jobs wait on others (and a queue that
    # never uses dependencies pays nothing). Blocked jobs have an index of their own in claim
    # order, for listings, whose WHERE names only `blocked` (every write that leaves blocked > 0
    # keeps the job pending): a claim or an ending, which change the state only, never touch
    # it. `job_deps` links a job to the jobs it is after (by after_id: what an ending looks up);
    # no foreign key on after_id, so a dependent keeps naming a job that was deleted since.
    # `has_dependents` marks a job that others wait for: only its ending looks for dependents,
    # so a queue that never uses them pays no lookup.
    (
        "ALTER TABLE jobs ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0",
        "DROP INDEX jobs_pending",
        """CREATE INDEX jobs_pending ON jobs (priority DESC, run_at, id)
           WHERE state = 'pending' AND blocked = 0""",
        "CREATE INDEX jobs_blocked ON jobs (priority DESC, run_at, id) WHERE blocked > 0",
        """
        CREATE TABLE job_deps (
            job_id   INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            after_id INTEGER NOT NULL,
            PRIMARY KEY (job_id, after_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX job_deps_after ON job_deps (after_id, job_id)",
    ),
    # 12: a new job's `created` event is written by the statement after its insert
    # (sql.CREATED_EVENTS, for a whole range of ids at once), not by a trigger per row: a bulk
    # enqueue of 200,000 jobs spent 14 % of its insert firing the trigger. Every path of jobq
    # that inserts jobs writes it (tests/test_events.py); a row inserted by hand has none.
    ("DROP TRIGGER IF EXISTS events_created",),  # (a file whose trigger was dropped by hand)
)

SCHEMA_VERSION = len(MIGRATIONS)
