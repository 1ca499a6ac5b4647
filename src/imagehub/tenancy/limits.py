"""Per-key limits: requests per minute, tasks in flight, and a spend budget.

Requests per minute are a GCRA limiter (a burst of the minute's allowance, then an even
refill): in Redis when `IMAGEHUB_REDIS_URL` is set (one Lua script per request, Redis's own
clock), else in the task store (one guarded upsert per request), so every process sharing
the store or the Redis counts together. Tasks in flight and the budget are counters the store
moves in the same transaction as the task itself (see `TaskStore.create`).

A submit reserves the price of what it asks for (`imagehub.tenancy.pricing`: the dearest of
the model's routes); the finish settles the real cost; a failure or a cancel releases the
reservation. Tasks served by the free `demo` provider reserve nothing.
"""

from __future__ import annotations

import logging
from typing import Protocol

from imagehub.errors import RateLimited
from imagehub.store import KeyStore
from imagehub.tenancy.types import ApiKey, OverLimit

log = logging.getLogger("imagehub.tenancy.limits")

#: how long a client over its concurrency limit is told to wait: tasks finish in seconds
CONCURRENCY_RETRY_SECONDS = 2.0
#: and over its budget: only a task settling below its estimate or a raise frees some
BUDGET_RETRY_SECONDS = 60.0


def usd(micros: int) -> str:
    return f"${micros / 1_000_000:,.2f}" if micros >= 10_000 else f"${micros / 1_000_000:,.4f}"


def _tasks(n: int) -> str:
    return f"{n} concurrent task{'' if n == 1 else 's'}"


def over_limit(exc: OverLimit, amount: int) -> RateLimited:
    """The 429 a refused submit answers, naming the limit."""
    key = exc.key
    if exc.limit == "concurrency":
        return RateLimited(
            f"This key's limit of {_tasks(key.concurrency_limit or 0)} at once is reached "
            f"({key.active_tasks} queued or running); retry when one finishes.",
            retry_after=CONCURRENCY_RETRY_SECONDS,
        )
    committed = key.spent_micros + key.reserved_micros
    return RateLimited(
        f"This key's spend budget of {usd(key.budget_micros or 0)} is used up: "
        f"{usd(committed)} is spent or reserved and this task is priced at {usd(amount)}.",
        retry_after=BUDGET_RETRY_SECONDS,
    )


def too_many_requests(key: ApiKey, wait: float) -> RateLimited:
    return RateLimited(
        f"This key's limit of {key.rpm_limit} requests per minute is reached; "
        f"retry in {max(1, round(wait))} s.",
        retry_after=wait,
    )


class Rates(Protocol):
    """Counts a request against a key's per-minute rate: 0, or the seconds to wait."""

    async def hit(self, key_id: str, per_minute: int) -> float: ...

    async def aclose(self) -> None: ...


class StoreRates:
    """The limiter in the task store: shared by every process that shares the store."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    async def hit(self, key_id: str, per_minute: int) -> float:
        return await self.store.rate_hit(key_id, per_minute)

    async def aclose(self) -> None:
        pass


_GCRA = """
local interval = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - 60 - now
if wait > 0 then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1)
return '0'
"""


class RedisRates:
    """The limiter in Redis: one atomic script per request, on Redis's clock."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis.asyncio as aioredis

        self.namespace = namespace
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        self._script = self._client.register_script(_GCRA)

    async def hit(self, key_id: str, per_minute: int) -> float:
        from redis.exceptions import RedisError

        keys = [f"{self.namespace}:rate:{key_id}"]
        try:
            result = await self._script(keys=keys, args=[60.0 / per_minute])
        except (RedisError, OSError) as exc:
            # a limiter outage should not become a hub outage: let the request through
            log.warning("request rate not checked, Redis unavailable (%s)", type(exc).__name__)
            return 0.0
        return float(result)

    async def aclose(self) -> None:
        await self._client.aclose()
