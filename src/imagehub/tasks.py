"""The task: one generation request and its lifecycle, as a pure state machine.

This module imports nothing of the project but `errors`.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import os
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from imagehub.errors import Canceled, InternalError, InvalidTransition, TaskError


class TaskStatus(enum.StrEnum):
    #: stored, waiting for a worker (again, after a retry)
    QUEUED = "queued"
    #: claimed by a worker, which holds its lease
    RUNNING = "running"
    #: finished with images
    SUCCEEDED = "succeeded"
    #: finished with an error
    FAILED = "failed"
    #: stopped on the client's request
    CANCELED = "canceled"

    @property
    def ready(self) -> bool:
        return self in FINAL


FINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED})

ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELED, TaskStatus.FAILED}),
    # back to QUEUED only through a retry or a lease handed back
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.QUEUED, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED}
    ),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELED: frozenset(),
}


def check_transition(current: TaskStatus, to: TaskStatus) -> None:
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"a task cannot go from {current} to {to}")


def utcnow() -> datetime:
    return datetime.now(UTC)


_ALPHABET = string.ascii_letters + string.digits


class _RandomBytes:
    """The OS's random bytes, read in bulk and each handed out once.

    `os.urandom` lets go of the GIL for its system call and must then wait to take it back
    from whichever thread holds it (a SQLite or file-writing thread): on a busy event loop that
    wait, not the call, is the cost. One read serves 128 ids; a forked child starts afresh.
    """

    CHUNK = 32 * 128

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._buffer, self._offset = b"", 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._offset + size > len(self._buffer):
                self._buffer, self._offset = os.urandom(max(self.CHUNK, size)), 0
            start = self._offset
            self._offset += size
            return self._buffer[start : self._offset]


_random = _RandomBytes()


def new_id(prefix: str) -> str:
    """An id with 131 random bits: 22 base-62 characters after the prefix."""
    while True:
        # each byte under 248 (4 x 62) is one character, uniformly; the few others are dropped
        chars = _random.take(32).translate(_BASE62, _OVER)
        if len(chars) >= _ID_CHARS:
            return prefix + chars[:_ID_CHARS].decode("ascii")


def new_sorted_id(prefix: str) -> str:
    """An id that sorts after the ids made before it (to the millisecond): 8 characters of the
    time in milliseconds, in an alphabet in ASCII order, then 14 random base-62 characters
    (83 random bits).

    Task ids key three indexes (tasks, spend, attempts). A random key puts each insert on a
    random page of each index, where rising keys share the index's last page: a group commit
    writes fewer pages (a fifth fewer WAL writes a task on SQLite), and a large table does not
    read its index back a page at a time. A task id grants nothing by itself (every read of a
    task checks its tenant), so fewer random bits are enough here.
    """
    millis = time.time_ns() // 1_000_000
    head = bytearray(_TIME_CHARS)
    for i in range(_TIME_CHARS - 1, -1, -1):
        millis, digit = divmod(millis, 62)
        head[i] = _SORTED[digit]
    return prefix + head.decode("ascii") + new_id("")[_TIME_CHARS:]


def random_hex(size: int) -> str:
    """`size` random bytes as hex, from the same bulk reads as the ids."""
    return _random.take(size).hex()


_ID_CHARS = 22
_BASE62 = bytes(ord(_ALPHABET[b % 62]) for b in range(248)) + bytes(8)
_OVER = bytes(range(248, 256))
#: 62^8 milliseconds: until the year 8888
_TIME_CHARS = 8
_SORTED = (string.digits + string.ascii_uppercase + string.ascii_lowercase).encode("ascii")


def _fields(flat: Any) -> dict[str, Any]:
    """A dataclass of plain values as a dict: `dataclasses.asdict` without its deep copies."""
    return {name: getattr(flat, name) for name in flat.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One stored output image; `url` is rendered at read time from `file_id` or `data_uri`."""

    content_type: str
    file_name: str
    file_size: int
    width: int
    height: int
    file_id: str | None = None
    #: only for sync_mode tasks, until purged
    data_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputImage:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Source:
    """A web page a grounded answer drew on."""

    uri: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class Grounding:
    """What a web search behind an answer found (Gemini's `groundingMetadata`)."""

    #: the searches the model ran
    queries: tuple[str, ...] = ()
    #: Google's search suggestions as HTML, which its terms require be shown with the answer
    search_entry_point: str = ""
    sources: tuple[Source, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": list(self.queries),
            "search_entry_point": self.search_entry_point,
            "sources": [_fields(source) for source in self.sources],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grounding:
        return cls(
            queries=tuple(data.get("queries", ())),
            search_entry_point=data.get("search_entry_point", ""),
            sources=tuple(Source(**source) for source in data.get("sources", ())),
        )


@dataclass(frozen=True, slots=True)
class TaskOutput:
    images: tuple[OutputImage, ...]
    description: str = ""
    #: sync_mode outputs are dropped after the first read that returned them
    purged: bool = False
    #: set when the model searched the web for the answer
    grounding: Grounding | None = None

    def purge(self) -> TaskOutput:
        """This output without its images, marked purged (a sync_mode task after its first read)."""
        return dataclasses.replace(self, images=(), purged=True)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "images": [image.to_dict() for image in self.images],
            "description": self.description,
            "purged": self.purged,
        }
        if self.grounding is not None:  # absent, not null: outputs stored before it read alike
            data["grounding"] = self.grounding.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskOutput:
        grounding = data.get("grounding")
        return cls(
            images=tuple(OutputImage.from_dict(image) for image in data["images"]),
            description=data.get("description", ""),
            purged=data.get("purged", False),
            grounding=Grounding.from_dict(grounding) if grounding else None,
        )


