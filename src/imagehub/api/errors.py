"""The API border: every error becomes API.md's envelope; oversize bodies stop early."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagehub.api.bounds import check_shape
from imagehub.errors import (
    HubError,
    InvalidInput,
    InvalidJSON,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    StorageUnavailable,
    is_storage_fault,
)

log = logging.getLogger("imagehub.api")
M = TypeVar("M", bound=BaseModel)

#: codes the border answers that no `imagehub.errors` class stands for, with their meaning
BORDER_ERRORS = {
    405: ("method_not_allowed", "The route does not take this HTTP method."),
    408: (
        "request_timeout",
        "The request body did not arrive within `IMAGEHUB_BODY_TIMEOUT_SECONDS`.",
    ),
    500: ("internal_error", "The hub failed to answer: a bug, logged with its traceback."),
}
_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: BORDER_ERRORS[405][0],
    408: BORDER_ERRORS[408][0],
    413: "payload_too_large",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries: these statuses answer with the error envelope."""
    from imagehub.schemas import ErrorBody

    return {code: {"model": ErrorBody} for code in codes}


def retry_headers(exc: HubError) -> dict[str, str]:
    """`Retry-After` for an error that says when to come back (a rate limit, an overload)."""
    if isinstance(exc, RateLimited | Overloaded):
        return {"Retry-After": str(max(1, round(exc.retry_after)))}
    return {}


def error_response(exc: HubError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=retry_headers(exc))


async def _hub_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    return error_response(exc)


def parse_body(raw: bytes, schema: type[M]) -> M:
    """A JSON body, whatever Content-Type the client sent (curl -d sends a form type).

    Its shape is bounded first (`bounds`): depth, members and values, before decoding.
    """
    check_shape(raw)
    # orjson reads a body as the standard library does, except an integer past 64 bits (as a
    # float); what it refuses (NaN, 1e400, lone surrogates, UTF-16), the standard library
    # decides
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = _slow_json(raw)
    else:
        if _wide_float(data):  # perhaps such an integer: read again as the library reads it
            data = _slow_json(raw)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_details(exc.errors(), skip=0)) from None


#: every integer orjson reads as a float is at least this large (it keeps 64-bit ones exact)
_INT64 = float(2**63)


def _wide_float(value: Any) -> bool:
    """Whether decoded JSON holds a float of 2**63 or more in size: the values are walked, not
    the body (a scan of a body's megabytes of base64 costs ten times its parse). The shape
    check above bounds their number and depth."""
    if isinstance(value, float):
        return abs(value) >= _INT64
    if isinstance(value, dict):
        return any(_wide_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_wide_float(item) for item in value)
    return False


def _slow_json(raw: bytes) -> Any:
    try:
        data = json.loads(raw, parse_constant=_not_json)
        if _SURROGATE.search(raw):  # an escaped lone surrogate cannot be answered back
            json.dumps(data, ensure_ascii=False).encode()
    except (ValueError, UnicodeError, RecursionError):  # nesting too deep: refused too
        raise InvalidJSON() from None
    return data


#: a \\uD800-\\uDFFF escape: only then can decoded JSON hold an unpaired surrogate
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _not_json(constant: str) -> Any:
    """NaN and Infinity: Python reads them, JSON has no such numbers."""
    raise ValueError(f"{constant} is not JSON")


#: query parameters refused as a person would say it, not as pydantic's "Input should be..."
_QUERY_RULES = {
    "wait": "wait must be between 0 and 60 seconds",
    "limit": "limit must be between 1 and 200",
}


def _details(errors: Sequence[Any], skip: int) -> list[dict[str, Any]]:
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in e["loc"][skip:]] or ["body"],
            "msg": _message(e),
            "type": e["type"],
        }
        for e in errors
    ]


def _message(error: Any) -> str:
    loc = tuple(error["loc"])
    if len(loc) == 2 and loc[0] == "query" and loc[1] in _QUERY_RULES:
        return _QUERY_RULES[loc[1]]
    return "unknown field" if error["type"] == "extra_forbidden" else str(error["msg"])


