"""Where tasks and keys live: the protocol and its backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagehub.store.base import ApiKey, DuplicateTask, Page, TaskStore
from imagehub.store.memory import MemoryStore
from imagehub.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from imagehub.store.postgres import PostgresStore

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


def open_store(url: str, *, pool_size: int = 10, migrate_on_open: bool = True) -> TaskStore:
    """The store for a URL: `sqlite:///path`, `memory://` or `postgresql://...`.

    `pool_size` and `migrate_on_open` apply to PostgreSQL; SQLite always migrates on open.
    """
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url == "memory://":
        return MemoryStore()
    if url.startswith(_POSTGRES_SCHEMES):
        return _postgres(url, pool_size=pool_size, migrate=migrate_on_open)
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


def _postgres(url: str, *, pool_size: int, migrate: bool) -> PostgresStore:
    # imported here: the PostgreSQL driver is an optional dependency (the `scale` extra)
    from imagehub.store.postgres import PostgresStore

    return PostgresStore(url, pool_size=pool_size, migrate=migrate)


async def migrate(url: str) -> int:
    """Bring the database at `url` to the current schema in place; return its version."""
    if url.startswith(_POSTGRES_SCHEMES):
        store = _postgres(url, pool_size=1, migrate=True)
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
