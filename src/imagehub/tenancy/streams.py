"""Open event streams and long-polls per key: each holds a connection and a waiter for up to
a minute (a stream, until its task is ready), so one key may hold only so many at once."""

from __future__ import annotations

from collections.abc import Callable

from imagehub.errors import RateLimited

#: how long a client over its stream limit is told to wait: a long-poll lasts at most a minute
RETRY_SECONDS = 5.0

Release = Callable[[], None]


class Streams:
    """Counts each key's open streams in this process."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}

    def open(self, key_id: str) -> Release:
        """Take one of the key's slots (RateLimited past its limit); call the result to free it.

        Freeing twice frees once, so both a stream's end and its cleanup may call it."""
        held = self._open.get(key_id, 0)
        if held >= self.per_key:
            raise RateLimited(
                f"This key already holds {held} open event streams or long-polls, the most "
                f"it may; close one, or poll without waiting.",
                retry_after=RETRY_SECONDS,
            )
        self._open[key_id] = held + 1
        freed = False

        def release() -> None:
            nonlocal freed
            if freed:
                return
            freed = True
            left = self._open.get(key_id, 1) - 1
            if left > 0:
                self._open[key_id] = left
            else:
                self._open.pop(key_id, None)

        return release

    def held(self, key_id: str) -> int:
        return self._open.get(key_id, 0)
