"""The Hub: the façade the API and CLI call; `imagehub.wiring` builds it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from imagehub import imaging, logs
from imagehub.catalog import Catalog, ModelSpec, Validator
from imagehub.errors import (
    AlreadyFinished,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidInputImage,
    NotFound,
)
from imagehub.estimates import Estimate, Estimator, Progress
from imagehub.imagework import ImageWork
from imagehub.media import LocalMedia, MediaStore, Presigning
from imagehub.media.previews import Previews
from imagehub.metrics import Metrics
from imagehub.outbound.address import AddressPolicy
from imagehub.outbound.fetch import Fetcher, check_refs
from imagehub.routing.router import Router
from imagehub.routing.states import RouteStatePublisher
from imagehub.settings import Settings
from imagehub.store import Store
from imagehub.tasks import (
    MAX_PARTIAL_IMAGES,
    DuplicateTask,
    Page,
    Task,
    TaskStatus,
    new_sorted_id,
    utcnow,
)
from imagehub.tenancy.accounts import Accounts
from imagehub.tenancy.keys import make_key
from imagehub.tenancy.limits import over_limit
from imagehub.tenancy.pricing import Pricing
from imagehub.tenancy.types import ApiKey, OverLimit, Submission
from imagehub.tracing import TASK_ID, Tracing
from imagehub.wakeups.notifier import Notifier
from imagehub.webhooks.sender import WebhookSender, check_webhook_url
from imagehub.webhooks.types import Delivery
from imagehub.worker import Worker

log = logging.getLogger("imagehub")

MAX_WAIT_SECONDS = 60.0
MAX_METADATA_BYTES = 4096


class Hub:
    """Submit, read, list, cancel and wait for tasks; everything else is behind it.

    `imagehub.wiring.build_hub` builds one; the hub only holds its collaborators.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        media: MediaStore,
        catalog: Catalog,
        validator: Validator,
        router: Router,
        pricing: Pricing,
        notifier: Notifier,
        metrics: Metrics,
        policy: AddressPolicy,
        accounts: Accounts,
        fetcher: Fetcher,
        previews: Previews,
        work: ImageWork,
        estimator: Estimator,
        worker: Worker | None = None,
        webhooks: WebhookSender | None = None,
        route_states: RouteStatePublisher | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.media = media
        #: resized, cached copies of stored images (`?w=`)
        self.previews = previews
        #: the image worker processes, stopped with the hub
        self.work = work
        self.catalog = catalog
        self.validator = validator
        self.router = router
        self.pricing = pricing
        self.notifier = notifier
        self.metrics = metrics
        #: every URL a client hands the hub is checked by this one (images, webhooks)
        self.policy = policy
        self.accounts = accounts
        self.fetcher = fetcher
        #: queue position, progress and ETA of tasks, from the attempts journal
        self.estimator = estimator
        #: runs tasks in this process (None: an API-only process)
        self.worker = worker
        #: sends webhooks wherever tasks are run
        self.webhooks = webhooks
        #: shares this process's route health where tasks are run
        self.route_states = route_states
        #: spans of requests, submits, attempts and deliveries (a no-op unless OTEL_* asks)
        self.tracing = tracing or Tracing()
        self._worker_runner: asyncio.Task[None] | None = None
        self._webhook_runner: asyncio.Task[None] | None = None
        self._states_runner: asyncio.Task[None] | None = None

    # -- lifecycle

    async def start(self) -> None:
        await self.store.open()
        await self.notifier.start()
        if self.worker is not None:
            await self.worker.reap()
            self._worker_runner = asyncio.create_task(self.worker.run(), name="imagehub-worker")
        if self.webhooks is not None:
            self._webhook_runner = asyncio.create_task(self.webhooks.run(), name="imagehub-hooks")
        if self.route_states is not None:
            self._states_runner = asyncio.create_task(
                self.route_states.run(), name="imagehub-route-states"
            )

    async def stop(self) -> None:
        if self.worker is not None and self._worker_runner is not None:
            self.worker.stop()
            await self._worker_runner
        if self.webhooks is not None and self._webhook_runner is not None:
            self.webhooks.stop()
            await self._webhook_runner
        if self.route_states is not None and self._states_runner is not None:
            await self.route_states.stop()
            await self._states_runner
        await self.accounts.aclose()
        for provider in self.router.providers():
            await provider.aclose()
        await self.fetcher.aclose()
        await self.notifier.close()
        await self.store.close()
        await self.media.aclose()
        await asyncio.to_thread(self.work.close)
        await asyncio.to_thread(self.tracing.shutdown)  # the spans still buffered go out

    async def ensure_admin_key(self) -> str | None:
        """Store the configured admin key, or create one if the store has none.

        Returns the plaintext of a key it created (to print once), else None.
        """
        configured = self.settings.admin_key
        if configured is not None:
            await self.accounts.ensure_admin(configured.get_secret_value())
            return None
        if await self.store.count_keys() > 0:
            return None
        plaintext, record = make_key(name="admin", admin=True)
        await self.store.add_key(record)
        return plaintext

    async def bootstrap(self) -> str | None:
        """`ensure_admin_key` with the store opened for it alone (before the server starts)."""
        await self.store.open()
        try:
            return await self.ensure_admin_key()
        finally:
            await self.store.close()

    async def authenticate(self, key: str) -> ApiKey:
        return await self.accounts.authenticate(key)

    # -- models

    def models(self) -> list[ModelSpec]:
        return list(self.catalog)

    def model(self, model_id: str) -> ModelSpec:
        spec = self.catalog.get(model_id)
        if spec is None:
            raise NotFound(f"no model {model_id!r}")
        return spec

    # -- tasks

    async def submit(
        self,
        tenant_id: str,
        model: str,
        input: dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        key: ApiKey | None = None,
        base_url: str = "",
        partial_images: int = 0,
    ) -> tuple[Task, bool]:
        """Validate and store a task; return it and whether it was created (not replayed).

        `key` is charged (its concurrency limit and budget; 429 past them); `base_url` is where
        clients reach the hub, for the file URLs of the task's webhook. `partial_images` asks
        for that many partial images while the image is drawn (routes that stream them only).
        """
        valid = self.validator.validate(model, input)
        _check_partial_images(partial_images, valid.params)
        # a model no route serves (503), or a request no route can honour exactly (422)
        self.router.check(self.model(model), valid.params, partial_images=partial_images)
        check_refs(self.model(model), valid.params, self.policy)
        if metadata is not None and len(json.dumps(metadata)) > MAX_METADATA_BYTES:
            raise InvalidInput.one(
                ["metadata"], f"must be at most {MAX_METADATA_BYTES} bytes as JSON", "too_long"
            )
        if webhook_url is not None:
            check_webhook_url(webhook_url, self.policy)
        # what a replay under the same idempotency key must match; nothing to match without one
        fingerprint = (
            _fingerprint(model, input, metadata, webhook_url, partial_images)
            if idempotency_key is not None
            else None
        )
        task = Task(
            id=new_sorted_id("tsk_"),
            tenant_id=tenant_id,
            model=model,
            input=valid.params,
            warnings=valid.warnings,
            max_attempts=self.settings.max_attempts,
            metadata=metadata,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
            partial_images=partial_images,
        )
        logs.task_id.set(task.id)  # the rest of the request's log lines name the task
        with self.tracing.span("imagehub.submit", {TASK_ID: task.id, "imagehub.model": model}):
            # the worker's and the webhook's spans continue this one, in their own processes
            traceparent = self.tracing.traceparent()
            if traceparent is not None:
                task = dataclasses.replace(task, traceparent=traceparent)
            return await self._create(task, key, base_url)

    async def _create(self, task: Task, key: ApiKey | None, base_url: str) -> tuple[Task, bool]:
        """Store the task: handed off to this process's worker when it has a free slot and no
        other task waits (no claim, no wake-up), else queued for whichever worker claims it."""
        model, fingerprint = task.model, task.request_hash
        amount = self._price(model, task.input) if key else 0
        submission = Submission(key.id if key else None, amount, base_url)
        worker = self.worker
        with worker.hand_off(task.id) if worker else contextlib.nullcontext() as lease:
            try:
                task = await self.store.create(task, submission, lease)
            except DuplicateTask as dup:
                if dup.existing.request_hash != fingerprint:
                    raise IdempotencyKeyReused() from None
                return dup.existing, False
            except OverLimit as exc:
                raise over_limit(exc, amount) from None
            self.metrics.submitted(task)
            if worker is not None and task.status == TaskStatus.RUNNING:
                await worker.take(task)
                return task, True
        self.notifier.task_queued()  # after the slot held above is free again
        return task, True

    def _price(self, model: str, params: dict[str, Any]) -> int:
        """What a submit reserves: the dearest route's price (nothing when only demo serves)."""
        spec = self.model(model)
        return self.pricing.reserve(spec, params, [r.kind for r in self.router.routes(spec)])

    async def get(self, tenant_id: str, task_id: str) -> Task:
        task = await self.store.get(task_id, tenant_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        return await self._delivered(task)

    async def estimate(self, task: Task) -> Estimate:
        """Where the task is and when it should be ready (`imagehub.estimates`)."""
        return await self.estimator.estimate(task)

    async def get_estimated(self, tenant_id: str, task_id: str) -> tuple[Task, Estimate]:
        """`get` and `estimate`, the task and its queue position read at once (not one after
        the other: on PostgreSQL each is a round trip)."""
        task, position = await asyncio.gather(
            self.get(tenant_id, task_id), self.estimator.position(task_id), return_exceptions=True
        )
        if isinstance(task, BaseException):  # NotFound: the position read is dropped unseen
            raise task
        if isinstance(position, BaseException):
            raise position
        return task, await self.estimator.estimate(task, position)

    async def _delivered(self, task: Task) -> Task:
        """A sync_mode task's images are returned by the first read that sees them, then purged."""
        if task.output is not None and task.output.images and task.input.get("sync_mode"):
            await self.store.purge_output(task.id)
        return task

    async def list_tasks(
        self,
        tenant_id: str,
        *,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        try:
            state = TaskStatus(status) if status is not None else None
        except ValueError:
            raise InvalidInput.one(
                ["query", "status"], f"must be one of {', '.join(TaskStatus)}", "enum"
            ) from None
        try:
            page = await self.store.list_tasks(
                tenant_id, model=model, status=state, limit=limit, cursor=cursor
            )
        except ValueError:  # well-formed (the route checks its alphabet), names no page
            raise NotFound("no page at this cursor") from None
        # history never carries sync_mode images
        tasks = [
            t.replace(output=t.output.purge()) if t.output and t.input.get("sync_mode") else t
            for t in page.tasks
        ]
        return Page(tasks, page.next_cursor)

    async def cancel(self, tenant_id: str, task_id: str) -> Task:
        before = await self.store.get(task_id, tenant_id)
        if before is None:
            raise NotFound(f"no task {task_id!r}")
        if before.ready:
            raise AlreadyFinished(_finished(task_id, before.status))
        task = await self.store.cancel(task_id, tenant_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        if task.status != TaskStatus.CANCELED:
            raise AlreadyFinished(_finished(task_id, task.status))
        if self.worker is not None:
            self.worker.abandon(task_id)
        self.notifier.task_finished(task)  # its watchers, metrics and webhook
        return task

    async def wait(
        self,
        tenant_id: str,
        task_id: str,
        seconds: float,
        *,
        known: Task | None = None,
        base64: dict[str, imaging.Base64] | None = None,
    ) -> Task:
        """The task once ready, or as it is after `seconds`.

        `known` is the task as just stored or read (a submit's), with no await since: the wait
        starts from it instead of reading it again. `base64`, when given, receives the
        upstream's own base64 of the task's files when it finished in this process during the
        wait (see `file_base64`).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(seconds, 0.0), MAX_WAIT_SECONDS)
        task = known if known is not None and known.tenant_id == tenant_id else None
        while True:
            # only a change to ready ends the wait: no re-read when a worker starts the task
            with self.notifier.watch(task_id, ready_only=True) as changed:
                if task is None:
                    task = await self.store.get(task_id, tenant_id)
                    if task is None:
                        raise NotFound(f"no task {task_id!r}")
                remaining = deadline - loop.time()
                if not task.ready and remaining > 0:
                    # the poll covers changes made by other processes
                    await _woken(changed, min(remaining, self.settings.poll_seconds))
                    # finished in this process: the wake-up carries the task; else read it
                    task = changed.task
                if base64 is not None:  # also when it finished here while it was read
                    base64.update(changed.base64)
                if task is not None and (task.ready or remaining <= 0):
                    return await self._delivered(task)

    async def events(self, tenant_id: str, task_id: str) -> AsyncIterator[Task | Progress]:
        """The task on every change (a partial image stored included), ending with the ready
        one; while it is queued or running, its progress every `progress_seconds` (never going
        backwards)."""
        loop = asyncio.get_running_loop()
        every = self.settings.progress_seconds
        last: tuple[TaskStatus, int, tuple[str, ...]] | None = None
        next_progress = loop.time() + every
        furthest = 0.0
        task: Task | None = None
        while True:
            with self.notifier.watch(task_id) as changed:
                if task is None:
                    task = await self.store.get(task_id, tenant_id)
                    if task is None:
                        raise NotFound(f"no task {task_id!r}")
                # the partial images by file: a new attempt's may be as many as the last one's
                seen = (task.status, task.attempts, tuple(p.file_id for p in task.partials))
                if seen != last:
                    last = seen
                    yield await self._delivered(task) if task.ready else task
                if task.ready:
                    return
                if loop.time() >= next_progress:
                    next_progress = loop.time() + every
                    estimate = await self.estimate(task)
                    furthest = max(furthest, estimate.progress or 0.0)
                    elapsed = (utcnow() - task.created_at).total_seconds()
                    yield Progress(task, replace(estimate, progress=furthest), round(elapsed, 1))
                pause = min(self.settings.poll_seconds, max(next_progress - loop.time(), 0.0))
                await _woken(changed, pause)
                task = changed.task

    # -- files

    async def upload(self, data: bytes) -> str:
        """Store an input image after checking it is one; return its file id."""
        if len(data) > self.settings.max_input_image_bytes:
            raise InvalidInput.one(
                ["body"], f"must be at most {self.settings.max_input_image_bytes:,} bytes", "size"
            )
        try:
            measured = imaging.header(data)
            stored, ctype = await self.work.run(
                imaging.checked_upload,
                data,
                self.settings.max_input_pixels,
                pixels=measured[0] * measured[1] if measured else 0,
            )
        except InvalidInputImage as exc:
            raise InvalidInput.one(["body"], exc.message, "image") from None
        return await self.media.put(stored, ctype)

    async def file(self, file_id: str) -> bytes:
        data = await self.media.get(file_id)
        if data is None:
            raise NotFound("no such file")
        return data

    async def file_base64(
        self, file_id: str, base64: Mapping[str, imaging.Base64]
    ) -> bytes | memoryview:
        """A stored image as base64: the upstream's own (from `wait`) when at hand, rather than
        the file read back and encoded (megabytes: ~7 ms of CPU for a 4K PNG)."""
        known = base64.get(file_id)
        if known is not None:
            return imaging.base64_bytes(known)
        return imaging.b64_bytes(await self.file(file_id))

    async def preview(self, file_id: str, width: int) -> bytes:
        """A stored image resized to `width` pixels (a WebP), for lists of thumbnails."""
        data = await self.previews.get(file_id, width)
        if data is None:
            raise NotFound("no such file")
        return data

    async def file_location(self, file_id: str) -> str | None:
        """Where a download is redirected to (`media_serving=redirect`), else None: serve it."""
        if self.settings.media_serving != "redirect" or not isinstance(self.media, Presigning):
            return None
        url = await self.media.presigned_url(file_id)
        if url is None:
            raise NotFound("no such file")
        return url

    # -- webhooks

    async def deliveries(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        """The tenant's webhook deliveries, newest first, and the cursor of the next page."""
        try:
            return await self.store.list_deliveries(tenant_id, limit=limit, cursor=cursor)
        except (ValueError, UnicodeDecodeError):  # well-formed (the query's pattern), names no page
            raise NotFound("no page at this cursor") from None

    async def delivery(self, tenant_id: str, task_id: str) -> Delivery:
        """A task's webhook delivery (NotFound when the task has no webhook_url)."""
        found = await self.store.get_delivery(task_id, tenant_id)
        if found is None:
            raise NotFound(f"no webhook for task {task_id!r}")
        return found

    # -- operations

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition of this process's metrics, and of the queue's."""
        await self.metrics.refresh(self.store)
        return self.metrics.render()

    async def ready(self) -> dict[str, bool | None]:
        """What /readyz reports: the store answers and can write, the worker runs (`worker` is
        None in a process that runs none: `--no-worker`)."""
        try:
            await asyncio.wait_for(self.store.ping(), 2.0)
            store_ok = await self._folders_writable()
        except Exception:
            store_ok = False
        if self.worker is None:
            return {"store": store_ok, "worker": None}
        worker_ok = self._worker_runner is not None and not self._worker_runner.done()
        return {"store": store_ok, "worker": worker_ok}

    async def _folders_writable(self) -> bool:
        """Whether the SQLite database's and the media's folders take a write (a full disk
        answers reads but no writes)."""
        folders = set()
        if self.settings.store_url.startswith("sqlite:///"):
            folders.add(Path(self.settings.store_url.removeprefix("sqlite:///")).parent)
        if isinstance(self.media, LocalMedia):
            folders.add(self.media.root)
        try:
            for folder in folders:
                await asyncio.wait_for(asyncio.to_thread(_probe_write, folder), 2.0)
        except (OSError, TimeoutError):
            return False
        return True


async def _woken(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set, or `seconds` pass (`asyncio.timeout`: no task per wait)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def _probe_write(folder: Path) -> None:
    """Write, sync and remove a small file: what a task's write needs, in little."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".ready-", dir=folder)
    try:
        os.write(fd, bytes(_PROBE_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)


#: a probe as large as a small write of SQLite's journal
_PROBE_BYTES = 64 * 1024


def _finished(task_id: str, status: TaskStatus) -> str:
    """Why a finished task cannot be canceled: "has already succeeded", "was already canceled"."""
    verb = "was" if status == TaskStatus.CANCELED else "has"
    return f"task {task_id} {verb} already {status}; only a queued or running task can be canceled"


def _fingerprint(
    model: str,
    input: dict[str, Any],
    metadata: dict[str, Any] | None,
    webhook_url: str | None,
    partial_images: int = 0,
) -> str:
    fields: list[Any] = [model, input, metadata, webhook_url]
    if partial_images:  # absent when 0: the fingerprints of earlier submits stay the same
        fields.append(partial_images)
    body = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _check_partial_images(count: int, params: dict[str, Any]) -> None:
    """`partial_images` is 0 to 3, for one image that is stored (not a sync_mode one)."""
    if not 0 <= count <= MAX_PARTIAL_IMAGES:
        raise InvalidInput.one(
            ["partial_images"], f"must be between 0 and {MAX_PARTIAL_IMAGES}", "range"
        )
    if not count:
        return
    if int(params.get("num_images", 1)) != 1:
        raise InvalidInput.one(
            ["partial_images"],
            "needs num_images 1: the upstream's stream does not say which image a partial is of",
            "unsupported",
        )
    if params.get("sync_mode"):
        raise InvalidInput.one(
            ["partial_images"],
            "cannot be combined with sync_mode: partial images are stored files; it keeps none",
            "unsupported",
        )
