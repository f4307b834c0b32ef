"""jobq's tables in a PostgreSQL schema of their own, as versioned migrations.

Migration N brings a schema from version N-1 to N (the one row of `jobq_meta`). Never edit a
released migration: add one. Every statement names the schema as `{s}` (a validated, quoted
identifier), so a table is always jobq's whatever the caller's search_path.

The tables are those of the SQLite file (jobq/store/sqlite/schema.py), with `timestamptz` for
times (people query them with plain SQL) and `json` (not jsonb: it keeps the exact text, so a
payload reads back byte for byte as enqueued). Two things SQLite has no need for:

- a sequence `changes`, bumped by every statement that writes jobs, workers or queues (the change
  token: a sequence, not a counter row, which would serialise every writer);
- a statement trigger on those tables that bumps it and calls `pg_notify('jobq:<schema>', '')`:
  delivered at commit only, so a listener never wakes before the write is visible, and written
  once here rather than in every statement (raw SQL by a person wakes the workers too).
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
        """CREATE TRIGGER jobq_changed AFTER INSERT OR UPDATE OR DELETE ON {s}.jobs
           FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobq_changed()""",
        """CREATE TRIGGER jobq_changed AFTER INSERT OR UPDATE OR DELETE ON {s}.workers
           FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobq_changed()""",
        """CREATE TRIGGER jobq_changed AFTER INSERT OR UPDATE OR DELETE ON {s}.queues
           FOR EACH STATEMENT EXECUTE FUNCTION {s}.jobq_changed()""",
        # The change token (see Connection.change_token): the sequence read first, then, in a
        # statement of its own (a fresh snapshot), the transactions still in progress. A writer
        # bumps the sequence before it commits; while it has not, its transaction id is listed,
        # and its commit takes it off the list: so the token changes once the write is visible,
        # however the read and the commit interleave.
        """
        CREATE FUNCTION {s}.jobq_change_token() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            seen bigint;
            busy integer;
        BEGIN
            SELECT last_value INTO seen FROM {s}.changes;
            SELECT coalesce(hashtext(string_agg(x::text, ',' ORDER BY x::text)), 0) INTO busy
            FROM pg_snapshot_xip(pg_current_snapshot()) AS x;
            RETURN seen # (busy::bigint << 32);
        END $$
        """,
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
