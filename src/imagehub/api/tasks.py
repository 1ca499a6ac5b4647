"""Task routes: submit, get, list, cancel, events."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter

from imagehub.api.deps import (
    AccountsDep,
    BaseUrlDep,
    CallerDep,
    CursorQuery,
    HubDep,
    bearer,
    get_base_url,
    get_caller,
)
from imagehub.api.errors import answer_error, body_schema, parse_body
from imagehub.api.hot import HotRoute, checked, model_response, sub_response
from imagehub.api.responses import json_bytes
from imagehub.estimates import Progress
from imagehub.hub import Hub
from imagehub.render import partial_out, progress_out, task_out
from imagehub.schemas import (
    ErrorBody,
    PartialImageOut,
    TaskCreate,
    TaskList,
    TaskOut,
    TaskProgressOut,
)
from imagehub.schemas.tasks import TaskStatusName
from imagehub.tasks import Task
from imagehub.tenancy.types import ApiKey

endpoints = APIRouter(prefix="/hub/v1/tasks", tags=["tasks"])

_PREFER_WAIT = re.compile(r"\bwait\s*=\s*(\d+(?:\.\d+)?)")
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 422, 429, 503)
}

WaitQuery = Annotated[
    float, Query(ge=0, le=60, description="Long-poll: hold the answer up to this many seconds.")
]
IdempotencyKey = Annotated[str | None, Header(max_length=255)]


@endpoints.post(
    "",
    status_code=202,
    response_model=TaskOut,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body_schema(TaskCreate)}},
        }
    },
)
async def submit_task(
    request: Request,
    response: Response,
    hub: HubDep,
    accounts: AccountsDep,
    caller: CallerDep,
    base_url: BaseUrlDep,
    prefer: Annotated[str | None, Header(description="wait=N (N <= 60) holds the answer")] = None,
    idempotency_key: IdempotencyKey = None,
) -> TaskOut:
    """Validate and queue a task; 202 with the task, or 200 when replayed or ready."""
    body = parse_body(await request.body(), TaskCreate)
    wait = _PREFER_WAIT.search(prefer or "")
    # a held submit takes a stream slot before anything is stored: a 429 leaves no task
    release = accounts.streams.open(caller.id) if wait else None
    try:
        task, created = await _submit(hub, caller, body, idempotency_key, base_url)
        if wait:
            # no await since the submit: the wait starts from the task it stored
            task = await hub.wait(caller.tenant_id, task.id, float(wait.group(1)), known=task)
    finally:
        if release is not None:
            release()
    response.status_code = 200 if task.ready or not created else 202
    response.headers["Location"] = f"/hub/v1/tasks/{task.id}"
    return task_out(task, base_url, await hub.estimate(task))


async def _submit(
    hub: Hub, caller: ApiKey, body: TaskCreate, idempotency_key: str | None, base_url: str
) -> tuple[Task, bool]:
    return await hub.submit(
        caller.tenant_id,
        body.model,
        body.input,
        metadata=body.metadata,
        webhook_url=body.webhook_url,
        idempotency_key=idempotency_key,
        key=caller,
        base_url=base_url,
        partial_images=body.partial_images,
    )


@endpoints.get("", response_model=TaskList, responses=_ERRORS)
async def list_tasks(
    hub: HubDep,
    caller: CallerDep,
    base_url: BaseUrlDep,
    model: str | None = None,
    status: TaskStatusName | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
) -> TaskList:
    """The caller's tasks, newest first."""
    page = await hub.list_tasks(
        caller.tenant_id, model=model, status=status, limit=limit, cursor=cursor
    )
    return TaskList(data=[task_out(t, base_url) for t in page.tasks], next_cursor=page.next_cursor)


@endpoints.get("/{task_id}", response_model=TaskOut, responses=_ERRORS)
async def get_task(
    task_id: str,
    hub: HubDep,
    accounts: AccountsDep,
    caller: CallerDep,
    base_url: BaseUrlDep,
    wait: WaitQuery = 0,
) -> TaskOut:
    """The task; poll until `ready` is true."""
    if wait > 0:
        release = accounts.streams.open(caller.id)
        try:
            task = await hub.wait(caller.tenant_id, task_id, wait)
        finally:
            release()
    else:
        task, estimate = await hub.get_estimated(caller.tenant_id, task_id)
        return task_out(task, base_url, estimate)
    return task_out(task, base_url, await hub.estimate(task))


