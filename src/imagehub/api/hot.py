"""The hot routes, answered in pure ASGI: no routing table walk, no dependency solving.

Submitting a task, reading one and OpenAI's `generations` are nearly every request of a busy
hub. FastAPI's routing and dependency injection cost them about a third of the event loop's
time per request, so `HotRoutes` answers them itself, calling the same endpoint functions with
the same dependency functions, in the order FastAPI resolves them. FastAPI still declares the
routes: the OpenAPI schema is unchanged, and any request the layer does not take (another
method, a path with a trailing slash) goes on to FastAPI as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from imagehub.api.errors import validation_error

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorAnswer = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class HotRoute:
    """One route answered here: `path` is FastAPI's template, at most one `{name}` at its end."""

    method: str
    path: str
    endpoint: Endpoint
    #: the answer to an exception, as the route's FastAPI error handlers would give it
    errors: ErrorAnswer


class HotRoutes:
    """Pure ASGI: the hot routes answered here, everything else passed on to `app`."""

    def __init__(self, app: ASGIApp, routes: Sequence[HotRoute]) -> None:
        self.app = app
        self._exact: dict[tuple[str, str], HotRoute] = {}
        #: (method, prefix) -> (parameter name, route) for `/prefix/{name}`
        self._items: dict[tuple[str, str], tuple[str, HotRoute]] = {}
        for route in routes:
            prefix, brace, name = route.path.partition("{")
            if brace:
                self._items[route.method, prefix] = (name.removesuffix("}"), route)
            else:
                self._exact[route.method, route.path] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._match(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        route, params = found
        scope["route"] = route  # what the request's span is named after
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            response = await route.errors(request, exc)
        await response(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[HotRoute, dict[str, str]] | None:
        method, path = scope["method"], scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}
        prefix, _, item = path.rpartition("/")
        found = self._items.get((method, prefix + "/"))
        if found is None or not item:
            return None
        name, route = found
        return route, {name: item}


def model_response(content: BaseModel, response: Response, status_code: int) -> Response:
    """What FastAPI answers for an endpoint that returned a model and set `response`'s status
    or headers: the model's JSON (by alias), with them."""
    answer = Response(
        content.model_dump_json(by_alias=True),
        status_code=response.status_code or status_code,
        media_type="application/json",
    )
    answer.headers.raw.extend(response.headers.raw)
    return answer


def sub_response() -> Response:
    """The `response` FastAPI hands an endpoint: no status of its own, no headers."""
    response = Response()
    del response.headers["content-length"]
    response.status_code = None  # type: ignore[assignment]
    return response


def checked(adapter: TypeAdapter[Any], value: Any, loc: tuple[str, str]) -> Any:
    """A header or query value checked as FastAPI checks it, refused with the same details."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": (*loc, *e["loc"])} for e in exc.errors()]
        raise validation_error(RequestValidationError(errors)) from None
