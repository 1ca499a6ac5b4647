"""The hot routes (`imagehub.api.hot`) answer exactly as FastAPI answers the same routes.

Every request below goes to two apps over one hub: the app as built, and the same app with the
hot layer taken out, so FastAPI's routing and dependencies answer. Their answers must match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from imagehub.api import create_app
from imagehub.api.hot import HotRoute, HotRoutes
from imagehub.hub import Hub
from imagehub.tenancy.keys import make_key

from .conftest import ADMIN_KEY

TASK = {"model": "nano-banana-2", "input": {"prompt": "a lighthouse"}}
OPENAI = {"model": "gpt-image-2", "prompt": "a lighthouse"}
#: headers that differ from one answer to the next whoever answers
_VARYING = {"x-request-id", "date", "location", "content-length", "x-imagehub-task-id"}


@pytest.fixture
async def pair(hub: Hub) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(the app as built, the app without its hot layer), both on `hub`."""
    hot, plain = create_app(hub=hub), create_app(hub=hub, hot=False)
    async with LifespanManager(hot) as manager:  # starts and stops the hub once
        await hub.store.add_key(make_key(name="admin", admin=True, key=ADMIN_KEY)[1])
        state = dict(manager._state)
        clients = [_client(manager.app), _client(_with_state(plain, state))]
        async with clients[0] as first, clients[1] as second:
            yield first, second


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://hub.test",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )


def _with_state(app: Any, state: dict[str, Any]) -> Any:
    """`app` with the lifespan state of the running one (the same hub), as uvicorn passes it."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    return asgi


def _same(hot: httpx.Response, plain: httpx.Response) -> None:
    assert hot.status_code == plain.status_code, (hot.text, plain.text)
    assert _headers(hot) == _headers(plain)
    if hot.status_code >= 400:
        assert hot.json() == plain.json()
    else:  # a new task each time, run by the worker meanwhile: the same fields and request
        first, second = hot.json(), plain.json()
        assert first.keys() == second.keys()
        for name in ("model", "input", "metadata", "ready", "status"):
            assert first.get(name) == second.get(name)


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in _VARYING}


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/hub/v1/tasks", {"json": TASK}),
    ("POST", "/hub/v1/tasks", {"json": TASK, "headers": {"Prefer": "wait=10"}}),
    ("POST", "/hub/v1/tasks", {"json": TASK, "headers": {"Authorization": "Bearer nope"}}),
    ("POST", "/hub/v1/tasks", {"json": TASK, "headers": {"Authorization": "Basic abc"}}),
    ("POST", "/hub/v1/tasks", {"content": b'{"model": ', "headers": {}}),
    ("POST", "/hub/v1/tasks", {"json": {"model": "nope", "input": {}}}),
    ("POST", "/hub/v1/tasks", {"json": TASK, "headers": {"Idempotency-Key": "k" * 256}}),
    ("GET", "/hub/v1/tasks/tsk_missing", {}),
    ("GET", "/hub/v1/tasks/tsk_missing", {"params": {"wait": "soon"}}),
    ("GET", "/hub/v1/tasks/tsk_missing", {"params": {"wait": "61"}}),
    ("GET", "/hub/v1/tasks/tsk_missing", {"headers": {"Authorization": ""}}),
    ("POST", "/v1/images/generations", {"json": OPENAI}),
    ("POST", "/v1/images/generations", {"json": {**OPENAI, "response_format": "url"}}),
    ("POST", "/v1/images/generations", {"json": {"prompt": 3}}),
    ("POST", "/v1/images/generations", {"content": b"[", "headers": {}}),
    ("POST", "/v1/images/generations", {"json": OPENAI, "headers": {"Authorization": "x"}}),
    ("POST", "/v1/images/generations", {"json": OPENAI, "headers": {"Idempotency-Key": "k" * 256}}),
]


@pytest.mark.parametrize(("method", "path", "options"), REQUESTS)
async def test_the_hot_layer_answers_as_fastapi_does(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
    method: str,
    path: str,
    options: dict[str, Any],
) -> None:
    hot, plain = pair
    _same(await hot.request(method, path, **options), await plain.request(method, path, **options))


async def test_a_task_read_through_the_hot_layer_is_the_task_fastapi_reads(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    hot, plain = pair
    task = (await hot.post("/hub/v1/tasks", json=TASK, headers={"Prefer": "wait=10"})).json()
    first = await hot.get(f"/hub/v1/tasks/{task['task_id']}")
    second = await plain.get(f"/hub/v1/tasks/{task['task_id']}")
    assert first.status_code == 200
    assert first.content == second.content


async def test_what_the_hot_layer_does_not_take_goes_on_to_fastapi(client: httpx.AsyncClient):
    task = (await client.post("/hub/v1/tasks", json=TASK)).json()
    # the task's other routes, a trailing slash, another method: FastAPI's routing answers
    assert (await client.get(f"/hub/v1/tasks/{task['task_id']}/events")).status_code == 200
    assert (await client.get("/hub/v1/tasks/")).status_code in (200, 307)
    refused = await client.put("/hub/v1/tasks")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST"


async def test_a_hot_request_passes_through_the_hubs_layers_alone(hub: Hub) -> None:
    """The hub's layers wrap FastAPI: a hot route's request never enters FastAPI's middleware
    stack (its server-error, telemetry and body-limit layers); any other route's does."""
    app = create_app(hub=hub)
    async with LifespanManager(app) as manager:
        await hub.store.add_key(make_key(name="admin", admin=True, key=ADMIN_KEY)[1])
        entered: list[str] = []
        stack = app.middleware_stack  # built when the lifespan started

        async def spy(scope: Any, receive: Any, send: Any) -> None:
            entered.append(scope["path"])
            assert stack is not None
            await stack(scope, receive, send)

        app.middleware_stack = spy
        async with _client(manager.app) as client:
            created = await client.post("/hub/v1/tasks", json=TASK, headers={"Prefer": "wait=10"})
            read = await client.get(f"/hub/v1/tasks/{created.json()['task_id']}")
            generated = await client.post("/v1/images/generations", json=OPENAI)
            assert entered == []
            listed = await client.get("/hub/v1/models")
        assert entered == ["/hub/v1/models"]
    for answer in (created, read, generated, listed):
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-request-id"]  # the hub's own outermost layer ran


async def _echo(request: Any) -> Any:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse(repr(request.path_params))


async def _never(request: Any, exc: Exception) -> Any:
    raise exc


@pytest.mark.parametrize(
    ("path", "root_path", "taken"),
    [
        ("/things", "", "{}"),
        ("/things/abc", "", "{'thing_id': 'abc'}"),
        ("/api/things/abc", "/api", "{'thing_id': 'abc'}"),
        ("/things/", "", None),
        ("/things/abc/more", "", None),
        ("/thingsabc", "", None),
    ],
)
async def test_paths_are_matched_exactly(path: str, root_path: str, taken: str | None) -> None:
    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        from starlette.responses import PlainTextResponse

        await PlainTextResponse("fallback")(scope, receive, send)

    routes = [
        HotRoute("GET", "/things", _echo, _never),
        HotRoute("GET", "/things/{thing_id}", _echo, _never),
    ]
    app = HotRoutes(fallback, routes)
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        answer = await client.get(path)
    assert answer.text == (taken if taken is not None else "fallback")
