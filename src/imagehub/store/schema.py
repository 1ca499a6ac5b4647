"""The schema, written once: step N upgrades a database at version N to N + 1.

Append, never edit: existing databases are at some step of this list. Type names are the
dialect's (`{real}`, `{counter}`); the connectors keep the version (SQLite in `user_version`,
PostgreSQL in a `schema_version` table). Times are epoch seconds, JSON is text, money is
integer micro-USD (exact sums).
"""

from __future__ import annotations

from imagehub.store.connector import Dialect

_STEPS: list[str] = [
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
        created_at {real} NOT NULL,
        started_at {real},
        finished_at {real},
        run_after {real} NOT NULL,
        lease_owner TEXT,
        lease_expires_at {real},
        lease_token {counter} NOT NULL DEFAULT 0
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
        created_at {real} NOT NULL,
        revoked_at {real}
    );
    """,
    # heartbeats and releases select a worker's running tasks by owner
    "CREATE INDEX tasks_owner ON tasks (lease_owner) WHERE status = 'running'",
    # key limits and spend, request rates, webhook deliveries and secrets
    """
    ALTER TABLE api_keys ADD COLUMN rpm_limit INTEGER;
    ALTER TABLE api_keys ADD COLUMN concurrency_limit INTEGER;
    ALTER TABLE api_keys ADD COLUMN budget_micros BIGINT;
    ALTER TABLE api_keys ADD COLUMN active_tasks INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE api_keys ADD COLUMN reserved_micros BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE api_keys ADD COLUMN spent_micros BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
    CREATE TABLE spend (
        task_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        reserved_micros BIGINT NOT NULL,
        cost_micros BIGINT,
        state TEXT NOT NULL
    );
    CREATE TABLE rate_limits (key_id TEXT PRIMARY KEY, tat {real} NOT NULL);
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        url TEXT NOT NULL,
        base_url TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at {real},
        history TEXT NOT NULL DEFAULT '[]',
        created_at {real} NOT NULL,
        lease_owner TEXT,
        lease_expires_at {real},
        lease_token BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
        WHERE state = 'pending';
    CREATE INDEX webhook_deliveries_tenant
        ON webhook_deliveries (tenant_id, created_at DESC, id DESC);
    CREATE TABLE webhook_secrets (
        tenant_id TEXT NOT NULL,
        secret TEXT NOT NULL,
        created_at {real} NOT NULL,
        expires_at {real},
        PRIMARY KEY (tenant_id, secret)
    )
""",
    # the attempts journal (one row per route call) and the routes' state, per process
    """
    CREATE TABLE attempts (
        task_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        model TEXT NOT NULL,
        route TEXT NOT NULL,
        provider TEXT NOT NULL,
        started_at {real} NOT NULL,
        finished_at {real} NOT NULL,
        outcome TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX attempts_finished ON attempts (finished_at);
    CREATE INDEX attempts_task ON attempts (task_id);
    CREATE TABLE route_states (
        process_id TEXT NOT NULL,
        route TEXT NOT NULL,
        model TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_at {real} NOT NULL,
        PRIMARY KEY (process_id, route, model)
    );
    CREATE INDEX route_states_updated ON route_states (updated_at);
    CREATE INDEX tasks_created ON tasks (created_at DESC, id DESC);
    CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at DESC, id DESC)
""",
    # the W3C traceparent of a task's submit span: its worker and webhook spans join that trace
    "ALTER TABLE tasks ADD COLUMN traceparent TEXT",
    # partial images: how many partial images a task asked for, and those of its running attempt
    """
    ALTER TABLE tasks ADD COLUMN partial_images INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN partials TEXT NOT NULL DEFAULT '[]'
""",
    # the fair queue: claims in order of a virtual start time (start-time fair queuing), each
    # tenant's tasks 1/weight apart; tasks queued before this step keep their submit order
    """
    ALTER TABLE tasks ADD COLUMN fair_at {real} NOT NULL DEFAULT 0;
    DROP INDEX tasks_queue;
    CREATE INDEX tasks_fair ON tasks (fair_at, created_at) WHERE status = 'queued';
    CREATE TABLE fair_shares (
        tenant_id TEXT PRIMARY KEY,
        weight {real} NOT NULL DEFAULT 1,
        last_fair {real} NOT NULL DEFAULT 0
    )
""",
    # the latency shape of each journal row (estimates.shape_of): ETAs per model and shape
    "ALTER TABLE attempts ADD COLUMN shape TEXT NOT NULL DEFAULT ''",
]

#: the schema version this hub needs
VERSION = len(_STEPS)


def migrations(dialect: Dialect) -> list[str]:
    """The steps as `dialect` takes them."""
    return [step.format(**dialect.types) for step in _STEPS]
