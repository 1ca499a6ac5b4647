"""The image worker processes: demo drawing away from the API's process, a worker killed under a
call, the pixel budget bounding the work in flight, and a task that survives a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from imagehub import imaging
from imagehub.catalog import Catalog
from imagehub.errors import InvalidInputImage, WorkerCrashed
from imagehub.imagework import ImageWork
from imagehub.media import MemoryMedia
from imagehub.providers.base import GenerationRequest
from imagehub.providers.demo import DemoProvider
from imagehub.providers.inputs import InlineLimits, fit
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.wakeups.notifier import Notifier
from imagehub.wiring import build_hub

CATALOG = Catalog.load()
#: no call here takes long; a hung pool fails the test instead of hanging it
BOUND = 60


@pytest.fixture
async def work() -> AsyncIterator[ImageWork]:
    pool = ImageWork(processes=1, budget_pixels=10**8)
    yield pool
    await asyncio.to_thread(pool.close)


async def test_demo_drawing_runs_in_a_worker_process(work: ImageWork):
    provider = DemoProvider(CATALOG, work)
    request = GenerationRequest(
        model=CATALOG.get("nano-banana"), params={"prompt": "a fox", "num_images": 2}
    )
    result = await asyncio.wait_for(provider.generate(request), BOUND)
    assert [imaging.measure(i.data) for i in result.images] == [(1024, 1024, "image/png")] * 2
    assert work.calls == {"draw": 2}
    assert work.pids and os.getpid() not in work.pids
    assert work.cpu_seconds["draw"] > 0
    # the same bytes as drawn here: the worker process draws what the provider would
    assert result.images[0].data == provider.render(request).data


async def test_the_pool_starts_with_its_processes_away_from_the_event_loop(
    work: ImageWork, monkeypatch: pytest.MonkeyPatch
):
    # a process spawn waits for the fork server: on the loop, every request would wait too
    starts: list[int] = []
    start = work._start

    def recorded() -> object:
        starts.append(threading.get_ident())
        return start()

    monkeypatch.setattr(work, "_start", recorded)
    calls = [work.run(os.getpid) for _ in range(3)]
    pids = await asyncio.wait_for(asyncio.gather(*calls), BOUND)
    assert len(starts) == 1 and starts[0] != threading.get_ident()
    assert set(pids) == set(work.worker_pids())  # every process already there when called


async def test_exceptions_come_back_as_they_were_raised(work: ImageWork):
    with pytest.raises(InvalidInputImage, match="is not a PNG"):
        await work.run(imaging.read_input, b"not an image", max_bytes=100, max_pixels=100)


async def test_a_worker_killed_under_a_call_fails_it_and_the_pool_starts_again(work: ImageWork):
    assert await work.run(os.getpid) in work.worker_pids()  # started
    [pid] = work.worker_pids()
    sleeping = asyncio.create_task(work.run(time.sleep, BOUND, pixels=1))
    while work.budget.used == 0:  # noqa: ASYNC110  (handed to the pool, wherever it is now)
        await asyncio.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed):
        await asyncio.wait_for(sleeping, BOUND)
    assert work.crashes == 1
    fresh = await asyncio.wait_for(work.run(os.getpid), BOUND)
    assert fresh != pid and fresh != os.getpid()


async def test_the_pixel_budget_bounds_the_work_in_flight():
    pool = ImageWork(processes=2, budget_pixels=100)
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, pool.budget.used)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        # two processes, but 60 + 60 pixels do not fit in 100: one call at a time
        calls = [pool.run(time.sleep, 0.05, pixels=60) for _ in range(6)]
        await asyncio.wait_for(asyncio.gather(*calls), BOUND)
    finally:
        done.set()
        await watcher
        await asyncio.to_thread(pool.close)
    assert peak == 60 and pool.budget.used == 0
    assert pool.calls == {"sleep": 6}


async def test_threads_when_no_process_is_wanted():
    pool = ImageWork(processes=0, budget_pixels=10**6)
    try:
        assert await pool.run(os.getpid) == os.getpid()
        assert pool.worker_pids() == []
    finally:
        pool.close()


async def test_a_task_whose_worker_died_is_retried_and_succeeds():
    settings = Settings(demo=True, image_processes=1, retry_base_seconds=0.01, poll_seconds=0.05)
    hub = build_hub(settings, store=MemoryStore(), media=MemoryMedia(), notifier=Notifier())
    await hub.start()
    try:
        first, _ = await hub.submit("t", "nano-banana", {"prompt": "warm up"})
        assert (await hub.wait("t", first.id, BOUND)).status == "succeeded"
        [pid] = hub.work.worker_pids()
        os.kill(pid, signal.SIGKILL)
        # the pool notices the death on its own: the next call finds it broken
        while not getattr(hub.work._executor, "_broken", False):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        task, _ = await hub.submit("t", "nano-banana", {"prompt": "after the crash"})
        done = await hub.wait("t", task.id, BOUND)
        assert done.status == "succeeded", done.error
        assert done.attempts == 2 and hub.work.crashes == 1
    finally:
        await hub.stop()


async def test_workers_yield_the_cpu_to_the_event_loop(work: ImageWork):
    assert await work.run(os.nice, 0) == min(19, os.nice(0) + 10)


async def test_inputs_are_shrunk_to_an_upstreams_limits_in_a_worker_process(work: ImageWork):
    data = imaging.encode(Image.effect_noise((1200, 900), 80).convert("RGB"), "png")
    image = imaging.read_input(data, max_bytes=10**8, max_pixels=10**8)
    limits = InlineLimits("a test upstream", each_bytes=len(data) // 4)
    [fitted], [warning] = await asyncio.wait_for(fit((image,), limits, "route", work), BOUND)
    assert len(fitted.data) <= limits.each_bytes and "a test upstream" in warning
    assert work.calls == {"_fitted": 1} and os.getpid() not in work.pids


#: a hub that starts its pool, says its worker's pid and the fork server's, then waits
_KILLED_HUB = """
import asyncio, os, time
from imagehub.imagework import ImageWork

def pids():
    return [os.getpid(), os.getppid()]

if __name__ == "__main__":
    work = ImageWork(processes=1, budget_pixels=1)
    print(*asyncio.run(work.run(pids)), flush=True)
    time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has ended
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc")
def test_the_workers_and_the_fork_server_end_when_the_hub_is_killed(tmp_path):
    """Killed (out of memory, SIGKILL), the hub cannot stop its pool: the workers see it gone
    and end, and the fork server ends with its last worker, instead of both staying forever."""
    import subprocess
    import sys

    script = tmp_path / "hub.py"
    script.write_text(_KILLED_HUB)
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True) as hub:
        try:
            assert hub.stdout is not None
            worker, fork_server = (int(pid) for pid in hub.stdout.readline().split())
            assert not _gone(worker) and not _gone(fork_server)
        finally:
            hub.kill()
    deadline = time.monotonic() + 5
    while not (_gone(worker) and _gone(fork_server)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(worker), "the image worker outlived the hub"
    assert _gone(fork_server), "the fork server outlived the hub"
