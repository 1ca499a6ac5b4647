"""The Model Reference page over plain HTTP: it follows the catalog and serves its own assets."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import httpx

from imagehub.hub import Hub


class Links(HTMLParser):
    """Every src and href of a page, and the text of each element with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def code_block(page: str, element_id: str) -> str:
    match = re.search(rf'<code id="{re.escape(element_id)}"[^>]*>(.*?)</code>', page, re.S)
    assert match, f"no code block {element_id}"
    return html.unescape(match.group(1))


def curl_body(example: str) -> dict:
    """The JSON a curl example sends: the text of its heredoc."""
    return json.loads(example.split("<<'JSON'\n", 1)[1].split("\nJSON\n", 1)[0])


async def get_page(client: httpx.AsyncClient) -> str:
    response = await client.get("/", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return response.text


async def test_the_page_shows_every_model_and_every_parameter(client: httpx.AsyncClient):
    page = await get_page(client)
    models = (await client.get("/hub/v1/models")).json()["data"]
    assert len(models) == 8
    for model in models:
        assert f"<code>{model['id']}</code>" in page
        card = page.split(f'data-model="{model["id"]}"', 1)[1].split("</details>", 1)[0]
        for param in model["parameters"]:
            assert f'data-param="{param["name"]}"' in card, (model["id"], param["name"])
            assert param["description"] in html.unescape(card)
    assert 'Text to image <span class="count">· 4</span>' in page
    assert 'Image to image / Edit <span class="count">· 4</span>' in page
    assert "GET /hub/v1/tasks/{taskId}" in page


async def test_the_embedded_catalog_is_the_hubs(client: httpx.AsyncClient, hub: Hub):
    page = await get_page(client)
    match = re.search(r'<script type="application/json" id="catalog-data">(.*?)</script>', page)
    assert match
    data = json.loads(match.group(1))
    assert [m["id"] for m in data["models"]] == [m.id for m in hub.catalog]
    for entry, spec in zip(data["models"], hub.catalog, strict=True):
        assert [p["name"] for p in entry["params"]] == [p.name for p in spec.params]
        assert [p["kind"] for p in entry["params"]] == [p.type for p in spec.params]
        assert entry["example"] == spec.example
    assert data["presets"] == {k: list(v) for k, v in hub.catalog.presets.items()}


async def test_every_examples_body_passes_validation(client: httpx.AsyncClient, hub: Hub):
    page = await get_page(client)
    for spec in hub.catalog:
        anchor = "model-" + spec.id.replace("/", "--")
        body = curl_body(code_block(page, f"{anchor}-code-curl"))
        assert body == {"model": spec.id, "input": spec.example}
        hub.validator.validate(body["model"], body["input"])  # raises if the example is invalid
        python = code_block(page, f"{anchor}-code-python")
        javascript = code_block(page, f"{anchor}-code-javascript")
        compile(python, f"{spec.id}.py", "exec")
        assert '"http://hub.test"' in javascript and "ready" in javascript
        # the Python example is the SDK's: generate() waits until ready
        assert 'Client("http://hub.test")' in python and f'"{spec.id}"' in python
        assert "hub.generate(" in python and "hub.save(" in python
        assert "IMAGEHUB_API_KEY" in python and "IMAGEHUB_API_KEY" in javascript


async def test_examples_use_the_configured_public_url():
    from imagehub.api.page import page_context
    from imagehub.catalog import Catalog, Validator

    catalog = Catalog.load()
    context = page_context(catalog, Validator(catalog), "https://images.example.org")
    first = context["tabs"][0]["cards"][0]["examples"]
    assert first["curl"].startswith('curl -s "https://images.example.org/hub/v1/tasks"')
    assert 'Client("https://images.example.org")' in first["python"]


async def test_every_asset_comes_from_the_hub_with_its_content_type(client: httpx.AsyncClient):
    page = await get_page(client)
    links = Links()
    links.feed(page)
    assets = [url for url in links.urls if url.startswith("/static/")]
    assert {url.split("?")[0] for url in assets} >= {
        "/static/hub.css",
        "/static/app.js",
        "/static/icon.svg",
        "/static/noscript.css",
    }
    # nothing from elsewhere: the page works with no internet
    assert all(url.startswith(("/", "#")) for url in links.urls), links.urls
    types = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
    for url in assets:
        response = await client.get(url, headers={"Authorization": ""})
        assert response.status_code == 200, url
        suffix = "." + url.split("?")[0].rsplit(".", 1)[1]
        assert response.headers["content-type"].split(";")[0] == types[suffix]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in response.headers["cache-control"]  # versioned URLs


async def test_script_modules_import_only_served_assets(client: httpx.AsyncClient):
    app = await client.get("/static/app.js")
    pending, seen = [app.text], set()
    while pending:
        for name in re.findall(r'from "\./([\w.-]+\.js)"', pending.pop()):
            if name in seen:
                continue
            seen.add(name)
            response = await client.get(f"/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == "text/javascript; charset=utf-8"
            pending.append(response.text)
    assert {"api.js", "form.js", "playground.js", "gallery.js", "tabs.js"} <= seen


async def test_assets_revalidate_and_unknown_ones_are_404(client: httpx.AsyncClient):
    first = await client.get("/static/hub.css")
    assert first.headers["cache-control"] == "no-cache"  # unversioned URL
    again = await client.get("/static/hub.css", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    for name in ("nope.css", "..%2Fpage.py", "%2e%2e"):
        missing = await client.get(f"/static/{name}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


async def test_the_page_locks_itself_down(client: httpx.AsyncClient):
    response = await client.get("/")
    policy = response.headers["content-security-policy"]
    # scripts only from the hub, and fetch() (which carries the key) only to the hub
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    # the page is not part of the API's schema
    assert "/" not in (await client.get("/openapi.json")).json()["paths"]
