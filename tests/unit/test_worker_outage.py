"""The worker through a store outage: outcomes are written late rather than lost, and a task
leased to it by a claim whose answer was lost goes back to the queue instead of staying leased."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from imagehub.errors import Overloaded
from imagehub.hub import Hub
from imagehub.store import MemoryStore
from imagehub.tasks import Attempt, Task, TaskStatus
from imagehub.testing import ScriptedProvider, memory_hub

GUARD = 20.0


class FlakyStore(MemoryStore):
    """A memory store whose `finish` fails while `down`, and whose next claim answer is lost."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lose_next_claim = False
        self.finish_calls = 0

    async def finish(self, task: Task, attempt: Attempt | Sequence[Attempt] | None = None) -> bool:
        self.finish_calls += 1
        if self.down:
            raise Overloaded("The task store is unavailable; try again shortly.")
        return await super().finish(task, attempt)

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Task]:
        claimed = await super().claim(owner, limit, lease_seconds)
        if self.lose_next_claim and claimed:
            self.lose_next_claim = False
            raise Overloaded("connection lost after the claim committed")
        return claimed


def flaky_hub(store: FlakyStore) -> Hub:
    hub = memory_hub(ScriptedProvider(), lease_seconds=0.6, poll_seconds=0.05)
    hub.store = store
    assert hub.worker is not None
    hub.worker.store = store
    return hub


async def until(condition) -> None:
    while True:
        if condition():
            return
        await asyncio.sleep(0.02)


async def wait_for_status(store: MemoryStore, task_id: str, status: TaskStatus) -> Task:
    async def poll() -> Task:
        while True:
            task = store.tasks[task_id]
            if task.status == status:
                return task
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), GUARD)


async def test_an_outcome_held_back_by_an_outage_is_written_once_the_store_answers():
    store = FlakyStore()
    hub = flaky_hub(store)
    await hub.start()
    try:
        store.down = True
        task, _ = await hub.submit("t1", "nano-banana", {"prompt": "p"})
        await asyncio.wait_for(until(lambda: store.finish_calls >= 3), GUARD)  # writes fail
        store.down = False
        done = await wait_for_status(store, task.id, TaskStatus.SUCCEEDED)
        assert done.attempts == 1, "written late, not run again"
        assert done.output is not None and len(done.output.images) == 1
    finally:
        await hub.stop()


async def test_a_task_leased_by_a_lost_claim_answer_goes_back_to_the_queue():
    store = FlakyStore()
    store.lose_next_claim = True
    hub = flaky_hub(store)
    task, _ = await hub.submit("t1", "nano-banana", {"prompt": "p"})
    await hub.start()
    try:
        done = await wait_for_status(store, task.id, TaskStatus.SUCCEEDED)
        assert done.attempts == 2, "handed back by the heartbeat, then claimed again"
    finally:
        await hub.stop()