@dataclass(frozen=True, slots=True)
class PartialImage:
    """A partial image an upstream streamed while drawing (OpenAI's `partial_images`), stored as a
    file; `index` counts from 0 within the attempt that drew it."""

    index: int
    file_id: str
    content_type: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartialImage:
        return cls(**data)


#: the most partial images a task may ask for (OpenAI's `partial_images` is 0 to 3)
MAX_PARTIAL_IMAGES = 3


#: what a cost is computed from: reported tokens at their rates, or a price per image
Basis = Literal["tokens", "per_image"]


@dataclass(frozen=True, slots=True)
class Usage:
    """What a task cost: upstream token counts where reported, and the price of the route.

    `basis` says what the cost was computed from: "tokens" (the upstream's reported tokens at
    its rates) or "per_image" (each image made at the route's list price); None on tasks
    finished before it was recorded.
    """

    cost_usd: float = 0.0
    input_tokens: int | None = None
    output_tokens: int | None = None
    basis: Basis | None = None

    def to_dict(self) -> dict[str, Any]:
        return _fields(self)


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """Why a task failed (or was canceled): a `TaskError` as the task keeps it."""

    code: str
    message: str
    retryable: bool = False

    @classmethod
    def of(cls, error: TaskError) -> TaskFailure:
        # an error the hub gave up on is final: retrying is over, whatever its kind
        return cls(error.code, error.message, error.retryable and not error.final)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskFailure:
        return cls(str(data["code"]), str(data.get("message", "")), bool(data.get("retryable")))


#: what a task canceled by its client ends with
CANCELED_ERROR = TaskFailure.of(Canceled())
#: what a task that lost its worker on every attempt fails with
LOST_WORKER_ERROR = TaskFailure.of(
    InternalError("The worker running this task stopped responding on every attempt.")
)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    tenant_id: str
    model: str
    #: the normalized input: every parameter, defaults applied
    input: dict[str, Any]
    status: TaskStatus = TaskStatus.QUEUED
    output: TaskOutput | None = None
    error: TaskFailure | None = None
    provider: str | None = None
    warnings: tuple[str, ...] = ()
    attempts: int = 0
    max_attempts: int = 3
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    #: fingerprint of the submitted body, to tell a replay from a reused key
    request_hash: str | None = None
    usage: Usage | None = None
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: not before this time (retry backoff)
    run_after: datetime = field(default_factory=utcnow)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    #: fencing token: grows on every claim; every write of an attempt is guarded by it
    lease_token: int = 0
    #: W3C traceparent of the submit span: the worker's and webhook's spans join its trace
    traceparent: str | None = None
    #: how many partial images the client asked to see while the image is drawn (0: none)
    partial_images: int = 0
    #: the partial images of the current (or succeeded) attempt, in the order they came
    partials: tuple[PartialImage, ...] = ()

    @property
    def ready(self) -> bool:
        return self.status.ready

    def replace(self, **changes: Any) -> Task:
        if "status" in changes:
            check_transition(self.status, changes["status"])
        # the slots copied, then the changes: half of `dataclasses.replace`'s cost, which
        # runs `__init__` over every field (a task is replaced several times an attempt)
        new = object.__new__(Task)
        for name, value in zip(_TASK_FIELDS, _task_values(self), strict=True):
            _set(new, name, value)
        for name, value in changes.items():
            _set(new, name, value)  # an unknown name raises AttributeError (slots)
        return new


_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(Task))
_task_values = operator.attrgetter(*_TASK_FIELDS)
_set = object.__setattr__


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call of a route for a task: a row of the attempts journal.

    A task's attempt may call several routes (failover): each call is one `Attempt`, all with
    the task's attempt `number`.
    """

    task_id: str
    tenant_id: str
    #: the task's attempt this call belongs to (1-based)
    number: int
    model: str
    #: the route's name: what `Task.provider` reports
    route: str
    #: the route's kind (gemini, vertex, openai, openrouter, openai_compatible, fal, demo)
    provider: str
    started_at: datetime
    finished_at: datetime
    #: "succeeded", or the code of the `TaskError` the call ended with
    outcome: str
    message: str = ""
    #: the task's latency shape (`estimates.shape_of`): the parameters that change its time
    shape: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def succeeded(self) -> bool:
        return self.outcome == SUCCEEDED


#: the outcome of a route call that returned images
SUCCEEDED = "succeeded"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a tenant's tasks, newest first; `next_cursor` is None on the last."""

    tasks: list[Task]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What the queue holds now, for the metrics: read from the store at scrape time."""

    #: (model, status) -> tasks, for the statuses a task leaves (queued, running)
    tasks: dict[tuple[str, str], int]
    #: model -> seconds the longest-waiting due queued task has waited
    oldest_queued: dict[str, float]
    #: webhook deliveries pending (due or waiting for a retry)
    webhooks_pending: int
    #: seconds the longest-due pending delivery has waited (0 when none is due)
    webhooks_oldest_due: float


class DuplicateTask(Exception):
    """A task with this tenant and idempotency key exists already."""

    def __init__(self, existing: Task) -> None:
        self.existing = existing
        super().__init__(existing.id)
