"""The worker: claim → run the provider → store the media → finish, with leases and retries."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from imagehub import imaging, logs
from imagehub.catalog import Catalog, ModelSpec
from imagehub.errors import (
    InternalError,
    InvalidInputImage,
    StorageFault,
    TaskError,
    UpstreamConfigError,
    is_storage_fault,
)
from imagehub.estimates import shape_of
from imagehub.imagework import ImageWork
from imagehub.media import MediaStore
from imagehub.metrics import Metrics
from imagehub.outbound.fetch import Fetcher
from imagehub.providers import GeneratedImage, GenerationRequest, GenerationResult, InputImage
from imagehub.routing.policy import FailurePolicy
from imagehub.routing.router import Route, Router
from imagehub.settings import Settings
from imagehub.store import Lease, TaskStore
from imagehub.tasks import (
    SUCCEEDED,
    Attempt,
    OutputImage,
    PartialImage,
    Task,
    TaskFailure,
    TaskOutput,
    TaskStatus,
    Usage,
    new_id,
    utcnow,
)
from imagehub.tenancy.pricing import Pricing, Tokens
from imagehub.tracing import NO_SPAN, TASK_ID, Span, Tracing
from imagehub.wakeups.notifier import Notifier

log = logging.getLogger("imagehub.worker")
T = TypeVar("T")
#: the name of a task's runner (an asyncio task) before the task's id
_RUN = "imagehub-run-"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced, before it is written."""

    output: TaskOutput
    provider: str
    usage: Usage
    warnings: tuple[str, ...]
    #: the partial images the upstream streamed on the way (`partial_images`)
    partials: tuple[PartialImage, ...] = ()
    #: the upstream's own base64 of the stored files, by file id, for a waiter in this process
    base64: Mapping[str, imaging.Base64] = dataclasses.field(default_factory=dict)


