"""jobq's tables in a PostgreSQL schema of their own, as versioned migrations.

Migration N brings a schema from version N-1 to N (the one row of `jobq_meta`). Never edit a
released migration: add one. Every statement names the schema as `{s}` (a validated, quoted
identifier), so a table is always jobq's whatever the caller's search_path.

The tables are those of the SQLite file (jobq/store/sqlite/schema.py), with `timestamptz` for
times (people query them with plain SQL) and `json` (not jsonb: it keeps the exact text, so a
payload reads back byte for byte as enqueued). Two things SQLite has no need for:

- a sequence `changes`, bumped by every statement that writes jobs, workers or queues (the change
  token: a sequence, not a counter row, which would serialise every writer);
- statement triggers on those tables that bump it and call `pg_notify('jobq:<schema>', '')` when
  a statement changed rows: delivered at commit only, so a listener never wakes before the write
  is visible, and written once here rather than in every statement (raw SQL by a person wakes
  the workers too).
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: jobs, attempt history, worker pools, queue settings; the change sequence and trigger.
    # (The SQLite file's migrations 1 and 2, in their final form.)
    (
        """
        CREATE TABLE {s}.jobs (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never reused
            type             text    NOT NULL,
            queue            text    NOT NULL DEFAULT 'default',
            payload          json    NOT NULL,
            priority         integer NOT NULL DEFAULT 0,
            state            text    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
            run_at           timestamptz NOT NULL,
            attempts         integer NOT NULL DEFAULT 0,
            max_attempts     integer CHECK (max_attempts >= 1),  -- NULL: the handler's, else 4
            timeout          float8  CHECK (timeout >= 0),       -- NULL: the handler's, else 300
            unique_key       text,
            result           json,
            last_error       text,
            created_at       timestamptz NOT NULL,
            started_at       timestamptz,
            finished_at      timestamptz,
            worker_id        text,
            lease_token      text,
            lease_until      timestamptz,
            cancel_requested boolean NOT NULL DEFAULT false,
            CHECK ((state = 'running') = (lease_token IS NOT NULL))
        )
        """,
        # The claim walks this index in claim order and stops at the first due row, so claiming
        # costs the same with 0 or 10 million finished jobs in the table.
        "CREATE INDEX jobs_pending ON {s}.jobs (priority DESC, run_at, id) WHERE state = 'pending'",
        "CREATE INDEX jobs_running ON {s}.jobs (lease_until) WHERE state = 'running'",
        "CREATE INDEX jobs_state ON {s}.jobs (state, id)",
        "CREATE INDEX jobs_finished ON {s}.jobs (finished_at) WHERE finished_at IS NOT NULL",
        """CREATE UNIQUE INDEX jobs_unique ON {s}.jobs (type, unique_key)
           WHERE unique_key IS NOT NULL AND state IN ('pending', 'running')""",
        """
        CREATE TABLE {s}.attempts (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      bigint  NOT NULL REFERENCES {s}.jobs (id) ON DELETE CASCADE,
            attempt     integer NOT NULL,
            worker_id   text,
            started_at  timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            outcome     text    NOT NULL CHECK (outcome IN
                ('succeeded', 'failed', 'timeout', 'crashed', 'cancelled', 'interrupted')),
            error       text,
            traceback   text,
            output      text
        )
        """,
        "CREATE INDEX attempts_job ON {s}.attempts (job_id, attempt)",
        """CREATE INDEX attempts_errors ON {s}.attempts (id)
           WHERE outcome IN ('failed', 'timeout', 'crashed')""",
        """
        CREATE TABLE {s}.workers (
            id           text PRIMARY KEY,
            name         text    NOT NULL,
            host         text    NOT NULL,
            pid          integer NOT NULL,
            started_at   timestamptz NOT NULL,
            heartbeat_at timestamptz NOT NULL,
            concurrency  integer NOT NULL,
            queues       json    NOT NULL DEFAULT '[]',
            types        json    NOT NULL DEFAULT '[]',
            jobs_done    integer NOT NULL DEFAULT 0,
            status       text    NOT NULL DEFAULT 'running',
            type_globs   json,
            proc_key     text
        )
        """,
        """
        CREATE TABLE {s}.queues (
            name      text PRIMARY KEY,
            paused    boolean NOT NULL DEFAULT false,
            paused_at timestamptz
        )
        """,
        "CREATE SEQUENCE {s}.changes",
        """
        CREATE FUNCTION {s}.jobq_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM nextval('{s}.changes');
            PERFORM pg_notify({channel}, '');
            RETURN NULL;
        END $$
        """,
        # An UPDATE or DELETE that changed no row (a claim, renewal or fenced write that found
        # nothing) must not notify: every idle worker wakes on a notification and claims, and an
        # empty claim that woke the others would set them ping-ponging for ever. The changed
        # rows are in the transition table `jobq_rows`. (An INSERT inserts rows, except one that
        # yields to a unique key: a rare, single wake-up, not worth copying bulk inserts.)
        """
        CREATE FUNCTION {s}.jobq_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM jobq_rows) THEN
                PERFORM nextval('{s}.changes');
                PERFORM pg_notify({channel}, '');
            END IF;
            RETURN NULL;
        END $$
        """,
        *(
            sql
            for table in ("jobs", "workers", "queues")
            for sql in (
                f"""CREATE TRIGGER jobq_changed_insert AFTER INSERT ON {{s}}.{table}
                    FOR EACH STATEMENT EXECUTE FUNCTION {{s}}.jobq_changed()""",
                f"""CREATE TRIGGER jobq_changed_update AFTER UPDATE ON {{s}}.{table}
                    REFERENCING NEW TABLE AS jobq_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION {{s}}.jobq_rows_changed()""",
                f"""CREATE TRIGGER jobq_changed_delete AFTER DELETE ON {{s}}.{table}
                    REFERENCING OLD TABLE AS jobq_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION {{s}}.jobq_rows_changed()""",
            )
        ),
        # The change token (see Connection.change_token): the sequence read first, then, in a
        # statement of its own (a fresh snapshot), the snapshot's bounds and the transactions
        # still in progress. A writer bumps the sequence before it commits; until it has
        # committed, its transaction is in progress in every snapshot (listed, or at or past
        # xmax), and its commit changes the snapshot (off the list, or xmax moves past it): so
        # the token changes once the write is visible, however the read and the commit interleave.
        # (Other transactions of the server move the snapshot too: a spurious change costs a
        # reader one needless reload.)
        """
        CREATE FUNCTION {s}.jobq_change_token() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            seen bigint;
        BEGIN
            SELECT last_value INTO seen FROM {s}.changes;
            RETURN seen # (hashtext(pg_current_snapshot()::text)::bigint << 32);
        END $$
        """,
    ),
    # 2: the SQLite file's migrations 3-5: what pruned attempts add to the Prometheus counters
    # (jobq.metrics), how often a job snoozed (jobq.control), periodic jobs (jobq.schedules)
    (
        """
        CREATE TABLE {s}.metric_totals (
            type  text   NOT NULL,
            key   text   NOT NULL,
            value float8 NOT NULL DEFAULT 0,
            PRIMARY KEY (type, key)
        )
        """,
        "ALTER TABLE {s}.jobs ADD COLUMN snoozes integer NOT NULL DEFAULT 0",
        """
        CREATE TABLE {s}.schedules (
            name        text PRIMARY KEY,
            cron        text        NOT NULL,
            tz          text        NOT NULL DEFAULT 'UTC',
            type        text        NOT NULL,
            queue       text        NOT NULL DEFAULT 'default',
            payload     json        NOT NULL DEFAULT '{{}}',
            priority    integer     NOT NULL DEFAULT 0,
            paused      boolean     NOT NULL DEFAULT false,
            next_at     timestamptz NOT NULL,
            last_at     timestamptz,
            last_job_id bigint,
            created_at  timestamptz NOT NULL
        )
        """,
        "CREATE INDEX schedules_due ON {s}.schedules (next_at) WHERE NOT paused",
    ),
    # 3: lifecycle events (jobq events, Queue.events), written by triggers in the transaction of
    # the change they describe, as the SQLite file's schema 6 (kinds: jobq/store/sqlite/events.py).
    # A sequence's values are not commit-ordered here: a transaction may take a lower one and
    # commit after a higher one is read, and a follower reading `id > last` would skip it for
    # good. So a row is written with its transaction id (`xid`) and no `id`; the feed's `id` is
    # given later, in (xid, seq) order, to the rows whose transaction and every older one have
    # ended (xid < pg_snapshot_xmin(pg_current_snapshot())): no later commit can come before
    # them. The cursor on (xid, position) below the xmin horizon is the technique of e.g.
    # Emmett's PostgreSQL event store (event-driven-io/emmett, readMessagesBatch /
    # readLastMessageGlobalPosition); the dense ids on top are given by whoever reads
    # (jobq/store/postgres/events.py), one at a time, so writers never wait for each other.
    (
        """
        CREATE TABLE {s}.events (
            seq       bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            xid       xid8    NOT NULL DEFAULT pg_current_xact_id(),
            id        bigint  UNIQUE,  -- the feed's id: NULL until its transaction has settled
            at        timestamptz NOT NULL,
            kind      text    NOT NULL,
            job_id    bigint  NOT NULL,
            type      text    NOT NULL,
            queue     text    NOT NULL,
            attempt   integer NOT NULL,
            error     text,
            duration  float8,
            worker_id text
        )
        """,
        "CREATE INDEX events_unsequenced ON {s}.events (xid, seq) WHERE id IS NULL",
        """
        CREATE FUNCTION {s}.jobq_event_created() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {s}.events (at, kind, job_id, type, queue, attempt)
            VALUES (NEW.created_at, 'created', NEW.id, NEW.type, NEW.queue, NEW.attempts);
            RETURN NULL;
        END $$
        """,
        """CREATE TRIGGER jobq_event_created AFTER INSERT ON {s}.jobs
           FOR EACH ROW EXECUTE FUNCTION {s}.jobq_event_created()""",
        # started (a claim); an operator's cancel of a pending job (a running one ends through
        # its attempt); an operator's retry of a failed or cancelled job (attempts back to 0)
        """
        CREATE FUNCTION {s}.jobq_event_state() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.state = 'running' THEN
                INSERT INTO {s}.events (at, kind, job_id, type, queue, attempt, worker_id)
                VALUES (COALESCE(NEW.started_at, now()), 'started', NEW.id, NEW.type, NEW.queue,
                        NEW.attempts, NEW.worker_id);
            ELSIF NEW.state = 'cancelled' AND OLD.state = 'pending' THEN
                INSERT INTO {s}.events (at, kind, job_id, type, queue, attempt, error)
                VALUES (COALESCE(NEW.finished_at, now()), 'cancelled', NEW.id, NEW.type,
                        NEW.queue, NEW.attempts, NEW.last_error);
            ELSIF NEW.state = 'pending' AND OLD.state IN ('failed', 'cancelled') THEN
                INSERT INTO {s}.events (at, kind, job_id, type, queue, attempt)
                VALUES (NEW.run_at, 'retried', NEW.id, NEW.type, NEW.queue, NEW.attempts);
            END IF;
            RETURN NULL;
        END $$
        """,
        """CREATE TRIGGER jobq_event_state AFTER UPDATE OF state ON {s}.jobs
           FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
           EXECUTE FUNCTION {s}.jobq_event_state()""",
        # Every ended attempt, named by what became of its job: the store updates the job in
        # the same statement, and an AFTER trigger sees the statement's changes.
        """
        CREATE FUNCTION {s}.jobq_event_ended() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            j record;
        BEGIN
            SELECT type, queue, state INTO j FROM {s}.jobs WHERE id = NEW.job_id;
            INSERT INTO {s}.events (at, kind, job_id, type, queue, attempt, error, duration,
                                    worker_id)
            VALUES (NEW.finished_at,
                    CASE
                        WHEN NEW.outcome = 'succeeded' THEN 'succeeded'
                        WHEN NEW.outcome = 'interrupted' THEN 'released'
                        WHEN j.state = 'cancelled' THEN 'cancelled'
                        WHEN j.state = 'pending' AND NEW.outcome = 'crashed' THEN 'crashed'
                        WHEN j.state = 'pending' THEN 'retrying'
                        ELSE 'failed'
                    END,
                    NEW.job_id, j.type, j.queue, NEW.attempt,
                    left(split_part(NEW.error, chr(10), 1), 1000),
                    date_part('epoch', NEW.finished_at) - date_part('epoch', NEW.started_at),
                    NEW.worker_id);
            RETURN NULL;
        END $$
        """,
        """CREATE TRIGGER jobq_event_ended AFTER INSERT ON {s}.attempts
           FOR EACH ROW EXECUTE FUNCTION {s}.jobq_event_ended()""",
    ),
    # 4: live output and progress of running attempts (the SQLite file's job_output and
    # job_progress): their writes notify like those of jobs, so `jobq logs -f` wakes on them
    (
        """
        CREATE TABLE {s}.job_output (
            job_id  bigint  NOT NULL REFERENCES {s}.jobs (id) ON DELETE CASCADE,
            attempt integer NOT NULL,
            seq     integer NOT NULL,
            at      timestamptz NOT NULL,
            stream  text    NOT NULL CHECK (stream IN ('stdout', 'stderr', 'log', 'jobq')),
            text    text    NOT NULL,
            PRIMARY KEY (job_id, attempt, seq)
        )
        """,
        """
        CREATE TABLE {s}.job_progress (
            job_id   bigint  PRIMARY KEY REFERENCES {s}.jobs (id) ON DELETE CASCADE,
            attempt  integer NOT NULL,
            fraction float8  NOT NULL CHECK (fraction >= 0 AND fraction <= 1),
            message  text,
            at       timestamptz NOT NULL
        )
        """,
        *(
            f"""CREATE TRIGGER jobq_changed_insert AFTER INSERT ON {{s}}.{table}
                FOR EACH STATEMENT EXECUTE FUNCTION {{s}}.jobq_changed()"""
            for table in ("job_output", "job_progress")
        ),
        """CREATE TRIGGER jobq_changed_update AFTER UPDATE ON {s}.job_progress
           REFERENCING NEW TABLE AS jobq_rows
           FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobq_rows_changed()""",
    ),
    # 5: the per-minute history (jobq.rollup), as the SQLite file's schema 8: a minute written
    # once by whichever pool (on whichever host) rolls it up first; failed attempts by finish
    # time (successes are found by jobs_finished).
    (
        """
        CREATE TABLE {s}.rollup (
            minute timestamptz NOT NULL,  -- the minute's start
            queue  text        NOT NULL,  -- '' where a figure is not per queue
            type   text        NOT NULL,  -- '' where a figure is not per type
            key    text        NOT NULL,
            value  float8      NOT NULL,
            PRIMARY KEY (minute, queue, type, key)
        )
        """,
        """CREATE INDEX attempts_failures ON {s}.attempts (finished_at)
           WHERE outcome IN ('failed', 'timeout', 'crashed')""",
    ),
    # 6: limits that hold across pools (jobq.limits), as the SQLite file's; `tat` (the rate's
    # GCRA theoretical arrival time) stays epoch seconds: internal, compared with claimers'
    # clocks. Setting or removing a limit wakes the workers (a removed limit releases its jobs).
    (
        """
        CREATE TABLE {s}.limits (
            key         text PRIMARY KEY,
            concurrency integer CHECK (concurrency >= 1),
            rate_count  integer CHECK (rate_count >= 1),
            rate_period float8  CHECK (rate_period > 0),
            tat         float8  NOT NULL DEFAULT 0,
            created_at  timestamptz NOT NULL,
            CHECK (concurrency IS NOT NULL OR rate_count IS NOT NULL),
            CHECK ((rate_count IS NULL) = (rate_period IS NULL))
        )
        """,
        """CREATE TRIGGER jobq_changed_limits AFTER INSERT OR DELETE ON {s}.limits
           FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobq_changed()""",
    ),
    # 7: the payload edits of jobs (`jobq edit`), as the SQLite file's schema 10: deleted with
    # their job. Not a trigger table of `changes`: an edit also updates its job, which bumps it.
    (
        """
        CREATE TABLE {s}.job_edits (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      bigint  NOT NULL REFERENCES {s}.jobs (id) ON DELETE CASCADE,
            at          timestamptz NOT NULL,
            "user"      text    NOT NULL,
            host        text    NOT NULL,
            old_payload json    NOT NULL,
            retried     boolean NOT NULL DEFAULT false
        )
        """,
        "CREATE INDEX job_edits_job ON {s}.job_edits (job_id, id)",
    ),
    # 8: dependencies (`enqueue --after`), as the SQLite file's migration 11: `blocked` counts a
    # job's dependencies that have not succeeded yet, and the claim's partial index leaves
    # blocked jobs out (claims cost the same however many wait, and nothing when none do);
    # blocked jobs have an index of their own in claim order, for listings, whose WHERE names only
    # `blocked`, so that claims and endings never touch it (see the SQLite file's). No foreign
    # key on after_id: a dependent keeps naming a job that was deleted since. `has_dependents`
    # marks a job that others wait for (set by the dependent's enqueue, which locks the row).
    (
        "ALTER TABLE {s}.jobs ADD COLUMN blocked integer NOT NULL DEFAULT 0",
        "ALTER TABLE {s}.jobs ADD COLUMN has_dependents boolean NOT NULL DEFAULT false",
        "DROP INDEX {s}.jobs_pending",
        """CREATE INDEX jobs_pending ON {s}.jobs (priority DESC, run_at, id)
           WHERE state = 'pending' AND blocked = 0""",
        "CREATE INDEX jobs_blocked ON {s}.jobs (priority DESC, run_at, id) WHERE blocked > 0",
        """
        CREATE TABLE {s}.job_deps (
            job_id   bigint NOT NULL REFERENCES {s}.jobs (id) ON DELETE CASCADE,
            after_id bigint NOT NULL,
            PRIMARY KEY (job_id, after_id)
        )
        """,
        "CREATE INDEX job_deps_after ON {s}.job_deps (after_id, job_id)",
        # A success unblocks the job's dependents by a trigger, not in the completing statement:
        # a dependent enqueued while the job ran commits its links after that statement's
        # snapshot was taken (its enqueue locked the job's row first, so the completion waited
        # for it), and only a VOLATILE function's own statement takes a snapshot that sees
        # them. Fires only for jobs that have dependents.
        """
        CREATE FUNCTION {s}.jobq_unblock() RETURNS trigger LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            UPDATE {s}.jobs SET blocked = blocked - 1
            WHERE id IN (SELECT job_id FROM {s}.job_deps WHERE after_id = NEW.id)
              AND state = 'pending' AND blocked > 0;
            RETURN NULL;
        END $$
        """,
        """CREATE TRIGGER jobq_unblock AFTER UPDATE OF state ON {s}.jobs
           FOR EACH ROW WHEN (NEW.state = 'succeeded' AND OLD.state <> 'succeeded'
                              AND NEW.has_dependents)
           EXECUTE FUNCTION {s}.jobq_unblock()""",
    ),
    # 9: a success unblocks its dependents locking their rows in id order, as an enqueue locks
    # the jobs it goes after (store/postgres/sql_deps.py MARK_DEPENDED): an UPDATE alone locks
    # rows in the order its plan finds them (for many dependents, where they lie in the table),
    # and an enqueue after two dependents of a job that succeeded at that moment could deadlock
    # with the success (the server then fails one of them: an enqueue or a worker's write).
    (
        """
        CREATE OR REPLACE FUNCTION {s}.jobq_unblock() RETURNS trigger LANGUAGE plpgsql VOLATILE
        AS $$
        BEGIN
            UPDATE {s}.jobs SET blocked = blocked - 1
            FROM (SELECT j.id FROM {s}.jobs AS j JOIN {s}.job_deps AS d ON d.job_id = j.id
                  WHERE d.after_id = NEW.id AND j.state = 'pending' AND j.blocked > 0
                  ORDER BY j.id FOR NO KEY UPDATE OF j) AS w
            WHERE {s}.jobs.id = w.id AND {s}.jobs.state = 'pending' AND {s}.jobs.blocked > 0;
            RETURN NULL;
        END $$
        """,
    ),
    # 10: a bulk insert writes its jobs' `created` events itself, in the same statement
    # (sql_bulk.INSERT_JOBS_BULK: one INSERT ... SELECT over the inserted rows), and tells the row
    # trigger so with `SET LOCAL jobq.bulk_insert = 'on'`: a bulk enqueue of 50,000 jobs ran at
    # 64k jobs/s with the trigger per row and 95k without it. Every other insert, a hand-written
    # one or COPY included, still fires it (a trigger per statement over the inserted rows cost
    # a single enqueue 10 %: 2,501 against 2,773 a second, 10 alternating rounds).
    (
        "DROP TRIGGER IF EXISTS jobq_event_created ON {s}.jobs",  # (dropped by hand: still opens)
        """CREATE TRIGGER jobq_event_created AFTER INSERT ON {s}.jobs
           FOR EACH ROW WHEN (current_setting('jobq.bulk_insert', true) IS DISTINCT FROM 'on')
           EXECUTE FUNCTION {s}.jobq_event_created()""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

# The one-row table that says which migrations a schema has (created before the first one).
CREATE_META = "CREATE TABLE IF NOT EXISTS {s}.jobq_meta (version integer NOT NULL)"


def statements(version: int, schema: str) -> list[str]:
    """The statements that bring `schema` from `version` to SCHEMA_VERSION."""
    s = quote_ident(schema)
    channel = "'" + channel_of(schema) + "'"
    return [sql.format(s=s, channel=channel) for group in MIGRATIONS[version:] for sql in group]


def channel_of(schema: str) -> str:
    """The NOTIFY channel of the queue in `schema`: LISTEN on it (quoted) to hear every commit."""
    return "jobq:" + schema


def quote_ident(name: str) -> str:
    """`name` as an SQL identifier (a validated schema name: no quote can occur in it)."""
    return '"' + name + '"'
