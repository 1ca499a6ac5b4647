"""Where tasks, keys and webhooks live: the protocols and their backends."""

from __future__ import annotations

from imagehub.store.base import DeliveryStore, KeyStore, Lease, Store, TaskStore
from imagehub.store.memory import MemoryStore
from imagehub.store.schema import VERSION
from imagehub.store.sqlite import SQLiteStore

__all__ = [
    "DeliveryStore",
    "KeyStore",
    "Lease",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "TaskStore",
    "migrate",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(
    url: str,
    *,
    pool_size: int = 10,
    migrate_on_open: bool = True,
    wait_seconds: float = 10.0,
    synchronous_commit: bool = True,
) -> Store:
    """The store for a URL: `sqlite:///path`, `memory://` or `postgresql://...`.

    The keywords apply to PostgreSQL (see `PostgresStore`); SQLite always migrates on open.
    """
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url == "memory://":
        return MemoryStore()
    if url.startswith(_POSTGRES_SCHEMES):
        from imagehub.store.postgres import PostgresStore  # the optional `scale` extra

        return PostgresStore(
            url,
            pool_size=pool_size,
            migrate=migrate_on_open,
            wait_seconds=wait_seconds,
            synchronous_commit=synchronous_commit,
        )
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


async def migrate(url: str) -> int:
    """Bring the database at `url` to the current schema in place; return its version."""
    if url.startswith(_POSTGRES_SCHEMES):
        from imagehub.store.postgres import PostgresStore

        store = PostgresStore(url, pool_size=1)
        await store.open()
        try:
            return await store.migrate()
        finally:
            await store.close()
    other = open_store(url)
    await other.open()  # SQLite migrates on open; memory has no schema
    await other.close()
    return VERSION
