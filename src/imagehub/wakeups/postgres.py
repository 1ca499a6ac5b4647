"""Wake-ups over PostgreSQL LISTEN/NOTIFY, on two dedicated connections of their own.

The listening connection is a session the pool never sees (LISTEN needs one; it does not work
behind PgBouncer in transaction mode: use Redis there). It reconnects with backoff and checks
itself when idle, so a database restart only costs the hints sent while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import psycopg
from psycopg import AsyncConnection, sql

log = logging.getLogger("imagehub.wakeups.shared")

#: an idle listener checks its connection this often (a silent network drop never raises)
IDLE_CHECK_SECONDS = 30.0


class PostgresBroadcast:
    """NOTIFY to publish, a dedicated LISTEN session to receive."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        #: set while the listening session is connected (tests wait for it)
        self.listening = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._publisher: AsyncConnection[tuple[object, ...]] | None = None
        self._publish_lock = asyncio.Lock()

    async def start(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        self._listener = asyncio.create_task(
            self._listen(on_message, on_gap), name="imagehub-listen"
        )

    async def publish(self, messages: list[str]) -> None:
        async with self._publish_lock:
            try:
                if self._publisher is None or self._publisher.closed:
                    self._publisher = await AsyncConnection.connect(
                        self.url, autocommit=True, connect_timeout=5
                    )
                # one statement, one transaction: every message of the batch at one commit
                await self._publisher.execute(
                    "SELECT pg_notify(%s, m) FROM unnest(%s::text[]) AS m",
                    (self.channel, messages),
                )
            except psycopg.Error:
                await self._drop_publisher()
                raise

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        async with self._publish_lock:
            await self._drop_publisher()

    async def _drop_publisher(self) -> None:
        if self._publisher is not None:
            with contextlib.suppress(psycopg.Error):
                await self._publisher.close()
            self._publisher = None

    async def _listen(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        delay, connected_before = 0.2, False
        while True:
            try:
                async with await AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listening.set()
                    if connected_before:
                        on_gap()
                    connected_before, delay = True, 0.2
                    await self._receive(conn, on_message)
            except psycopg.Error as exc:
                log.warning("wake-up listener disconnected (%s); reconnecting", exc)
            finally:
                self.listening.clear()
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 5.0)

    @staticmethod
    async def _receive(
        conn: AsyncConnection[tuple[object, ...]], on_message: Callable[[str], None]
    ) -> None:
        while True:
            async for notify in conn.notifies(timeout=IDLE_CHECK_SECONDS):
                on_message(notify.payload)
            await conn.execute("SELECT 1")  # raises if the session died silently
