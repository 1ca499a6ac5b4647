"""The hub's own base URL (api/deps.py) is Starlette's `request.base_url`, kept per name."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from imagehub.api.deps import get_base_url
from imagehub.settings import Settings


def scope(**changes) -> dict:
    base = {
        "type": "http",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"hub.test")],
        "path": "/hub/v1/tasks",
        "root_path": "",
        "query_string": b"a=1",
        "state": {"settings": Settings()},
    }
    return {**base, **changes}


SCOPES = [
    scope(),
    scope(scheme="https", server=("10.0.0.1", 443), headers=[], root_path="/api"),
    scope(server=("10.0.0.1", 8080), headers=[]),
    scope(server=None, headers=[], root_path="/r/"),
    scope(headers=[(b"host", b"Example.COM:8443")], root_path="/p", app_root_path="/p"),
]


@pytest.mark.parametrize("raw", SCOPES)
async def test_the_base_url_is_starlettes(raw):
    expected = str(Request(raw).base_url).rstrip("/")
    assert await get_base_url(Request(raw)) == expected
    assert await get_base_url(Request(raw)) == expected  # and again, from the cache


async def test_a_configured_public_url_wins():
    raw = scope(state={"settings": Settings(public_url="https://images.example.com/")})
    assert await get_base_url(Request(raw)) == "https://images.example.com"
