"""The estimates: progress never back and below 1, ETAs from the journal, positions at depth."""

from __future__ import annotations

from datetime import timedelta

from imagehub.estimates import NEAR, Estimator, Latencies, progress_at
from imagehub.tasks import Attempt, Task, TaskStatus, utcnow


def attempt(model: str, seconds: float, outcome: str = "succeeded", route: str = "r") -> Attempt:
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
    assert latencies.by_route == {("m", "r"): 20.0, ("m", "s"): 20.0, ("n", "r"): 4.0}
    assert latencies.throughput == 5 / 50


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
    assert await estimator.position("7000") == 7000
    assert queue.copies == 2
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
    await estimator.latencies()
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
    second = await estimator.estimate(task)
    assert first.progress is not None and second.progress is not None
    assert second.progress >= first.progress
    assert abs(first.progress - 0.5) < 0.05
    retried = await estimator.estimate(task.replace(attempts=2))  # a new attempt: new time
    assert retried.progress is not None and retried.progress < 0.01
