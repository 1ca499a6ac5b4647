"""What the SDK sends and how it reads the answers, shared by `Client` and `AsyncClient`.

No I/O happens here: each API call is described by a `Call`, which the two clients send their
own way (with the same retry rule) and hand the answer back to.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from imagehub.errors import (
    HTTP_ERRORS,
    TASK_ERRORS,
    ClientError,
    HubError,
    IdempotencyKeyReused,
    InvalidInput,
    RateLimited,
    TaskFailed,
    parse_retry_after,
)
from imagehub.schemas import ErrorBody, FileOut, ImageOut, ModelList, ModelOut, TaskList, TaskOut

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/hub/v1"
#: the longest a single long-poll is held by the hub
LONG_POLL_SECONDS = 60.0
#: how long generate() and wait() wait by default; None waits as long as it takes
DEFAULT_WAIT_SECONDS = 600.0
#: the longest pause before a retry, whatever Retry-After says
_MAX_RETRY_DELAY = 30.0
_FAILED = ("failed", "canceled")
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}

Source = str | os.PathLike[str] | bytes


def _version() -> str:
    try:
        return metadata.version("imagehub")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"imagehub-python/{_version()}"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and how to read its answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, str | int | float] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] | None = None
    #: seconds the hub may hold the answer (long-poll, Prefer: wait)
    hold: float = 0.0
    #: safe to send again even when the first try may have reached the hub
    replayable: bool = False


def _reader(schema: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        return schema.model_validate_json(response.content)

    return read


def _models(response: httpx.Response) -> list[ModelOut]:
    return ModelList.model_validate_json(response.content).data


def new_key() -> str:
    """A fresh Idempotency-Key: one per logical submit, kept across its retries."""
    return str(uuid.uuid4())


def submit(
    model: str,
    params: dict[str, Any],
    *,
    idempotency_key: str,
    webhook_url: str | None = None,
    metadata: dict[str, Any] | None = None,
    wait: float = 0.0,
    partial_images: int = 0,
) -> Call[TaskOut]:
    body: dict[str, Any] = {"model": model, "input": params}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    if metadata is not None:
        body["metadata"] = metadata
    if partial_images:
        body["partial_images"] = partial_images
    headers = {"Idempotency-Key": idempotency_key}
    if wait > 0:
        headers["Prefer"] = f"wait={wait:.3f}"
    path = f"{API}/tasks"
    return Call(
        "POST", path, _reader(TaskOut), json=body, headers=headers, hold=wait, replayable=True
    )


def get(task_id: str, wait: float = 0.0) -> Call[TaskOut]:
    params: dict[str, str | int | float] | None = {"wait": round(wait, 3)} if wait > 0 else None
    path = f"{API}/tasks/{quote(task_id, safe='')}"
    return Call("GET", path, _reader(TaskOut), params=params, hold=wait, replayable=True)


def list_page(
    model: str | None, status: str | None, limit: int, cursor: str | None
) -> Call[TaskList]:
    params: dict[str, str | int | float] = {"limit": limit}
    for name, value in (("model", model), ("status", status), ("cursor", cursor)):
        if value is not None:
            params[name] = value
    return Call("GET", f"{API}/tasks", _reader(TaskList), params=params, replayable=True)


def cancel(task_id: str) -> Call[TaskOut]:
    return Call("POST", f"{API}/tasks/{quote(task_id, safe='')}/cancel", _reader(TaskOut))


def upload(name: str, data: bytes, content_type: str) -> Call[FileOut]:
    files = {"file": (name, data, content_type)}
    return Call("POST", f"{API}/files", _reader(FileOut), files=files)


def models() -> Call[list[ModelOut]]:
    return Call("GET", f"{API}/models", _models, replayable=True)


def model(model_id: str) -> Call[ModelOut]:
    return Call(
        "GET", f"{API}/models/{quote(model_id, safe='/')}", _reader(ModelOut), replayable=True
    )


def file_part(source: Source) -> tuple[str, bytes, str]:
    """The multipart part for an upload: a file's name, bytes and type (reads the file)."""
    if isinstance(source, bytes):
        return "upload", source, "application/octet-stream"
    path = Path(source)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return path.name, path.read_bytes(), content_type


# -- answers


def check(response: httpx.Response) -> None:
    """Raise the typed error a non-2xx answer stands for."""
    if not response.is_success:
        raise error_from(response)


def error_from(response: httpx.Response) -> HubError:
    """The exception of the error envelope, keyed by its code, else by the HTTP status."""
    status = response.status_code
    try:
        info = ErrorBody.model_validate_json(response.content).error
        code, message = info.code, info.message
        details = [d.model_dump() for d in info.details or []]
    except ValidationError:
        code, message, details = "", f"HTTP {status}: {response.text[:200]}", []
    cls = HTTP_ERRORS.get(code) or _BY_STATUS.get(status)
    if cls is None:
        return ClientError(message) if 400 <= status < 500 else HubError(message)
    build = _BUILDERS.get(cls)
    return build(message, details, response) if build is not None else cls(message)


