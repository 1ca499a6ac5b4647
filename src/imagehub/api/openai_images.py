"""OpenAI-compatible image routes: `POST /v1/images/generations` and `POST /v1/images/edits`.

Code written for the OpenAI SDK works by changing its base URL to `<hub>/v1` and its key to a
hub key. Each request is an ordinary hub task (history, limits, restarts), held until ready.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from imagehub.api import openai_wire
from imagehub.api.deps import BaseUrlDep, CallerDep, HubDep, bearer, get_base_url, get_caller
from imagehub.api.errors import (
    body_schema,
    parse_body,
    retry_headers,
    storage_unavailable,
    validation_error,
)
from imagehub.api.hot import HotRoute, checked
from imagehub.api.responses import JSONBody
from imagehub.errors import (
    HubError,
    InvalidInput,
    PayloadTooLarge,
)
from imagehub.estimates import Progress
from imagehub.hub import Hub
from imagehub.imaging import Base64, b64_bytes
from imagehub.render import file_url
from imagehub.tasks import OutputImage, Task, TaskStatus
from imagehub.tenancy.types import ApiKey

log = logging.getLogger("imagehub.api")

#: each wait for the task is this long; between two, a client that left stops the wait
_WAIT_SLICE_SECONDS = 30.0
_MAX_INPUT_FILES = 17  # 16 images and a mask
#: a failed task is not worth an automatic retry: the hub already retried what was retryable
_NO_RETRY = {"x-should-retry": "false"}


class OpenAIEndpoint(APIRoute):
    """A route whose every error is answered in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return await openai_error(request, exc)

        return answer


async def openai_error(request: Request, exc: Exception) -> Response:
    """Any error of these routes, in OpenAI's error shape."""
    if isinstance(exc, HubError):
        return _error(exc)
    if isinstance(exc, RequestValidationError):  # a header or query FastAPI checked
        return _error(validation_error(exc))
    if isinstance(exc, HTTPException):  # a body over the size cap, a malformed form
        if exc.status_code == 413:
            return _error(PayloadTooLarge(str(exc.detail)))
        return _error(InvalidInput.one(["body"], str(exc.detail), "malformed"))
    if error := storage_unavailable(request, exc):
        return _error(error)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = openai_wire.error_body("The hub failed to answer.", "server_error", None)
    return JSONResponse(body, status_code=500)


endpoints = APIRouter(prefix="/v1/images", tags=["OpenAI-compatible"], route_class=OpenAIEndpoint)

IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]

_BINARY = {"type": "string", "format": "binary", "minLength": 1}


def _form_field(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON field as a multipart form field: a form has no null, a field is left out."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return options[0] if options else schema


_EDIT_FORM = {
    "type": "object",
    "properties": {
        "image[]": {"type": "array", "items": _BINARY, "minItems": 1},
        "mask": _BINARY,
        **{
            name: _form_field(field)
            for name, field in body_schema(openai_wire.ImagesRequest)["properties"].items()
        },
    },
    "required": ["image[]", "prompt"],
}
_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "OpenAI's ImagesResponse: `created`, `data[]`, `usage`"},
    **{
        code: {"description": "OpenAI's error shape: `{error: {message, type, param, code}}`"}
        for code in (400, 401, 404, 409, 413, 429, 503, 504)
    },
}


