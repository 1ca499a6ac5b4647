"""The estimates: progress never back and below 1, ETAs from the journal, positions at depth."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from imagehub.catalog import Catalog
from imagehub.estimates import NEAR, SHAPE_PARAMS, Estimator, Latencies, progress_at, shape_of
from imagehub.tasks import Attempt, Task, TaskStatus, utcnow


def attempt(
    model: str, seconds: float, outcome: str = "succeeded", route: str = "r", shape: str = ""
) -> Attempt:
    end = utcnow()
    return Attempt(
        task_id="t",
        tenant_id="x",
        number=1,
        model=model,
        route=route,
        provider="p",
        started_at=end - timedelta(seconds=seconds),
        finished_at=end,
        outcome=outcome,
        shape=shape,
    )


def test_progress_grows_with_time_stays_below_one_and_meets_the_expected_time():
    values = [progress_at(t / 10, 10.0) for t in range(0, 2000)]
    assert values == sorted(values)
    assert values[0] == 0.0 and max(values) < 1.0
    assert progress_at(5.0, 10.0) == 0.5
    assert abs(progress_at(9.0, 10.0) - 0.9) < 1e-9  # no jump where the curve bends


def test_latencies_are_medians_of_successes_and_the_rate_counts_every_finish():
    latencies = Latencies.of(
        [
            attempt("m", 10),
            attempt("m", 20, route="s"),
            attempt("m", 30),
            attempt("m", 1, "upstream_timeout"),
            attempt("n", 4),
        ],
        window_seconds=50,
    )
    assert latencies.by_model == {"m": 20.0, "n": 4.0}
    assert latencies.by_shape == {("m", ""): 20.0}  # 3 successes: "n" has too few
    assert latencies.by_route == {}  # no (model, shape, route) has 3 successes
    assert latencies.throughput == 5 / 50


def test_the_shape_is_the_latency_parameters_by_name_whatever_their_order():
    assert shape_of({"prompt": "a", "resolution": "4K", "num_images": 2, "seed": 7}) == (
        "num_images=2;resolution=4K"
    )
    assert shape_of({"resolution": "4K", "num_images": 2}) == shape_of(
        {"num_images": 2, "resolution": "4K"}
    )
    assert shape_of({"quality": "low", "image_size": {"width": 1024, "height": 1536}}) == (
        "image_size=1024x1536;quality=low"
    )
    assert shape_of({"enable_web_search": True, "thinking_level": None}) == "enable_web_search=true"
    assert shape_of({"prompt": "a lighthouse"}) == ""
    assert shape_of({"resolution": "1K"}) != shape_of({"resolution": "2K"})


def test_every_shape_parameter_is_a_catalog_parameter_and_the_size_ones_are_in():
    taken = {p.name for model in Catalog.load() for p in model.params}
    assert set(SHAPE_PARAMS) <= taken
    assert {"resolution", "quality", "image_size", "num_images"} <= set(SHAPE_PARAMS)


def test_the_typical_time_narrows_to_the_shape_and_route_only_with_enough_samples():
    big, small = "resolution=4K", "resolution=1K"
    rows = [attempt("m", 40, shape=big, route="a") for _ in range(3)]
    rows += [attempt("m", 80, shape=big, route="b") for _ in range(2)]
    rows += [attempt("m", 10, shape=small, route="a") for _ in range(2)]
    latencies = Latencies.of(rows, window_seconds=900)
    estimator = Estimator(no_journal, Queue(1), default_seconds=30)
    # (model, shape, route) with 3 samples
    assert estimator.typical_seconds(latencies, "m", big, "a") == 40
    # route "b" has 2 samples only: its shape's median over every route (40, 40, 40, 80, 80)
    assert estimator.typical_seconds(latencies, "m", big, "b") == 40
    assert estimator.typical_seconds(latencies, "m", big) == 40
    # the 1K shape has 2 samples only: the model's median over every shape and route
    assert estimator.typical_seconds(latencies, "m", small, "a") == 40
    assert estimator.typical_seconds(latencies, "m", "never=seen") == 40
    # a model without a success: the default
    assert estimator.typical_seconds(latencies, "other", big, "a") == 30
    rows += [attempt("m", 10, shape=small, route="a")]  # the third 1K sample: trusted now
    assert estimator.typical_seconds(Latencies.of(rows, 900), "m", small) == 10


async def test_two_running_tasks_of_one_model_and_other_shapes_expect_other_times():
    rows = [attempt("m", 40, shape="resolution=4K") for _ in range(3)]
    rows += [attempt("m", 10, shape="resolution=1K") for _ in range(3)]

    async def journal(since: object) -> list[Attempt]:
        return rows

    estimator = Estimator(journal, Queue(1))
    started = utcnow() - timedelta(seconds=5)
    running = Task(
        id="big",
        tenant_id="x",
        model="m",
        input={"resolution": "4K"},
        status=TaskStatus.RUNNING,
        attempts=1,
        started_at=started,
    )
    big = await estimator.estimate(running)
    small = await estimator.estimate(running.replace(id="small", input={"resolution": "1K"}))
    assert big.progress is not None and small.progress is not None
    assert abs(big.progress - 5 / 40) < 0.02 and abs(small.progress - 5 / 10) < 0.05
    assert big.eta_seconds is not None and small.eta_seconds is not None
    assert big.eta_seconds > small.eta_seconds


class Queue:
    """A queue of `depth` places 1..depth, and how often each part of it was read."""

    def __init__(self, depth: int) -> None:
        self.places = [(float(n), 0.0) for n in range(depth)]
        self.counts: list[int | None] = []
        self.copies = 0

    async def queue_place(
        self, task_id: str, at_most: int | None = None
    ) -> tuple[float, float, int] | None:
        if float(task_id) >= len(self.places):
            return None
        self.counts.append(at_most)
        ahead = int(float(task_id))
        return float(task_id), 0.0, ahead if at_most is None else min(ahead, at_most)

    async def queue_places(self, limit: int) -> list[tuple[float, float]]:
        self.copies += 1
        return self.places[:limit]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def no_journal(since: object) -> list[Attempt]:
    return []


async def test_near_positions_are_counted_far_ones_read_from_a_copy_kept_a_while():
    queue, clock = Queue(10_000), Clock()
    estimator = Estimator(no_journal, queue, refresh_seconds=5, clock=clock)
    assert await estimator.position("3") == 3
    assert queue.copies == 0 and queue.counts == [NEAR]  # a bounded count, never the whole
    assert await estimator.position("9000") == 9000
    assert await estimator.position("5000") == 5000
    assert queue.copies == 1
    clock.now = 6
    queue.places = [(float(n + 1), 0.0) for n in range(10_000)]  # one task ahead of each
    assert await estimator.position("7000") == 7000  # the stale copy, while the next is read
    await asyncio.sleep(0)
    assert queue.copies == 2
    assert await estimator.position("7000") == 6999
    assert await estimator.position("10001") is None


async def test_the_journal_is_read_once_per_refresh():
    reads = []

    async def journal(since: object) -> list[Attempt]:
        reads.append(since)
        return [attempt("m", 12)]

    clock = Clock()
    estimator = Estimator(journal, Queue(1), refresh_seconds=5, clock=clock)
    for _ in range(10):
        assert (await estimator.latencies()).by_model == {"m": 12.0}
    assert len(reads) == 1
    clock.now = 5
    assert (await estimator.latencies()).by_model == {"m": 12.0}  # stale, answered at once
    await asyncio.sleep(0)
    assert len(reads) == 2


async def test_a_running_tasks_progress_keeps_its_expected_time_when_the_journal_changes():
    runs = [[attempt("m", 10)], [attempt("m", 1000)]]

    async def journal(since: object) -> list[Attempt]:
        return runs[0]

    clock = Clock()
    estimator = Estimator(journal, Queue(1), refresh_seconds=5, clock=clock)
    task = Task(
        id="t",
        tenant_id="x",
        model="m",
        input={},
        status=TaskStatus.RUNNING,
        attempts=1,
        started_at=utcnow() - timedelta(seconds=5),
    )
    first = await estimator.estimate(task)
    runs.pop(0)  # the next reading says the model takes 100 times longer
    clock.now = 10
    await estimator.latencies()  # stale: the next reading starts
    await asyncio.sleep(0)
    second = await estimator.estimate(task)
    assert first.progress is not None and second.progress is not None
    assert second.progress >= first.progress
    assert abs(first.progress - 0.5) < 0.05
    retried = await estimator.estimate(task.replace(attempts=2))  # a new attempt: new time
    assert retried.progress is not None and retried.progress < 0.01


async def test_callers_that_find_the_copy_stale_together_read_it_once_and_resume_together():
    """A lock here woke its waiters one loop turn after another: under load, the last of a few
    dozen submits waited hundreds of milliseconds for its position."""

    class SlowQueue(Queue):
        async def queue_places(self, limit: int) -> list[tuple[float, float]]:
            await asyncio.sleep(0)  # a read takes a turn or more
            return await super().queue_places(limit)

    queue, clock = SlowQueue(10_000), Clock()
    estimator = Estimator(no_journal, queue, refresh_seconds=5, clock=clock)
    callers = [asyncio.ensure_future(estimator.position(str(5000 + n))) for n in range(40)]
    for _ in range(6):
        await asyncio.sleep(0)
    assert all(c.done() for c in callers)
    assert [c.result() for c in callers] == [5000 + n for n in range(40)]
    assert queue.copies == 1
