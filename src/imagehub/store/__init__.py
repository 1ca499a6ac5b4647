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
    "open_store",
]


def open_store(url: str) -> TaskStore:
    """The store for a URL: `sqlite:///path` or `memory://`."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url == "memory://":
        return MemoryStore()
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")
