"""Deadlines on shared timers behave as `asyncio.timeout`, and leave no timer or entry behind."""

from __future__ import annotations

import asyncio

import pytest

from imagehub.providers import deadlines


def _ticks() -> int:
    return len(deadlines._ticks.get(asyncio.get_running_loop(), {}))


async def test_a_passed_deadline_raises_timeout_error():
    with pytest.raises(TimeoutError):
        async with deadlines.within(0.05):
            await asyncio.sleep(5)
    assert _ticks() == 0 and not deadlines._current
    assert asyncio.current_task().cancelling() == 0  # its cancellation taken back


async def test_calls_due_in_one_tick_share_its_timer_and_leave_none_behind():
    started = asyncio.Event()

    async def call(seconds: float) -> str:
        async with deadlines.within(seconds):
            started.set()
            await asyncio.sleep(0.01)
            return "done"

    runs = [asyncio.create_task(call(30.0)) for _ in range(50)]
    await started.wait()
    assert _ticks() <= 2  # created within a tick of each other
    assert await asyncio.gather(*runs) == ["done"] * 50
    assert _ticks() == 0 and not deadlines._current


async def test_a_block_that_ends_in_time_cancels_its_tick():
    async with deadlines.within(30):
        assert _ticks() == 1
    assert _ticks() == 0 and not deadlines._current


async def test_another_cancellation_stays_a_cancellation():
    entered = asyncio.Event()

    async def call() -> None:
        async with deadlines.within(30):
            entered.set()
            await asyncio.sleep(5)

    run = asyncio.create_task(call())
    await entered.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert _ticks() == 0 and not deadlines._current


async def test_a_timeout_error_of_the_block_itself_passes_through():
    with pytest.raises(TimeoutError, match="its own"):
        async with deadlines.within(30):
            raise TimeoutError("its own")


async def test_covered_only_inside_a_deadline_that_passes_first():
    assert not deadlines.covered(30)
    async with deadlines.within(30):
        assert deadlines.covered(30)
        assert not deadlines.covered(5)
        async with deadlines.within(1):
            assert deadlines.covered(5)
        assert not deadlines.covered(5)  # the outer one again
    assert not deadlines.covered(30)


async def test_another_task_is_not_covered_by_this_ones_deadline():
    async with deadlines.within(30):
        assert not await asyncio.create_task(_covered(30))


async def _covered(seconds: float) -> bool:
    return deadlines.covered(seconds)
