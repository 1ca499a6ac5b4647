"""Wake-ups go out in batches, only where another process needs them, and cross the processes
of one `serve --workers N` through its parent's relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from imagehub.settings import Settings
from imagehub.tasks import Task
from imagehub.wakeups.local import LocalBroadcast, Relay, pair
from imagehub.wakeups.notifier import Notifier
from imagehub.wakeups.shared import SharedNotifier, decode, encode, open_notifier

#: how long a test waits for a hint before calling it lost (a failure guard, not a measure)
GUARD = 5.0


class Recorder:
    """A broadcast that keeps what it was asked to publish."""

    def __init__(self) -> None:
        self.published: list[list[str]] = []
        self.sent = asyncio.Event()
        self.deliver: Callable[[str], None] = lambda _: None

    async def start(self, on_message: Callable[[str], None], on_gap: Callable[[], None]) -> None:
        self.deliver = on_message

    async def publish(self, messages: list[str]) -> None:
        self.published.append(messages)
        self.sent.set()

    def hints(self) -> list[tuple[bool, list[str]]]:
        """What the messages said besides "I am here": (queued, changed tasks)."""
        said = [decode(m)[1:] for batch in self.published for m in batch]
        return [(queued, changed) for queued, changed in said if queued or changed]

    async def said_twice(self) -> None:
        """Until two more messages went out: any hint raised before the first is in one."""
        for _ in range(2):
            self.sent.clear()
            await asyncio.wait_for(self.sent.wait(), GUARD)

    async def close(self) -> None:
        pass


def finished_task(n: int) -> Task:
    return Task(id=f"tsk_{n}", tenant_id="t", model="nano-banana", input={"prompt": "x"})


async def test_hints_raised_together_go_out_as_one_message():
    bus = Recorder()
    notifier = SharedNotifier(bus, batch_seconds=0.001)
    await notifier.start()
    try:
        for n in range(20):
            notifier.task_changed(f"tsk_{n}", ready=False)
            notifier.task_finished(finished_task(n))
        notifier.task_queued()
        await asyncio.wait_for(bus.sent.wait(), GUARD)
    finally:
        await notifier.close()
    assert len(bus.published) == 1 and len(bus.published[0]) == 1
    _, queued, changed = decode(bus.published[0][0])
    assert queued and sorted(changed) == sorted(f"tsk_{n}" for n in range(20))


async def test_a_task_the_local_worker_takes_sends_no_queued_hint():
    bus = Recorder()
    notifier = SharedNotifier(bus)
    room = True
    notifier.claims_here = lambda: room
    await notifier.start()
    try:
        notifier.task_queued()  # this process's worker claims it: nobody else is told
        await asyncio.sleep(0)
        room = False
        notifier.task_queued()  # a full worker: another process's should take it
        await asyncio.wait_for(bus.sent.wait(), GUARD)
        await notifier.wait_queued(0)  # the local dispatch loop was woken either way
    finally:
        await notifier.close()
    assert [queued for queued, _ in bus.hints()] == [True]


async def test_a_process_alone_keeps_its_hints_until_it_hears_another():
    bus = Recorder()
    notifier = SharedNotifier(bus, presence_seconds=0.02)
    await notifier.start()
    try:
        async with asyncio.timeout(GUARD):
            while not notifier.alone():  # three presence periods heard from no one
                await bus.said_twice()
        notifier.task_changed("tsk_1")
        await bus.said_twice()
        assert bus.hints() == []  # only "I am here"
        (hello,) = encode("another-process", False, set())
        bus.deliver(hello)
        assert not notifier.alone()
        notifier.task_changed("tsk_2")
        async with asyncio.timeout(GUARD):
            while not bus.hints():
                await bus.said_twice()
        assert bus.hints() == [(False, ["tsk_2"])]
    finally:
        await notifier.close()


async def test_the_relay_carries_a_hint_to_every_other_process_only():
    relay = Relay()
    ends = [pair() for _ in range(3)]
    for slot, (parent_end, _) in enumerate(ends):
        relay.add(slot, parent_end)
    notifiers = [SharedNotifier(LocalBroadcast(child_end)) for _, child_end in ends]
    for notifier in notifiers:
        await notifier.start()
    try:
        with contextlib.ExitStack() as stack:
            watched = [stack.enter_context(n.watch("tsk_1")) for n in notifiers]
            notifiers[0].task_changed("tsk_1")
            async with asyncio.timeout(GUARD):
                await watched[1].wait()
                await watched[2].wait()
            assert watched[0].is_set()  # its own, in process
    finally:
        for notifier in notifiers:
            await notifier.close()
        relay.close()


def test_a_serve_child_on_sqlite_uses_its_relay(tmp_path):
    parent_end, child_end = pair()
    try:
        settings = Settings(data_dir=tmp_path)
        notifier = open_notifier(settings, child_end)
        assert isinstance(notifier, SharedNotifier)
        assert isinstance(notifier.broadcast, LocalBroadcast)
        assert type(open_notifier(settings)) is Notifier  # a lone process keeps to itself
        off = Settings(data_dir=tmp_path, wakeups="off")
        assert type(open_notifier(off, child_end)) is Notifier  # "off" means off
    finally:
        parent_end.close()
        child_end.close()
