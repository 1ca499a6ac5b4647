"""PostgreSQL schema: versioned migrations, applied in place under an advisory lock.

The columns mirror SQLite's (times as epoch seconds, JSON as text) so both backends share the
row mapping of `rows.py`. `schema_version` keeps one row per applied step.
"""

from __future__ import annotations

import logging

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from imagehub.store import tenancy

log = logging.getLogger("imagehub.store")

#: Versioned schema: entry N upgrades a database at version N to N + 1. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        model TEXT NOT NULL,
        input TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        provider TEXT,
        warnings TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        metadata TEXT,
        webhook_url TEXT,
        idempotency_key TEXT,
        request_hash TEXT,
        usage TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        run_after DOUBLE PRECISION NOT NULL,
        lease_owner TEXT,
        lease_expires_at DOUBLE PRECISION,
        lease_token BIGINT NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX tasks_idempotency ON tasks (tenant_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_queue ON tasks (run_after, created_at) WHERE status = 'queued';
    CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE status = 'running';
    CREATE INDEX tasks_history ON tasks (tenant_id, created_at DESC, id DESC);
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        admin INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    """,
    # heartbeats and releases select a worker's running tasks by owner
    "CREATE INDEX tasks_owner ON tasks (lease_owner) WHERE status = 'running'",
    # key limits and spend, request rates, webhook deliveries and secrets
    tenancy.postgres_dialect(tenancy.SCHEMA),
]

#: pg_advisory_lock key of schema upgrades ("imagehub" in ASCII, as a bigint)
_LOCK_KEY = 0x696D616765687562


class SchemaOutdated(Exception):
    """The database schema is older than this version of the hub needs."""


async def current_version(conn: AsyncConnection[TupleRow]) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = 'schema_version'"
    )
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def upgrade(conn: AsyncConnection[TupleRow]) -> int:
    """Apply the missing steps, one transaction each; return the schema version.

    A session advisory lock serialises concurrent upgrades from many processes: the second
    one waits, then finds nothing left to do.
    """
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        version = await current_version(conn)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            log.info("database schema upgraded to version %d", number)
        return max(version, len(MIGRATIONS))
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def check(conn: AsyncConnection[TupleRow]) -> int:
    """The schema version; raise SchemaOutdated when steps are missing."""
    version = await current_version(conn)
    if version < len(MIGRATIONS):
        raise SchemaOutdated(
            f"the database schema is at version {version}, this hub needs {len(MIGRATIONS)}: "
            "run `imagehub migrate` (or set IMAGEHUB_MIGRATE_ON_START=true)"
        )
    return version