@endpoints.post(
    "/generations",
    responses=_ANSWER,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body_schema(openai_wire.ImagesRequest)}},
        }
    },
)
async def create_image(
    request: Request,
    hub: HubDep,
    caller: CallerDep,
    base_url: BaseUrlDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Generate images (OpenAI Images API); runs as a hub task and answers when it is ready."""
    body = parse_body(await request.body(), openai_wire.ImagesRequest)
    spec = openai_wire.resolve_model(hub.catalog, body.model, edit=False)
    params = openai_wire.to_input(hub.catalog, spec, body)
    return await _run(request, hub, caller, base_url, spec.id, params, body, idempotency_key)


@endpoints.post(
    "/edits",
    responses=_ANSWER,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _EDIT_FORM}},
        }
    },
)
async def create_image_edit(
    request: Request,
    hub: HubDep,
    caller: CallerDep,
    base_url: BaseUrlDep,
    idempotency_key: IdempotencyHeader = None,
) -> Response:
    """Edit images (OpenAI Images API, multipart `image[]` and `mask`), as a hub task."""
    fields, images, mask = await _read_form(request)
    body = openai_wire.validated(fields)
    spec = openai_wire.resolve_model(hub.catalog, body.model, edit=True)
    params = openai_wire.to_input(hub.catalog, spec, body)
    if not images:
        raise InvalidInput.one(["image"], "at least one image file is required", "missing")
    if mask is not None and spec.param("mask_url") is None:
        raise InvalidInput.one(["mask"], f"{spec.id} takes no mask", "unknown_parameter")
    params["image_urls"] = [file_url(base_url, await hub.upload(data)) for data in images]
    if mask is not None:
        params["mask_url"] = file_url(base_url, await hub.upload(mask))
    return await _run(request, hub, caller, base_url, spec.id, params, body, idempotency_key)


async def _run(
    request: Request,
    hub: Hub,
    caller: ApiKey,
    base_url: str,
    model_id: str,
    params: dict[str, Any],
    body: openai_wire.ImagesRequest,
    idempotency_key: str | None,
) -> Response:
    """Submit the task like any other, then answer in OpenAI's shape once it is ready (or, with
    `stream: true`, as OpenAI's event stream: the partial images as they come, then the images)."""
    task, _ = await hub.submit(
        caller.tenant_id,
        model_id,
        params,
        idempotency_key=idempotency_key,
        key=caller,
        base_url=base_url,
        partial_images=(body.partial_images or 0) if body.stream else 0,
    )
    if body.stream:
        return StreamingResponse(
            _events(hub, task, body),
            media_type="text/event-stream",
            headers={"x-imagehub-task-id": task.id, "Cache-Control": "no-store"},
        )
    return await _answer(request, hub, task, body.response_format, base_url)


async def _events(hub: Hub, task: Task, body: openai_wire.ImagesRequest) -> AsyncIterator[str]:
    """The task's partial images, then its images, as OpenAI's stream events (base64, whatever
    `response_format` says: OpenAI streams base64 only)."""
    edit = bool(task.input.get("image_urls"))
    sent: set[str] = set()
    async for current in hub.events(task.tenant_id, task.id):
        if isinstance(current, Progress):  # OpenAI's stream has no such event
            continue
        for partial in current.partials:
            if partial.file_id in sent:
                continue
            sent.add(partial.file_id)
            data = await _b64(hub, partial.file_id)
            size = (partial.width, partial.height)
            yield openai_wire.stream_event(
                current, body, data, edit=edit, partial_index=partial.index, size=size
            )
        if not current.ready:
            continue
        if current.status != TaskStatus.SUCCEEDED:
            yield openai_wire.stream_error(openai_wire.task_error(current)[1])
            return
        for image in _files(current):
            data = await _b64(hub, image.file_id)
            size = (image.width, image.height)
            yield openai_wire.stream_event(current, body, data, edit=edit, size=size)
        return


async def _b64(hub: Hub, file_id: str | None) -> str:
    """A stored image as base64 text, which a stream event carries inside its JSON."""
    return b64_bytes(await hub.file(file_id or "")).decode("ascii")


async def _read_form(request: Request) -> tuple[dict[str, str], list[bytes], bytes | None]:
    """The text fields, the `image[]`/`image` files and the `mask` file of a multipart body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput.one(["body"], "must be multipart/form-data", "content_type")
    fields: dict[str, str] = {}
    images: list[bytes] = []
    mask: bytes | None = None
    async with request.form(max_files=_MAX_INPUT_FILES, max_fields=64) as form:
        for name, value in form.multi_items():
            if not isinstance(value, UploadFile):
                fields[name] = value
            elif name in ("image", "image[]"):
                images.append(await value.read())
            elif name == "mask":
                mask = await value.read()
            else:
                raise InvalidInput.one([name], "unknown file field", "unknown_parameter")
    return fields, images, mask


async def _answer(
    request: Request, hub: Hub, task: Task, response_format: str | None, base_url: str
) -> Response:
    """Wait for the task, then answer with its images (or its error) in OpenAI's shape."""
    headers = {"x-imagehub-task-id": task.id}
    known: Task | None = task  # as the submit stored it, no await since
    base64: dict[str, Base64] = {}  # the upstream's, when the task finishes in this process
    while not task.ready:
        task = await hub.wait(
            task.tenant_id, task.id, _WAIT_SLICE_SECONDS, known=known, base64=base64
        )
        known = None
        if not task.ready and await request.is_disconnected():
            return Response(status_code=499, headers=headers)  # nobody is listening any more
    if task.status != TaskStatus.SUCCEEDED:
        status, body = openai_wire.task_error(task)
        return JSONBody(body, status_code=status, headers={**headers, **_NO_RETRY})
    if response_format == "url":
        urls = [file_url(base_url, image.file_id or "") for image in _files(task)]
        answer = openai_wire.url_answer(task, urls)
        return Response(answer, media_type="application/json", headers=headers)
    images = [await hub.file_base64(image.file_id or "", base64) for image in _files(task)]
    return PartsResponse(openai_wire.b64_answer(task, images), headers)


class PartsResponse(Response):
    """A JSON body sent in parts: megabytes of base64 are not copied once more. A small one
    is joined: a copy of a few kilobytes costs less than a message through every layer."""

    media_type = "application/json"
    JOIN_BYTES = 64 * 1024

    def __init__(self, parts: list[bytes | memoryview], headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        size = sum(len(part) for part in parts)
        self.parts = [b"".join(parts)] if size <= self.JOIN_BYTES and len(parts) > 1 else parts
        self.headers["content-length"] = str(size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        for i, part in enumerate(self.parts, 1):
            more = i < len(self.parts)
            await send({"type": "http.response.body", "body": part, "more_body": more})


def _files(task: Task) -> list[OutputImage]:
    return list(task.output.images) if task.output else []


async def _hot_generations(request: Request) -> Response:
    """`create_image` as `imagehub.api.hot` runs it: its dependencies resolved here."""
    caller = await get_caller(request, await bearer(request))
    key = request.headers.get("idempotency-key")
    return await create_image(
        request,
        request.state.hub,
        caller,
        await get_base_url(request),
        idempotency_key=checked(_IDEMPOTENCY_KEY, key, ("header", "Idempotency-Key")),
    )


_IDEMPOTENCY_KEY: TypeAdapter[str | None] = TypeAdapter(IdempotencyHeader)
hot = (HotRoute("POST", "/v1/images/generations", _hot_generations, openai_error),)


def _error(exc: HubError) -> JSONResponse:
    status, body = openai_wire.request_error(exc)
    return JSONResponse(body, status_code=status, headers=retry_headers(exc))