#: the error a status stands for when the envelope names no known code
_BY_STATUS: dict[int, type[HubError]] = {422: InvalidInput, 429: RateLimited}
#: errors built from more than their message: (message, details, response) -> error
_BUILDERS: dict[type[HubError], Callable[[str, list[Any], httpx.Response], HubError]] = {
    IdempotencyKeyReused: lambda _message, _details, _response: IdempotencyKeyReused(),
    InvalidInput: lambda message, details, _response: InvalidInput(details, message),
    RateLimited: lambda message, _details, response: RateLimited(
        message, retry_after=retry_after(response) or 1.0
    ),
}


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (delta or HTTP date), if the answer has one."""
    return parse_retry_after(response.headers.get("retry-after"))


def retry_delay(
    call: Call[Any], attempt: int, response: httpx.Response | None, error: Exception | None
) -> float | None:
    """Seconds to wait before trying `call` again, or None when it must not be retried.

    Refused connections and 503 answers are retried for every call; a connection that broke
    after the request went out only for calls that are safe to repeat (a submit is: its
    Idempotency-Key makes the hub return the task the first try created).
    """
    if response is not None and response.status_code != 503:
        return None
    if isinstance(error, httpx.TransportError):
        sent = not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
        if sent and not call.replayable:
            return None
        if isinstance(error, httpx.UnsupportedProtocol):
            return None
    hinted = retry_after(response) if response is not None else None
    delay = hinted if hinted is not None else 0.25 * 2**attempt * random.uniform(0.5, 1.5)
    return min(delay, _MAX_RETRY_DELAY)


def failure(task: TaskOut) -> TaskFailed:
    """TaskFailed for a failed or canceled task, caused by the task's own error class."""
    exc = TaskFailed(task)
    cause = TASK_ERRORS.get(task.error.code) if task.error else None
    if cause is not None and task.error is not None:
        exc.__cause__ = cause(task.error.message)
    return exc


def settle(task: TaskOut, raise_on_failure: bool) -> TaskOut:
    if raise_on_failure and task.status in _FAILED:
        raise failure(task)
    return task


def images_of(task: TaskOut) -> Sequence[ImageOut]:
    """The images of a finished task; TaskFailed when it has none because it failed."""
    if task.status in _FAILED:
        raise failure(task)
    if task.output is None:
        raise ValueError(f"task {task.task_id} is {task.status}: it has no images yet")
    if task.output.output_purged:
        raise ValueError(
            f"task {task.task_id} used sync_mode: its images were returned once and not kept"
        )
    return task.output.images


def file_name(task: TaskOut, index: int, image: ImageOut) -> str:
    """A safe local name: the hub's `<task_id>-<n>.<ext>`, never a path."""
    name = Path(image.file_name).name
    if name and not name.startswith("."):
        return name
    return f"{task.task_id}-{index}{_EXTENSIONS.get(image.content_type, '.bin')}"


def data_uri_bytes(url: str) -> bytes | None:
    """The bytes of a `data:...;base64,` URL (sync_mode images), None for other URLs."""
    if not url.startswith("data:"):
        return None
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise ValueError("only base64 data URIs are supported")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the data URI is not valid base64") from None


#: how long one long-poll holds when the caller follows the task's progress
PROGRESS_POLL_SECONDS = 1.0


class Progress:
    """Hands each read of a waited task to an `on_progress` callback.

    Progress is an estimate the hub may revise (another process, a new reading of the
    journal): the callback sees it never going backwards.
    """

    def __init__(self, callback: Callable[[TaskOut], object] | None) -> None:
        self.callback = callback
        self._furthest = 0.0

    def hold(self, deadline: Deadline) -> float:
        """The next long-poll: short enough for a steady rate of callbacks when there is one."""
        held = deadline.hold()
        return held if self.callback is None else min(held, PROGRESS_POLL_SECONDS)

    def seen(self, task: TaskOut) -> object:
        """The callback's result for a task not ready yet (None without a callback)."""
        if self.callback is None or task.ready:
            return None
        if task.progress is not None:
            self._furthest = max(self._furthest, task.progress)
            task = task.model_copy(update={"progress": self._furthest})
        return self.callback(task)


class Deadline:
    """A wait budget: how long the next long-poll may hold, and whether time is up."""

    def __init__(self, seconds: float | None) -> None:
        self.at = None if seconds is None else time.monotonic() + max(seconds, 0.0)

    def left(self) -> float | None:
        return None if self.at is None else max(self.at - time.monotonic(), 0.0)

    def hold(self) -> float:
        left = self.left()
        return LONG_POLL_SECONDS if left is None else min(left, LONG_POLL_SECONDS)

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at