def validation_error(exc: RequestValidationError) -> InvalidJSON | InvalidInput:
    """FastAPI's own check of a request, as the hub's error."""
    errors = list(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return InvalidJSON()
    details = _details(errors, skip=0)
    if len(details) == 1 and details[0]["msg"] in _QUERY_RULES.values():
        return InvalidInput(details, message=details[0]["msg"])  # the rule says it all
    return InvalidInput(details)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = {"error": {"code": code, "message": str(exc.detail)}}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the methods of the first route matched only
        headers["Allow"] = ", ".join(_methods(request))
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _methods(request: Request) -> list[str]:
    """Every method some route of the app answers at this request's path."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a request body, whole: its `$defs` put in place, since a `$ref` in
    an operation resolves from the OpenAPI document's root, where there are none."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


async def _disconnected(request: Request, exc: Exception) -> Response:
    """The client went away mid-body: nothing to answer, nothing wrong with the hub."""
    log.info("client disconnected while sending %s %s", request.method, request.url.path)
    return Response(status_code=400)


def storage_unavailable(request: Request, exc: Exception) -> StorageUnavailable | None:
    """A full disk or no descriptor left passes: the 503 to answer (logged), else None."""
    if not is_storage_fault(exc):
        return None
    log.warning("storage fault on %s %s: %s", request.method, request.url.path, exc)
    return StorageUnavailable()


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    error = storage_unavailable(request, exc)
    return error_response(error) if error else await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"error": {"code": "internal_error", "message": "The hub failed to answer."}}
    return JSONResponse(body, status_code=500)


_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    HubError: _hub_error,
    RequestValidationError: _validation_error,
    HTTPException: _http_error,
    # storage errors by class: a handler for `Exception` itself answers, then re-raises
    OSError: _storage_error,
    sqlite3.Error: _storage_error,
    ClientDisconnect: _disconnected,
    Exception: _unexpected,
}


def install_error_handlers(app: FastAPI) -> None:
    for kind, handler in _HANDLERS.items():
        app.add_exception_handler(kind, handler)


async def answer_error(request: Request, exc: Exception) -> Response:
    """The answer the handlers above give `exc` (the nearest class's), for the routes that
    FastAPI does not run (`imagehub.api.hot`)."""
    handler = next(_HANDLERS[kind] for kind in type(exc).__mro__ if kind in _HANDLERS)
    return await handler(request, exc)


class BodyLimit:
    """Refuse request bodies over `max_bytes`, by header and while streaming, and bodies that
    take longer than `timeout` seconds to arrive (a slow client holds a connection for free)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 120.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        seen = 0
        deadline = asyncio.get_running_loop().time() + self.timeout
        body_done = False

        async def limited() -> Message:
            nonlocal seen, body_done
            if body_done:  # later receives wait for a disconnect: no deadline on those
                return await receive()
            message = await self._receive(receive, deadline)
            body_done = message["type"] != "http.request" or not message.get("more_body")
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # an HTTPException passes through FastAPI's body parsing unchanged
                raise HTTPException(
                    413, f"The request body is larger than {self.max_bytes:,} bytes."
                )
            return message

        await self.app(scope, limited, send)

    async def _receive(self, receive: Receive, deadline: float) -> Message:
        """The next body message; a 408 once the body's deadline passes.

        `asyncio.timeout_at`, not `wait_for`: no task made per receive, and a body already
        read (the usual case) comes back without a suspension.
        """
        try:
            async with asyncio.timeout_at(deadline):
                return await receive()
        except TimeoutError:
            raise HTTPException(
                408,
                f"The request body did not arrive within {self.timeout:g} s.",
                headers={"Connection": "close"},
            ) from None

    async def _refuse(self, send: Send) -> None:
        exc = PayloadTooLarge(f"The request body is larger than {self.max_bytes:,} bytes.")
        body = json.dumps(exc.body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": exc.status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class NoNulBytes:
    """Answer requests with a NUL character in their path (404) or query (422) at once.

    No id or parameter of the API has one, and PostgreSQL refuses NUL in every text value:
    such a request would otherwise reach the store and fail there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/hub/v1/"):
            error: HubError | None = None
            if "\x00" in scope["path"]:
                error = NotFound("Not found: the path has a NUL character.")
            elif b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]:
                error = InvalidInput.one(["query"], "must not contain NUL characters", "nul")
            if error is not None:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HostRequired:
    """Answer an HTTP/1.1 request without a `Host` header 400, as RFC 9112 (3.2) requires."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("http_version") == "1.1"
            and not any(name == b"host" for name, _ in scope["headers"])
        ):
            message = "An HTTP/1.1 request needs a Host header."
            body = {"error": {"code": "bad_request", "message": message}}
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)