class Worker:
    """Runs queued tasks, up to `concurrency` at once, in this process."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: TaskStore,
        media: MediaStore,
        router: Router,
        catalog: Catalog,
        notifier: Notifier,
        fetcher: Fetcher,
        pricing: Pricing,
        work: ImageWork,
        tracing: Tracing | None = None,
        metrics: Metrics | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.media = media
        self.router = router
        self.catalog = catalog
        self.notifier = notifier
        self.fetcher = fetcher
        self.pricing = pricing
        self.tracing = tracing or Tracing()
        self.metrics = metrics
        self.policy = FailurePolicy.from_settings(settings)
        self.owner = new_id("wrk_")
        #: tasks run at once (`worker_concurrency` unless told)
        self.concurrency = concurrency or settings.worker_concurrency
        self._running: dict[str, asyncio.Task[None]] = {}
        #: tasks this process is submitting with a slot held here (`hand_off`)
        self._handing: set[str] = set()
        #: slots the claim under way asked for
        self._asked = 0
        #: the context runs start in (`run`'s): a handed-off task's must not be its submit's
        #: request (its log ids, its current span)
        self._context = contextvars.copy_context()
        #: `run` runs: its heartbeat keeps the leases of hand-offs alive
        self._live = False
        #: outcomes (and their journal rows) a store outage kept from being written; the
        #: heartbeat writes them later
        self._unwritten: dict[str, tuple[Task, list[Attempt]]] = {}
        #: a claim and its runners' start, or a heartbeat and its look at what runs, at once
        self._claiming = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="imagehub-media")
        #: decodes and transcodes: in worker processes, within a budget of pixels in flight
        self.work = work

    # -- loops

    async def run(self) -> None:
        """Run until `stop()`; then let running tasks finish for the grace period."""
        self._context = contextvars.copy_context()
        self._live = True
        loops = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._reaper_loop()),
        ]
        try:
            await self._dispatch_loop()
        finally:
            await self._drain()
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self._pool.shutdown(wait=False)

    def stop(self) -> None:
        self._stopping.set()
        self.notifier.nudge()  # wake the dispatch loop

    def abort(self) -> None:
        """Stop now: cancel every running attempt; `run()` then hands their leases back."""
        self.stop()
        for runner in list(self._running.values()):
            runner.cancel()

    def abandon(self, task_id: str) -> None:
        """Stop working on a task that was canceled (its outcome would be dropped anyway)."""
        runner = self._running.get(task_id)
        if runner is not None:
            runner.cancel()

    @property
    def grace_seconds(self) -> float:
        """How long running tasks get to finish after `stop()`."""
        return self.settings.shutdown_grace_seconds

    @property
    def running(self) -> int:
        return len(self._running)

    def has_room(self) -> bool:
        """Whether this worker's dispatch loop takes a task queued now (it is woken in process)."""
        return not self._stopping.is_set() and self._busy() < self.concurrency

    def _busy(self) -> int:
        """Slots taken: running tasks, those held for hand-offs, and a claim's under way."""
        return len(self._running) + len(self._handing) + self._asked

    @contextlib.contextmanager
    def hand_off(self, task_id: str) -> Iterator[Lease | None]:
        """A slot held for a task this process is submitting, and the lease its create writes
        to store it running here (`TaskStore.create`); None when this worker is full or not
        running (not yet started, or stopping): the task is queued.

        Pass the stored task to `take` inside the block; the slot is freed when it ends.
        """
        if not (self._live and self.has_room()):
            yield None
            return
        self._handing.add(task_id)
        try:
            yield Lease(self.owner, self.settings.lease_seconds)
        finally:
            if task_id in self._handing:  # not taken: the slot is free again
                self._handing.discard(task_id)
                self._slot_freed.set()

    async def take(self, task: Task) -> None:
        """Run a task its submit stored leased here (`hand_off`): no claim, no wake-up."""
        self._handing.discard(task.id)
        if self._stopping.is_set():  # stopped while it was stored: back to the queue
            with contextlib.suppress(Exception):  # else its lease expires and it is reaped
                await self._give_back(task)
            return
        self._start(task, self._context.copy())

    async def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            claimed: list[Task] = []
            async with self._claiming:
                free = self.concurrency - self._busy()
                if free > 0:
                    # the slots a claim asks for are taken until it answers: no hand-off
                    # fills them meanwhile
                    self._asked = free
                    try:
                        claimed = await self.store.claim(
                            self.owner, free, self.settings.lease_seconds
                        )
                    except Exception:
                        log.exception("claim failed; retrying")
                    finally:
                        self._asked = 0
                    for task in claimed:
                        self._start(task)
            if free <= 0 or len(claimed) == free:
                # every slot taken: the next claim waits for one to free, and finds what was
                # queued meanwhile (a task queued while this worker was full is hinted, and
                # that hint may have woken this loop already)
                await self._wait_for_slot()
            else:  # fewer than asked: nothing else is due, a claim now would find nothing
                await self.notifier.wait_queued(self._poll_delay())

    async def _wait_for_slot(self) -> None:
        self._slot_freed.clear()
        if self._busy() >= self.concurrency:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), self._poll_delay())

    def _poll_delay(self) -> float:
        return self.settings.poll_seconds * random.uniform(0.8, 1.2)

    def _start(self, task: Task, context: contextvars.Context | None = None) -> None:
        self.notifier.task_changed(task.id, ready=False)  # queued -> running
        # the task's id on every log line of its run: set once in the runner's own context,
        # not by a block that every running task would hold
        context = context or contextvars.copy_context()
        context.run(logs.task_id.set, task.id)
        runner = asyncio.create_task(self._run(task), name=_RUN + task.id, context=context)
        self._running[task.id] = runner
        # a bound method, not a closure over the id: the runner's name holds it
        runner.add_done_callback(self._done)

    def _done(self, runner: asyncio.Task[None]) -> None:
        # a claim waits for this only if the dispatch loop found every slot taken: a freed slot
        # wakes nothing else (at full concurrency, a claim per finished task would hold the
        # slot a hand-off is about to need, and find nothing)
        self._running.pop(runner.get_name().removeprefix(_RUN), None)
        self._slot_freed.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            try:
                async with self._claiming:
                    # a hand-off stored while the heartbeat ran may be missing from `held`
                    before = set(self._running)
                    held = await self.store.heartbeat(self.owner, self.settings.lease_seconds)
                    strays = held - self._running.keys() - self._unwritten.keys() - self._handing
            except Exception:
                log.exception("heartbeat failed")
                continue
            # a task no longer held was canceled or taken over: abandon its upstream call
            for task_id, runner in list(self._running.items()):
                if task_id in before and task_id not in held:
                    runner.cancel()
            await self._write_unwritten(held)
            await self._hand_back(strays)

    async def _write_unwritten(self, held: set[str]) -> None:
        """Write the outcomes an outage held back, still fenced by their lease token."""
        for task_id, (task, calls) in list(self._unwritten.items()):
            written = False
            if task_id in held:
                try:
                    written = await self.store.finish(task, calls)
                except Exception:
                    return  # still unreachable: the next heartbeat tries again
            del self._unwritten[task_id]
            self._written(task, written)

    async def _hand_back(self, strays: set[str]) -> None:
        """Requeue tasks leased to this worker that it does not run.

        A claim whose answer a connection failure lost leaves such tasks; the heartbeat would
        renew their leases forever.
        """
        for task_id in strays:
            with contextlib.suppress(Exception):
                task = await self.store.get(task_id)
                if task and task.lease_owner == self.owner and task.status == TaskStatus.RUNNING:
                    await self._give_back(task)

    async def _give_back(self, task: Task) -> None:
        """Requeue a task leased here that this worker will not run (fenced by its lease)."""
        if await self.store.finish(task.replace(status=TaskStatus.QUEUED, run_after=utcnow())):
            log.warning("task %s was leased here but not run; handed back", task.id)
            self.notifier.task_queued()

    async def _reaper_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 2 * random.uniform(0.8, 1.2))
            await self.reap()

    async def reap(self) -> None:
        try:
            reaped = await self.store.reap()
        except Exception:
            log.exception("reaper failed")
            return
        for task in reaped:
            log.warning("task %s lost its worker; now %s", task.id, task.status)
            self.notifier.task_changed(task.id)
        if reaped:
            self.notifier.task_queued()

    async def _drain(self) -> None:
        if self._running:
            await asyncio.wait(
                list(self._running.values()), timeout=self.settings.shutdown_grace_seconds
            )
        for runner in list(self._running.values()):
            runner.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        await self._write_unwritten(set(self._unwritten))
        with contextlib.suppress(Exception):
            handed_back = await self.store.release(self.owner)
            if handed_back:
                log.info("handed %d running tasks back to the queue", handed_back)
                self.notifier.task_queued()

    # -- one attempt

    async def _run(self, task: Task) -> None:
        """One attempt, in the task's trace (its submit's); its id on every log line (`_start`)."""
        parent = task.traceparent
        # the wait since the task became due: beside the attempt in the submit's trace (or
        # inside the attempt, for a task submitted while tracing was off)
        waited = max(task.created_at, task.run_after)
        # the attributes passed, not kept in a local: this frame lasts as long as the attempt
        with self.tracing.span(
            "imagehub.attempt",
            {TASK_ID: task.id, "imagehub.model": task.model, "imagehub.attempt": task.attempts},
            parent=parent,
        ) as span:
            with self.tracing.span(
                "imagehub.queue_wait", {TASK_ID: task.id}, parent=parent, start=waited
            ):
                pass
            # the attempt's handling here, not in a coroutine of its own: every task in flight
            # holds this frame
            calls: list[Attempt] = []
            try:
                outcome = await self.attempt(task, calls)
            except asyncio.CancelledError:
                span.fail("canceled")
                return
            except TaskError as exc:
                span.fail(exc.code)
                await self._finish(self._failed(task, exc), calls)
            except Exception as exc:
                if is_storage_fault(exc):
                    span.fail(StorageFault.code)
                    log.warning("task %s: storage fault (%s); back to the queue", task.id, exc)
                    await self._finish(self._failed(task, StorageFault()), calls)
                    return
                span.fail(InternalError.code)
                log.exception("task %s failed inside the hub", task.id)
                error = InternalError(
                    f"The hub failed while running the task ({type(exc).__name__})."
                )
                await self._finish(self._failed(task, error), calls)
            else:
                await self._finish(
                    task.replace(
                        status=TaskStatus.SUCCEEDED,
                        output=outcome.output,
                        provider=outcome.provider,
                        usage=outcome.usage,
                        warnings=task.warnings + outcome.warnings,
                        error=None,
                        finished_at=utcnow(),
                        partials=outcome.partials,
                    ),
                    calls,
                    outcome.base64,
                )

    async def attempt(self, task: Task, calls: list[Attempt] | None = None) -> Outcome:
        """Run one attempt of a claimed task: inputs, provider, media.

        Each route call is appended to `calls` as it ends: the journal rows `finish` writes.
        """
        model = self.catalog.get(task.model)
        if model is None:
            raise InternalError(f"model {task.model!r} is no longer in the catalog")
        # only routes that honour every parameter (the routes may have changed since submit)
        routes = self.router.routes(model, task.input, partial_images=task.partial_images)
        if not routes:
            raise UpstreamConfigError(
                f"no upstream route serves {model.id} with this input on this hub, and the demo "
                "provider is off"
            )
        images, mask = await self._inputs(task)
        partials = Partials(self, task)
        # failover between the routes, in the failure policy's order
        calling = _RouteCalls(self, task, model, images, mask, partials, calls)
        try:
            route, result = await self.policy.run(routes, calling.generate, calling.observe)
        except BaseException:
            await partials.restart()  # a failed attempt leaves no partial images behind
            raise
        outcome = await self._store_output(task, model, route, result)
        return dataclasses.replace(outcome, partials=partials.kept) if partials.kept else outcome

    def _upstream_span(self, task: Task, route: Route) -> AbstractContextManager[Span]:
        if not self.tracing.enabled:
            return NO_SPAN
        attributes: dict[str, str | int] = {
            TASK_ID: task.id,
            "imagehub.model": task.model,
            "imagehub.route": route.name,
            "imagehub.provider": route.kind or "none",
            "imagehub.upstream_model": route.upstream_model,
        }
        if self.settings.trace_prompts and isinstance(task.input.get("prompt"), str):
            attributes["imagehub.prompt"] = task.input["prompt"]
        return self.tracing.span("imagehub.upstream", attributes, kind="client")

    async def _inputs(self, task: Task) -> tuple[tuple[InputImage, ...], InputImage | None]:
        if "image_urls" not in task.input and "mask_url" not in task.input:
            return (), None
        refs: list[str] = list(task.input.get("image_urls", ()))
        labels = [f"image_urls[{i}]" for i in range(len(refs))]
        if "mask_url" in task.input:
            refs.append(task.input["mask_url"])
            labels.append("mask_url")
        # an image named several times is fetched and decoded once
        first: dict[str, str] = {}
        for ref, label in zip(refs, labels, strict=True):
            first.setdefault(ref, label)
        fetched = await asyncio.gather(*(self.fetcher.fetch(r, lbl) for r, lbl in first.items()))
        # header reads only, all in one trip off the loop
        sizes = await self._cpu(lambda: [imaging.pixels(data) for data in fetched])
        if sum(sizes) > self.settings.max_task_input_pixels:
            raise InvalidInputImage(
                f"the input images decode to {sum(sizes):,} pixels together; "
                f"the limit is {self.settings.max_task_input_pixels:,}"
            )
        decoded = await asyncio.gather(
            *(
                self._decode(data, label, size)
                for label, data, size in zip(first.values(), fetched, sizes, strict=True)
            )
        )
        by_ref = dict(zip(first, decoded, strict=True))
        images = tuple(by_ref[ref] for ref in refs)
        if "mask_url" in task.input:
            return images[:-1], images[-1]
        return images, None

    async def _decode(self, data: bytes, label: str, pixels: int) -> InputImage:
        return await self.work.run(
            imaging.read_input,
            data,
            pixels=pixels,
            max_bytes=self.settings.max_input_image_bytes,
            max_pixels=self.settings.max_input_pixels,
            label=label,
        )

    async def _store_output(
        self, task: Task, model: ModelSpec, route: Route, result: GenerationResult
    ) -> Outcome:
        fmt = task.input.get("output_format", "png")
        sync = bool(task.input.get("sync_mode"))
        # kept only for a waiter here: the upstream's answer is held until it is sent on
        waited = not sync and self.notifier.watched(task.id)
        base64: dict[str, imaging.Base64] = {}
        images = []
        for i, generated in enumerate(result.images):
            # already in the format asked for: kept as the upstream sent it, never re-encoded
            quick = _measured_as(generated.data, fmt)
            if quick is None:  # a re-encode, in a worker process
                pixels = imaging.header(generated.data)
                data, (width, height, ctype) = await self.work.run(
                    imaging.transcoded,
                    generated.data,
                    fmt,
                    pixels=pixels[0] * pixels[1] if pixels else 0,
                )
            else:
                data, (width, height, ctype) = generated.data, quick
            name = f"{task.id}-{i}.{imaging.EXTENSIONS[ctype]}"
            if sync:
                uri = await self._data_uri(ctype, data, generated)
                image = OutputImage(ctype, name, len(data), width, height, data_uri=uri)
            else:
                with self.tracing.span(
                    "imagehub.media_write",
                    {TASK_ID: task.id, "imagehub.bytes": len(data), "imagehub.content_type": ctype},
                ):
                    file_id = await self.media.put(data, ctype)
                if waited and generated.base64 is not None and data is generated.data:
                    base64[file_id] = generated.base64
                image = OutputImage(ctype, name, len(data), width, height, file_id=file_id)
            images.append(image)
        cost = self.pricing.settle(
            route.kind, model, task.input, images=len(images), tokens=_tokens(result)
        )
        usage = Usage(cost.usd, result.input_tokens, result.output_tokens, cost.basis)
        output = TaskOutput(
            images=tuple(images), description=result.description, grounding=result.grounding
        )
        return Outcome(output, route.name, usage, result.warnings, base64=base64)

    async def _data_uri(self, ctype: str, data: bytes, generated: imaging.GeneratedImage) -> str:
        """The image as a `data:` URI: the upstream's own base64 when `data` is what it sent."""
        payload = generated.base64
        if payload is not None and data is generated.data:
            text = payload if isinstance(payload, str) else str(payload, "ascii")
            return f"data:{ctype};base64,{text}"
        return await self._cpu(imaging.data_uri, ctype, data)

    async def _cpu(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def _failed(self, task: Task, exc: TaskError) -> Task:
        delay: float | None
        if isinstance(exc, StorageFault):
            # the hub's own storage, not the task, failed: queued again however many attempts
            # it made, until the storage recovers
            delay = self.policy.storage_delay(task.attempts)
        else:
            delay = self.policy.delay(task.attempts, task.max_attempts, exc)
        if delay is not None:
            return task.replace(
                status=TaskStatus.QUEUED,
                error=TaskFailure.of(exc),
                run_after=utcnow() + timedelta(seconds=delay),
            )
        final = self.policy.final(task.attempts, exc)
        return task.replace(
            status=TaskStatus.FAILED,
            error=TaskFailure.of(final),
            provider=final.route or task.provider,  # the route of the last attempt, if one ran
            finished_at=utcnow(),
        )

    async def _finish(
        self,
        task: Task,
        calls: list[Attempt] | None = None,
        base64: Mapping[str, imaging.Base64] | None = None,
    ) -> None:
        calls = calls or []
        written = await self._write_outcome(task, calls)
        if written is None:  # written later: a waiter then reads the files
            self._unwritten[task.id] = (task, calls)
            return
        self._written(task, written, base64)

    def _written(
        self, task: Task, written: bool, base64: Mapping[str, imaging.Base64] | None = None
    ) -> None:
        if not written:
            log.info("task %s: lease lost before finishing; outcome dropped", task.id)
            return
        log.info(
            "task %s: %s after attempt %d (%s)",
            task.id,
            task.status.value,
            task.attempts,
            task.provider or (task.error.code if task.error else "-"),
        )
        if task.status == TaskStatus.QUEUED:
            self.notifier.task_changed(task.id)
            self.notifier.task_queued()
        else:  # metrics, webhooks and waiters take it from the notifier, as it is now stored
            stored = task.replace(lease_owner=None, lease_expires_at=None)
            self.notifier.task_finished(stored, base64 or {})

    async def _write_outcome(self, task: Task, calls: list[Attempt]) -> bool | None:
        """`store.finish`, retried through a short store outage (the token keeps it safe).

        None when the store stayed unreachable for a while: the heartbeat, which keeps the lease
        alive, writes it once the store answers again.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self.settings.lease_seconds / 3, 5.0)
        delay = 0.1
        while True:
            try:
                return await self.store.finish(task, calls)
            except Exception:
                if loop.time() + delay > deadline:
                    log.warning("could not write the outcome of task %s; will retry", task.id)
                    return None
                log.warning("could not write the outcome of task %s yet; retrying", task.id)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 2.0)


class _RouteCalls:
    """One attempt's calls of its routes, for the failure policy to make and report: an object
    with slots rather than two closures and their cells, as every task in flight holds one."""

    __slots__ = ("calls", "images", "mask", "model", "partials", "task", "worker")

    def __init__(
        self,
        worker: Worker,
        task: Task,
        model: ModelSpec,
        images: tuple[InputImage, ...],
        mask: InputImage | None,
        partials: Partials,
        calls: list[Attempt] | None,
    ) -> None:
        self.worker = worker
        self.task = task
        self.model = model
        self.images = images
        self.mask = mask
        self.partials = partials
        self.calls = calls

    async def generate(self, route: Route) -> GenerationResult:
        worker, task = self.worker, self.task
        await self.partials.restart()  # a route taking over draws its partial images anew
        request = GenerationRequest(
            model=self.model,
            params=task.input,
            images=self.images,
            mask=self.mask,
            upstream_model=route.upstream_model,
            fetcher=worker.fetcher,
            work=worker.work,
            partial_images=task.partial_images,
            on_partial=self.partials.keep if task.partial_images else None,
        )
        with logs.about(route=route.name), worker._upstream_span(task, route) as span:
            try:
                result = await route.provider.generate(request)
            except TaskError as exc:
                span.set("imagehub.status_class", exc.code)
                span.fail(exc.code)
                raise
            span.set("imagehub.status_class", "ok")
            span.set("imagehub.bytes", sum(len(image.data) for image in result.images))
            return result

    def observe(self, route: Route, started: datetime, error: BaseException | None) -> None:
        row = _call(self.task, route, started, error)
        if self.calls is not None:
            self.calls.append(row)
        if self.worker.metrics is not None:
            self.worker.metrics.upstream(
                route=route.name,
                provider=route.kind or "none",
                model=self.model.id,
                outcome="ok" if row.succeeded else row.outcome,
                seconds=row.seconds,
            )


class Partials:
    """One attempt's partial images (`partial_images`): each stored as a file, then recorded on the
    task (fenced by its lease) so that every process's event streams can announce it."""

    __slots__ = ("kept", "task", "worker")

    def __init__(self, worker: Worker, task: Task) -> None:
        self.worker = worker
        self.task = task
        self.kept: tuple[PartialImage, ...] = ()

    async def keep(self, index: int, image: GeneratedImage) -> None:
        worker = self.worker
        width, height, ctype = await worker._cpu(imaging.measure, image.data)
        file_id = await worker.media.put(image.data, ctype)
        if index < 0:  # the upstream did not number it
            index = len(self.kept)
        self.kept += (PartialImage(index, file_id, ctype, width, height),)
        await self._record()

    async def restart(self) -> None:
        """Forget (and delete) the partial images kept so far."""
        if not self.kept:
            return
        dropped, self.kept = self.kept, ()
        await self._record()
        for partial in dropped:
            with contextlib.suppress(Exception):
                await self.worker.media.delete(partial.file_id)

    async def _record(self) -> None:
        # a partial image is a courtesy: a store hiccup here must not fail the image being drawn
        try:
            written = await self.worker.store.set_partials(self.task.replace(partials=self.kept))
        except Exception as exc:
            log.warning("task %s: could not record a partial image (%s)", self.task.id, exc)
            return
        if written:
            self.worker.notifier.task_changed(self.task.id, ready=False)


def _call(task: Task, route: Route, started: datetime, error: BaseException | None) -> Attempt:
    """The journal row of one route call of a task's current attempt."""
    if error is None:
        outcome, message = SUCCEEDED, ""
    elif isinstance(error, TaskError):
        outcome, message = error.code, error.message
    else:
        outcome, message = InternalError.code, type(error).__name__
    return Attempt(
        task_id=task.id,
        tenant_id=task.tenant_id,
        number=task.attempts,
        model=task.model,
        route=route.name,
        provider=route.kind or route.name,
        started_at=started,
        finished_at=utcnow(),
        outcome=outcome,
        message=message,
        shape=shape_of(task.input),
    )


def _tokens(result: GenerationResult) -> Tokens | None:
    if result.input_tokens is None or result.output_tokens is None:
        return None
    return Tokens(
        result.input_tokens,
        result.output_tokens,
        result.input_image_tokens,
        result.output_text_tokens,
    )


def _measured_as(data: bytes, fmt: str) -> tuple[int, int, str] | None:
    """Width, height, type of an image already in `fmt`, else None: a header read only, on the
    loop (microseconds), with no decode.

    Such an image is what `transcode` returns unchanged: it is stored as the upstream sent it.
    """
    measured = imaging.header(data)
    return measured if measured and measured[2] == imaging.CONTENT_TYPES.get(fmt) else None
