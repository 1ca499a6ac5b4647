"""`AsyncClient`: the asyncio SDK, call for call the same as `Client`."""

from __future__ import annotations

import asyncio
import builtins
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from imagehub.client import wire
from imagehub.client.config import resolve
from imagehub.errors import HubUnreachable, WaitTimeout
from imagehub.schemas import FileOut, ImageOut, ModelOut, TaskOut

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of an imagehub.

    `base_url` defaults to IMAGEHUB_URL (else http://127.0.0.1:8000), `api_key` to
    IMAGEHUB_API_KEY. `transport` replaces the network, e.g. to reach an app in process.
    Refused connections and 503 answers are retried `max_retries` times.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        target = resolve(base_url, api_key)
        self.base_url = target.url
        self._api_key = target.api_key
        self._timeout = timeout
        self._max_retries = max_retries
        self._http = httpx.AsyncClient(
            base_url=target.url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": wire.USER_AGENT},
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- tasks

    async def submit(
        self,
        model: str,
        /,
        *,
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        partial_images: int = 0,
        **params: Any,
    ) -> TaskOut:
        """Queue a task of `model` with `params` as its input; answers at once.

        `partial_images` (0 to 3) asks for partial images while the image is drawn (gpt-image-2 on
        OpenAI routes): the task's `partials` lists them, its `/events` announces each.
        """
        key = idempotency_key or wire.new_key()
        call = wire.submit(
            model,
            params,
            idempotency_key=key,
            webhook_url=webhook_url,
            metadata=metadata,
            partial_images=partial_images,
        )
        return await self._send(call)

    async def generate(
        self,
        model: str,
        /,
        *,
        # the budget sizes each long-poll the hub holds, which asyncio.timeout cannot do
        timeout: float | None = wire.DEFAULT_WAIT_SECONDS,  # noqa: ASYNC109
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        on_progress: Callable[[TaskOut], Awaitable[None] | None] | None = None,
        **params: Any,
    ) -> TaskOut:
        """Submit and wait: the succeeded task, or TaskFailed, or WaitTimeout after `timeout`.

        `on_progress` is called with the task about every second while it is queued or
        running (its `queue_position`, `eta_seconds` and `progress`).
        """
        deadline = wire.Deadline(timeout)
        progress = wire.Progress(on_progress)
        call = wire.submit(
            model,
            params,
            idempotency_key=idempotency_key or wire.new_key(),
            webhook_url=webhook_url,
            metadata=metadata,
            # followed: the submit answers at once, so that the first call comes at once
            wait=0.0 if on_progress else deadline.hold(),
        )
        task = await self._send(call)
        if not task.ready:
            task = await self._follow(task, deadline, progress)
        return wire.settle(task, raise_on_failure=True)

    async def get(self, task_id: str, *, wait: float = 0.0) -> TaskOut:
        """The task; with `wait`, one long-poll of up to that many seconds (at most 60)."""
        return await self._send(wire.get(task_id, min(wait, wire.LONG_POLL_SECONDS)))

    async def wait(
        self,
        task_id: str,
        # the budget sizes each long-poll the hub holds, which asyncio.timeout cannot do
        timeout: float | None = wire.DEFAULT_WAIT_SECONDS,  # noqa: ASYNC109
        *,
        raise_on_failure: bool = False,
        on_progress: Callable[[TaskOut], Awaitable[None] | None] | None = None,
    ) -> TaskOut:
        """The task once ready, by long-polling; WaitTimeout after `timeout` seconds.

        `on_progress` is called with the task about every second until it is ready: its
        `queue_position` while queued, its `progress` (never going backwards) while running,
        and `eta_seconds`.
        """
        deadline = wire.Deadline(timeout)
        progress = wire.Progress(on_progress)
        task = await self._send(wire.get(task_id, progress.hold(deadline)))
        return wire.settle(await self._follow(task, deadline, progress), raise_on_failure)

    async def _follow(
        self, task: TaskOut, deadline: wire.Deadline, progress: wire.Progress
    ) -> TaskOut:
        """Long-poll `task` until ready (WaitTimeout when the deadline passes), telling
        `progress` of every read until then."""
        while not task.ready:
            called = progress.seen(task)
            if inspect.isawaitable(called):
                await called
            if deadline.passed():
                raise WaitTimeout(task)
            task = await self._send(wire.get(task.task_id, progress.hold(deadline)))
        return task

    async def cancel(self, task_id: str) -> TaskOut:
        """Cancel a queued or running task; AlreadyFinished when it is ready."""
        return await self._send(wire.cancel(task_id))

    # -- files and models

    async def upload(self, source: wire.Source) -> FileOut:
        """Store an input image (a path or bytes); its `url` works in `image_urls`."""
        part = await asyncio.to_thread(wire.file_part, source)
        return await self._send(wire.upload(*part))

    async def models(self) -> builtins.list[ModelOut]:
        """Every model with its parameter table."""
        return await self._send(wire.models())

    async def model(self, model_id: str) -> ModelOut:
        return await self._send(wire.model(model_id))

    async def download(self, image: ImageOut | str) -> bytes:
        """The bytes of an output image (or any image URL); no API key is sent."""
        url = image if isinstance(image, str) else image.url
        inline = wire.data_uri_bytes(url)
        if inline is not None:
            return inline
        try:
            response = await self._http.get(url, follow_redirects=True)
        except httpx.TransportError as exc:
            raise HubUnreachable(f"{url}: {exc}") from exc
        wire.check(response)
        return response.content

    async def save(self, task: TaskOut, folder: str | Path = ".") -> builtins.list[Path]:
        """Download the task's images into `folder` as `<task_id>-<n>.<ext>`; their paths."""
        target = Path(folder)
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        paths = []
        for index, image in enumerate(wire.images_of(task)):
            path = target / wire.file_name(task, index, image)
            await asyncio.to_thread(path.write_bytes, await self.download(image))
            paths.append(path)
        return paths

    async def list(
        self, *, model: str | None = None, status: str | None = None, page_size: int = 50
    ) -> AsyncIterator[TaskOut]:
        """Every task of the key, newest first, fetching pages only as they are reached."""
        cursor: str | None = None
        while True:
            page = await self._send(wire.list_page(model, status, page_size, cursor))
            for task in page.data:
                yield task
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -- sending

    async def _send(self, call: wire.Call[T]) -> T:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._request(call)
            except httpx.TransportError as exc:
                delay = wire.retry_delay(call, attempt, None, exc)
                if delay is None or attempt >= self._max_retries:
                    raise HubUnreachable(f"{self.base_url}: {exc}") from exc
            else:
                delay = wire.retry_delay(call, attempt, response, None)
                if delay is None or attempt >= self._max_retries:
                    wire.check(response)
                    return call.read(response)
            await asyncio.sleep(delay)
            attempt += 1

    async def _request(self, call: wire.Call[Any]) -> httpx.Response:
        headers = dict(call.headers)
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return await self._http.request(
            call.method,
            call.path,
            json=call.json,
            params=call.params,
            headers=headers,
            files=call.files,
            timeout=self._timeout + call.hold,
        )
