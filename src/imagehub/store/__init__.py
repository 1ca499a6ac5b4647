"""Where tasks and keys live: the protocol and its backends."""

from __future__ import annotations

from imagehub.store.base import ApiKey, DuplicateTask, Page, TaskStore
from imagehub.store.memory import MemoryStore
from imagehub.store.sqlite import SQLiteStore

__all__ = [
    "ApiKey",
    "DuplicateTask",
    "MemoryStore",
    "Page",
    "SQLiteStore",
    "TaskStore",
    "migrate",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(
    url: str, *, pool_size: int = 10, migrate_on_open: bool = True, wait_seconds: float = 10.0
) -> TaskStore:
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
            url, pool_size=pool_size, migrate=migrate_on_open, wait_seconds=wait_seconds
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
    sqlite_store = open_store(url)
    await sqlite_store.open()  # SQLite migrates on open
    await sqlite_store.close()
    from imagehub.store.sqlite import MIGRATIONS

    return len(MIGRATIONS)
