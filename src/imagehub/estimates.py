"""Where a task is and when it will be ready: queue position, progress and ETA.

The estimates come from the attempts journal (each attempt's model, route, outcome and
seconds), read at most every few seconds per process: the journal is in the store, so every
process of a hub (on PostgreSQL, or one SQLite file) learns from every worker's attempts, and a
`GET` of a task costs one statement more: its place and a count, bounded, of the tasks ahead.

Progress is never measured, only estimated: the time a running task has run against the
typical time of recent successful attempts like it. "Like it" narrows as far as the journal has
samples for (`MIN_SAMPLES`): the same model and latency shape (`shape_of`: a 4K image takes
longer than a 1K one) on the same route, then the same model and shape on any route, then the
same model, then `default_seconds`. It grows with the elapsed time only, and stays below 1 until
the task is ready.

The route narrows nothing today: the worker records a task's route (`Task.provider`) only when
it finishes, so a queued or running task's route is not known while it is estimated, and its
estimate comes from its model and shape.
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from imagehub.flight import SingleFlight
from imagehub.tasks import Attempt, Task, TaskStatus, utcnow

#: the journal's recent attempts since a time (`TaskStore.recent_attempts`)
Journal = Callable[[datetime], Awaitable[Sequence[Attempt]]]


class Queue(Protocol):
    """What the estimates read of the fair queue (`TaskStore`)."""

    async def queue_place(
        self, task_id: str, at_most: int | None = None
    ) -> tuple[float, float, int] | None: ...

    async def queue_places(self, limit: int) -> list[tuple[float, float]]: ...


#: progress climbs in proportion to the elapsed time up to this share of the typical time,
#: then slows towards CEILING, never reaching it: a slow attempt does not look finished
_LINEAR = 0.9
_CEILING = 0.99
#: the ids of running tasks whose expected time is kept, so their progress never goes back
_FROZEN = 10_000
#: positions up to this are counted exactly, in the store, at each read (a short index range);
#: further back, a task's place is looked up in a per-process copy of the queue's places
NEAR = 256
#: the longest copy of the queue's places a process keeps: deeper tasks read as this deep
SNAPSHOT_LIMIT = 100_000


#: the input parameters that change how long a generation takes (from catalog/models.toml): the
#: image's size (`resolution` on the Nano Banana models, `image_size` and `quality` on GPT Image
#: 2), how many images, and the extra work before drawing (reasoning, web search)
SHAPE_PARAMS = (
    "enable_web_search",
    "image_size",
    "num_images",
    "quality",
    "resolution",
    "thinking_level",
)
#: the successful attempts a (model, shape) or (model, shape, route) group needs before its
#: median is trusted over the wider group's
MIN_SAMPLES = 3


def shape_of(task_input: dict[str, Any]) -> str:
    """The latency shape of a task's input: its `SHAPE_PARAMS` values, by name, as
    `name=value;...` (e.g. `num_images=2;quality=high;resolution=4K`); "" when it has none.

    The input is the normalized one (defaults applied), so equal requests have equal shapes.
    """
    parts = []
    for name in SHAPE_PARAMS:
        value = task_input.get(name)
        if value is None:
            continue
        parts.append(f"{name}={_shape_value(value)}")
    return ";".join(parts)


def _shape_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a custom image size: {"width": W, "height": H}
        return f"{value.get('width')}x{value.get('height')}"
    return str(value)


class Unread:
    """A position not read yet (None is read: not queued)."""


UNREAD = Unread()


@dataclass(frozen=True, slots=True)
class Estimate:
    """A task's place and time to go; None where it does not apply or is not known."""

    #: queued: how many tasks a claim would take first
    queue_position: int | None = None
    #: queued or running: seconds until ready
    eta_seconds: float | None = None
    #: running: 0..1, below 1; queued: 0
    progress: float | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """A task's progress at one moment of its event stream."""

    task: Task
    estimate: Estimate
    #: seconds since the task was submitted
    elapsed_seconds: float


@dataclass(frozen=True, slots=True)
class Latencies:
    """One reading of the journal: typical seconds per model, shape and route, and the
    throughput."""

    #: median seconds of a successful attempt, per model (every shape and route)
    by_model: dict[str, float] = field(default_factory=dict)
    #: the same per (model, shape) and per (model, shape, route), for groups of at least
    #: `MIN_SAMPLES` successes only
    by_shape: dict[tuple[str, str], float] = field(default_factory=dict)
    by_route: dict[tuple[str, str, str], float] = field(default_factory=dict)
    #: attempts finished per second over the window, every model: how fast the queue moves
    throughput: float = 0.0

    @classmethod
    def of(
        cls, attempts: Sequence[Attempt], window_seconds: float, min_samples: int = MIN_SAMPLES
    ) -> Latencies:
        per_model: defaultdict[str, list[float]] = defaultdict(list)
        per_shape: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
        per_route: defaultdict[tuple[str, str, str], list[float]] = defaultdict(list)
        finished = 0
        for attempt in attempts:
            finished += 1
            if attempt.succeeded:
                seconds = attempt.seconds
                per_model[attempt.model].append(seconds)
                per_shape[(attempt.model, attempt.shape)].append(seconds)
                per_route[(attempt.model, attempt.shape, attempt.route)].append(seconds)
        return cls(
            by_model={m: statistics.median(s) for m, s in per_model.items()},
            by_shape=_medians(per_shape, min_samples),
            by_route=_medians(per_route, min_samples),
            throughput=finished / window_seconds,
        )

    def typical(self, model: str, shape: str, route: str | None = None) -> float | None:
        """Median seconds of the narrowest trusted group: (model, shape, route) when the route
        is known, (model, shape), then model; None without a success of the model."""
        if route is not None:
            found = self.by_route.get((model, shape, route))
            if found is not None:
                return found
        found = self.by_shape.get((model, shape))
        if found is not None:
            return found
        return self.by_model.get(model)


