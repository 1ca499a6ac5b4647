"""Wake-ups over Redis pub/sub: for deployments that keep NOTIFY off the database.

Redis pub/sub ignores the database number: hubs sharing one Redis need their own channel.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("imagehub.wakeups.shared")


class RedisBroadcast:
    """PUBLISH to publish, a SUBSCRIBE connection (health-checked) to receive."""

    def __init__(self, url: str, channel: str) -> None:
        self.channel = channel
        self.listening = asyncio.Event()
        self._client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=5,
            health_check_interval=30,
            client_name=f"imagehub-{channel}",
        )
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        self._listener = asyncio.create_task(
            self._listen(on_message, on_gap), name="imagehub-listen"
        )

    async def publish(self, messages: list[str]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(self.channel, message)
            await pipe.execute()

    async def close(self) -> None:
        self._closing = True
        listener, self._listener = self._listener, None
        # redis-py can swallow a cancellation that lands inside `get_message`'s own timeout, and
        # the listener then waits on: cancel until it has ended (the flag ends its loops)
        while listener is not None and not listener.done():
            listener.cancel()
            await asyncio.wait({listener}, timeout=0.5)
        await self._client.aclose()

    async def _listen(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        delay, connected_before = 0.2, False
        while not self._closing:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.listening.set()
                if connected_before:
                    on_gap()
                connected_before, delay = True, 0.2
                while not self._closing:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is not None and message["type"] == "message":
                        on_message(message["data"])
            except (RedisError, OSError) as exc:
                log.warning("wake-up listener disconnected (%s); reconnecting", exc)
            finally:
                self.listening.clear()
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 5.0)
