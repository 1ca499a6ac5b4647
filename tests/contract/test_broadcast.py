"""Wake-ups across processes, over PostgreSQL LISTEN/NOTIFY and over Redis pub/sub.

Two notifiers stand for two processes: a hint raised in one wakes the waiters of the other,
and the listener comes back after its connection is killed.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
import redis

from imagehub.settings import Settings
from imagehub.wakeups.notifier import Notifier
from imagehub.wakeups.postgres import PostgresBroadcast
from imagehub.wakeups.redis import RedisBroadcast
from imagehub.wakeups.shared import MAX_MESSAGE_BYTES, SharedNotifier, decode, encode, open_notifier

#: how long a test waits for a hint before calling it lost (a failure guard, not a measure)
GUARD = 10.0


def terminate_listener_postgres(url: str, channel: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE %s AND pid <> pg_backend_pid()",
            (f'%LISTEN "{channel}"%',),
        )


def terminate_listener_redis(url: str, channel: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for info in client.client_list():
            if info.get("name") == f"imagehub-{channel}" and info.get("flags") == "P":
                client.client_kill_filter(_id=info["id"])
    finally:
        client.close()


Pair = tuple[SharedNotifier, SharedNotifier, Callable[[], None]]


@pytest.fixture(params=["postgres", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """Two notifiers as two processes would have them, and a way to kill A's listener."""
    channel = f"imagehub_test_{secrets.token_hex(4)}"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        a_bus, b_bus = PostgresBroadcast(url, channel), PostgresBroadcast(url, channel)

        def kill() -> None:
            terminate_listener_postgres(url, channel)
    else:
        url = request.getfixturevalue("redis_url")
        a_bus, b_bus = RedisBroadcast(url, channel), RedisBroadcast(url, channel)

        def kill() -> None:
            terminate_listener_redis(url, channel)

    a, b = SharedNotifier(a_bus), SharedNotifier(b_bus)
    await a.start()
    await b.start()
    await asyncio.wait_for(a_bus.listening.wait(), GUARD)
    await asyncio.wait_for(b_bus.listening.wait(), GUARD)
    yield a, b, kill
    await a.close()
    await b.close()


async def test_a_change_in_one_process_wakes_a_watcher_in_another(pair: Pair):
    a, b, _ = pair
    with a.watch("tsk_1") as changed, a.watch("tsk_2") as other:
        b.task_changed("tsk_1")
        await asyncio.wait_for(changed.wait(), GUARD)
        assert not other.is_set(), "only the changed task's watchers wake"


async def test_a_queued_task_in_one_process_wakes_the_worker_of_another(pair: Pair):
    a, b, _ = pair
    b.task_queued()
    # without the hint A would wait its full poll, past the guard
    await asyncio.wait_for(a.wait_queued(GUARD * 2), GUARD)


async def test_a_process_ignores_its_own_hints_coming_back(pair: Pair):
    a, b, _ = pair
    a.task_changed("tsk_mine")  # published; B wakes, A already woke locally
    with b.watch("tsk_sync") as synced:
        a.task_changed("tsk_sync")
        await asyncio.wait_for(synced.wait(), GUARD)
    with a.watch("tsk_mine") as again:
        await asyncio.sleep(0.2)
        assert not again.is_set(), "an echo of its own hint does not wake A twice"


async def test_the_listener_reconnects_and_wakes_everyone_after_a_gap(pair: Pair):
    a, b, kill = pair
    listening = a.broadcast.listening  # type: ignore[attr-defined]
    with a.watch("tsk_waiting") as woken:
        kill()
        # after reconnecting, A wakes every waiter: hints may have been lost meanwhile
        await asyncio.wait_for(woken.wait(), GUARD)
    await asyncio.wait_for(listening.wait(), GUARD)
    with a.watch("tsk_after") as changed:
        b.task_changed("tsk_after")
        await asyncio.wait_for(changed.wait(), GUARD)


async def test_many_hints_go_out_in_few_messages(postgres_url: str):
    channel = f"imagehub_test_{secrets.token_hex(4)}"
    bus = PostgresBroadcast(postgres_url, channel)
    received: list[str] = []
    listener = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    await listener.execute(f'LISTEN "{channel}"')
    sender = SharedNotifier(bus)
    await sender.start()
    ids = [f"tsk_{n:022d}" for n in range(1000)]
    for task_id in ids:
        sender.task_changed(task_id)
    sender.task_queued()
    await sender.close()
    async for notify in listener.notifies(timeout=2):
        received.append(notify.payload)
    await listener.close()
    assert 1 <= len(received) <= 10, "hints raised together are batched"
    woken = [task_id for message in received for task_id in decode(message)[2]]
    assert sorted(woken) == ids
    assert sum(decode(message)[1] for message in received) == 1


def test_messages_stay_under_the_notify_payload_limit():
    ids = {f"tsk_{n:022d}" for n in range(2000)}
    messages = encode("abc", True, ids)
    assert len(messages) > 1 and all(len(m.encode()) <= MAX_MESSAGE_BYTES for m in messages)
    decoded = [decode(m) for m in messages]
    assert {i for _, _, changed in decoded for i in changed} == ids
    assert [queued for _, queued, _ in decoded].count(True) == 1
    assert decode(encode("abc", False, set())[0]) == ("abc", False, [])


def test_the_settings_pick_the_wakeup_channel(tmp_path):
    assert type(open_notifier(Settings(data_dir=tmp_path))) is Notifier
    pg = Settings(database_url="postgresql://db/x")
    assert isinstance(open_notifier(pg), SharedNotifier)
    assert isinstance(open_notifier(pg).broadcast, PostgresBroadcast)  # type: ignore[attr-defined]
    both = Settings(database_url="postgresql://db/x", redis_url="redis://r:6379/0")
    assert isinstance(open_notifier(both).broadcast, RedisBroadcast)  # type: ignore[attr-defined]
    off = Settings(database_url="postgresql://db/x", wakeups="off")
    assert type(open_notifier(off)) is Notifier
    with pytest.raises(ValueError, match="REDIS_URL"):
        open_notifier(Settings(wakeups="redis"))
    with pytest.raises(ValueError, match="postgresql"):
        open_notifier(Settings(data_dir=tmp_path, wakeups="postgres"))
