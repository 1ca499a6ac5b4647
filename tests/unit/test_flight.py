"""SingleFlight: callers that ask while a run is going share it, and all resume together."""

from __future__ import annotations

import asyncio
import gc

import pytest

from imagehub.flight import SingleFlight


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_callers_meanwhile_share_one_run_and_all_resume_within_two_turns():
    runs, gate = [], asyncio.Event()

    async def read() -> int:
        runs.append(1)
        await gate.wait()
        return len(runs)

    flight = SingleFlight(read, "reading")
    callers = [asyncio.ensure_future(flight()) for _ in range(50)]
    await _turns(2)
    gate.set()
    # a lock would wake its waiters one turn after another: 50 turns
    await _turns(4)
    assert all(c.done() for c in callers)
    assert [c.result() for c in callers] == [1] * 50
    assert await flight() == 2  # the run ended: the next caller starts another


async def test_a_caller_that_gives_up_does_not_cancel_the_others_run():
    gate = asyncio.Event()

    async def read() -> str:
        await gate.wait()
        return "read"

    flight = SingleFlight(read, "reading")
    first, second = asyncio.ensure_future(flight()), asyncio.ensure_future(flight())
    await _turns(2)
    first.cancel()
    await _turns(2)
    gate.set()
    assert await second == "read"
    assert first.cancelled()


async def test_a_failed_run_fails_every_caller_and_the_next_call_runs_again():
    outcomes = iter([RuntimeError("down"), "up"])

    async def read() -> str:
        await asyncio.sleep(0)
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    flight = SingleFlight(read, "reading")
    results = await asyncio.gather(flight(), flight(), return_exceptions=True)
    assert [str(r) for r in results] == ["down", "down"]
    assert await flight() == "up"


async def test_a_run_started_without_a_waiter_is_waited_for_by_nobody_and_says_its_failure(
    caplog: pytest.LogCaptureFixture,
):
    gate = asyncio.Event()

    async def read() -> None:
        await gate.wait()
        raise RuntimeError("store down")

    flight = SingleFlight(read, "reading the journal")
    started = flight.start()
    assert flight.start() is started  # one run at a time
    gate.set()
    await _turns(3)
    assert started.done()
    assert "reading the journal failed: store down" in caplog.text


async def test_a_run_whose_callers_all_gave_up_leaves_no_unretrieved_exception():
    async def read() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("nobody listens")

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        flight = SingleFlight(read, "reading")
        caller = asyncio.ensure_future(flight())
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await _turns(3)
        gc.collect()
        assert unhandled == []
    finally:
        loop.set_exception_handler(None)