@endpoints.post("/{task_id}/cancel", response_model=TaskOut, responses=_ERRORS)
async def cancel_task(
    task_id: str, hub: HubDep, caller: CallerDep, base_url: BaseUrlDep
) -> TaskOut:
    """Cancel a queued or running task."""
    return task_out(await hub.cancel(caller.tenant_id, task_id), base_url)


@endpoints.get(
    "/{task_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
    response_class=StreamingResponse,
)
async def task_events(
    task_id: str, hub: HubDep, accounts: AccountsDep, caller: CallerDep, base_url: BaseUrlDep
) -> StreamingResponse:
    """Server-sent events: the task on every change (`task`), ending after the ready one
    (`done`); while it is queued or running, a `progress` event every second or so; a
    `partial_image` event for each partial image stored (submits with `partial_images`)."""
    release = accounts.streams.open(caller.id)
    stream = hub.events(caller.tenant_id, task_id)
    try:
        first = await anext(stream)  # a 404 surfaces here, before the stream starts
    except BaseException:
        release()
        raise

    async def frames() -> AsyncIterator[str]:
        announced: set[str] = set()
        last: tuple[str, int] | None = None
        try:
            async for item in _prepend(first, stream):
                if isinstance(item, Progress):
                    yield _progress_frame(progress_out(item))
                    continue
                for partial in item.partials:  # before the task frame: a ready one ends it
                    if partial.file_id not in announced:
                        announced.add(partial.file_id)
                        yield _partial_frame(item, partial_out(partial, base_url))
                if (item.status, item.attempts) != last:  # not again for a partial image alone
                    last = (item.status, item.attempts)
                    yield _frame(task_out(item, base_url, await hub.estimate(item)))
        finally:  # the stream ended, or the client went away
            release()

    return StreamingResponse(
        frames(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


async def _prepend(
    first: Task | Progress, rest: AsyncIterator[Task | Progress]
) -> AsyncIterator[Task | Progress]:
    yield first
    async for item in rest:
        yield item


def _partial_frame(task: Task, partial: PartialImageOut) -> str:
    data = json_bytes({"task_id": task.id, **partial.model_dump()}, ascii_only=True).decode()
    frame_id = f"{task.status}-{task.attempts}-p{partial.index}"
    return f"event: partial_image\nid: {frame_id}\ndata: {data}\n\n"


def _progress_frame(progress: TaskProgressOut) -> str:
    data = json_bytes(progress.model_dump(), ascii_only=True).decode("ascii")
    return f"event: progress\ndata: {data}\n\n"


def _frame(task: TaskOut) -> str:
    event = "done" if task.ready else "task"
    data = json_bytes(task.model_dump(), ascii_only=True).decode("ascii")
    return f"event: {event}\nid: {task.status}-{task.attempts}\ndata: {data}\n\n"


# -- the hot routes (`imagehub.api.hot`): the endpoints above, their dependencies resolved here

_IDEMPOTENCY_KEY: TypeAdapter[str | None] = TypeAdapter(IdempotencyKey)
_WAIT: TypeAdapter[float] = TypeAdapter(WaitQuery)


async def _hot_submit(request: Request) -> Response:
    caller = await get_caller(request, await bearer(request))
    key = request.headers.get("idempotency-key")
    response = sub_response()
    task = await submit_task(
        request,
        response,
        request.state.hub,
        request.state.accounts,
        caller,
        await get_base_url(request),
        prefer=request.headers.get("prefer"),
        idempotency_key=checked(_IDEMPOTENCY_KEY, key, ("header", "idempotency-key")),
    )
    return model_response(task, response, 202)


async def _hot_get(request: Request) -> Response:
    caller = await get_caller(request, await bearer(request))
    wait = request.query_params.get("wait")
    task = await get_task(
        request.path_params["task_id"],
        request.state.hub,
        request.state.accounts,
        caller,
        await get_base_url(request),
        wait=0 if wait is None else checked(_WAIT, wait, ("query", "wait")),
    )
    return model_response(task, sub_response(), 200)


hot = (
    HotRoute("POST", "/hub/v1/tasks", _hot_submit, answer_error),
    HotRoute("GET", "/hub/v1/tasks/{task_id}", _hot_get, answer_error),
)
