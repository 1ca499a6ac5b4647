"""Wake-ups: "a task was queued / changed" hints, in process (`notifier`) and across
processes (`shared`, over PostgreSQL LISTEN/NOTIFY or Redis pub/sub). Hints only make things
fast: every waiter also polls the store."""

from __future__ import annotations

from imagehub.wakeups.notifier import Notifier
from imagehub.wakeups.shared import open_notifier

__all__ = ["Notifier", "open_notifier"]
