"""The console's page at /console: the same data-free shell for every visitor, in their language,
with every script and style its own (Chart.js vendored, under the page's CSP)."""

from __future__ import annotations

import re

import httpx
import pytest

from imagehub.api import page
from tests.api.conftest import ADMIN_KEY
from tests.api.test_page_languages import embedded, lang_of


@pytest.mark.parametrize(
    ("kwargs", "expected", "title"),
    [
        ({}, "en", "Operator console"),
        ({"headers": {"Accept-Language": "zh-CN,zh;q=0.9"}}, "zh-CN", "运维控制台"),
        ({"params": {"lang": "zh"}, "headers": {"Accept-Language": "en"}}, "zh-CN", "运维控制台"),
        ({"headers": {"Cookie": "imagehub_lang=zh"}}, "zh-CN", "运维控制台"),
    ],
)
async def test_the_console_speaks_the_visitors_language(
    client: httpx.AsyncClient, kwargs, expected, title
):
    response = await client.get("/console", **kwargs)
    assert response.status_code == 200
    assert lang_of(response) == expected
    assert f'<h1 id="console-title">{title}</h1>' in response.text
    messages = embedded(response.text, "messages-data")
    if expected == "en":
        assert messages == {}
    else:
        assert messages["Retry now"] == "立即重试"
    # the switch keeps the visitor on the console
    assert 'href="/console?lang=zh"' in response.text
    assert 'href="/console?lang=en"' in response.text


async def test_the_console_page_holds_no_data_with_or_without_a_key(client: httpx.AsyncClient):
    keys = (await client.get("/hub/v1/admin/keys")).json()["data"]
    with_key = await client.get("/console")
    anonymous = await client.get("/console", headers={"Authorization": ""})
    assert with_key.text == anonymous.text  # the page never depends on who asks
    for key in keys:
        assert key["id"] not in with_key.text and key["prefix"] not in with_key.text
    assert ADMIN_KEY not in with_key.text


async def test_the_console_loads_only_the_hubs_own_assets_chart_js_included(
    client: httpx.AsyncClient,
):
    response = await client.get("/console")
    assert response.headers["content-security-policy"] == page.CSP
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assets = [s for s in sources if s.startswith("/static/")]
    assert any(s.startswith("/static/chart.umd.min.js?v=") for s in assets)
    assert any(s.startswith("/static/console.js?v=") for s in assets)
    for source in assets:
        asset = await client.get(source)
        assert asset.status_code == 200, source
    chart = await client.get("/static/chart.umd.min.js")
    assert chart.headers["content-type"].startswith("text/javascript")
    assert b"Chart.js v4" in chart.content[:200]
    assert not [s for s in sources if "://" in s]