_Key = TypeVar("_Key")


def _medians(groups: dict[_Key, list[float]], min_samples: int) -> dict[_Key, float]:
    """The median of each group of at least `min_samples` values."""
    return {k: statistics.median(s) for k, s in groups.items() if len(s) >= min_samples}


def progress_at(elapsed: float, expected: float) -> float:
    """0..CEILING: in proportion to `elapsed` up to 90 % of `expected`, then ever slower."""
    if elapsed <= 0:
        return 0.0
    if elapsed <= _LINEAR * expected:
        return elapsed / expected
    over = (elapsed - _LINEAR * expected) / expected
    return _CEILING - (_CEILING - _LINEAR) * math.exp(-over)


class Estimator:
    """Estimates for tasks, from a per-process reading of the journal kept `refresh_seconds`."""

    def __init__(
        self,
        journal: Journal,
        queue: Queue,
        *,
        window_seconds: float = 900.0,
        refresh_seconds: float = 5.0,
        default_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.queue = queue
        self.window_seconds = window_seconds
        self.refresh_seconds = refresh_seconds
        #: what a model without recent successes is expected to take
        self.default_seconds = default_seconds
        self.clock = clock
        self._latencies = Latencies()
        self._read_at: float | None = None
        self._read_latencies = SingleFlight(self._read_journal, "reading the attempts journal")
        self._places: list[tuple[float, float]] = []
        self._places_at: float | None = None
        self._read_places = SingleFlight(self._read_queue, "reading the queue's places")
        #: running task id -> (attempt, expected seconds) fixed at its first estimate
        self._expected: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def latencies(self) -> Latencies:
        """The journal's reading, read again when older than `refresh_seconds`.

        Only the first reading is waited for: a stale one is answered while the next is read
        (at 10,000 attempts a reading takes tens of milliseconds, and every request that
        found it stale would wait for it).
        """
        if self._read_at is None:
            await self._read_latencies()  # one reading at a time; the others take its result
        elif not self._fresh():
            self._read_latencies.start()
        return self._latencies

    async def _read_journal(self) -> None:
        since = utcnow() - timedelta(seconds=self.window_seconds)
        attempts = await self.journal(since)
        self._latencies = Latencies.of(attempts, self.window_seconds)
        self._read_at = self.clock()

    async def _read_queue(self) -> None:
        self._places = await self.queue.queue_places(SNAPSHOT_LIMIT)
        self._places_at = self.clock()

    def _fresh(self, *, places: bool = False) -> bool:
        read_at = self._places_at if places else self._read_at
        return read_at is not None and self.clock() - read_at < self.refresh_seconds

    async def position(self, task_id: str) -> int | None:
        """Tasks ahead of a queued one: exact near the head of the queue, where it changes
        fast and is watched; from a copy at most `refresh_seconds` old further back."""
        found = await self.queue.queue_place(task_id, NEAR)
        if found is None:
            return None
        place, near = found[:2], found[2]
        if near < NEAR:
            return near
        if self._places_at is None:
            await self._read_places()
        elif not self._fresh(places=True):
            self._read_places.start()  # as the journal's: a stale copy while the next is read
        return max(NEAR, bisect.bisect_left(self._places, place))

    def typical_seconds(
        self, latencies: Latencies, model: str, shape: str = "", route: str | None = None
    ) -> float:
        found = latencies.typical(model, shape, route)
        return self.default_seconds if found is None else found

    async def estimate(self, task: Task, position: int | Unread | None = UNREAD) -> Estimate:
        """The task's estimate; `position`, when given, is its position read with it."""
        if task.ready:
            self._expected.pop(task.id, None)
            return Estimate()  # `ready` says it all; a ready task reads the same everywhere
        latencies = await self.latencies()
        if task.status == TaskStatus.QUEUED:
            if isinstance(position, Unread):
                position = await self.position(task.id)
            if position is None:  # claimed (or finished) since it was read
                return Estimate()
            return Estimate(
                queue_position=position,
                eta_seconds=self._queued_eta(latencies, task, position),
                progress=0.0,
            )
        # no route: the worker records it only at the finish (see the module's docstring)
        own = self.typical_seconds(latencies, task.model, shape_of(task.input))
        expected = self._frozen(task, own)
        started = task.started_at or utcnow()
        elapsed = max(0.0, (utcnow() - started).total_seconds())
        return Estimate(
            eta_seconds=round(max(expected - elapsed, 1.0), 1),
            progress=round(progress_at(elapsed, expected), 4),
        )

    def _queued_eta(self, latencies: Latencies, task: Task, position: int) -> float | None:
        own = self.typical_seconds(latencies, task.model, shape_of(task.input))
        if position == 0:
            return round(own, 1)
        if latencies.throughput <= 0:
            return None  # nothing finished lately: no telling how fast the queue moves
        return round(position / latencies.throughput + own, 1)

    def _frozen(self, task: Task, expected: float) -> float:
        """A running attempt's expected time, fixed at its first estimate in this process.

        A later reading of the journal could lower or raise the typical time; fixing it per
        attempt keeps this task's progress a function of its elapsed time only.
        """
        kept = self._expected.get(task.id)
        if kept is not None and kept[0] == task.attempts:
            self._expected.move_to_end(task.id)
            return kept[1]
        self._expected[task.id] = (task.attempts, expected)
        if len(self._expected) > _FROZEN:
            self._expected.popitem(last=False)
        return expected
