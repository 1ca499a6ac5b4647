"""The OpenAPI document says what the routes do: every `$ref` resolves, what a route refuses
the schema refuses too, and a 405 lists every method of its path."""

from __future__ import annotations

import json

import httpx


async def test_every_ref_resolves_from_the_document_root(client: httpx.AsyncClient):
    document = (await client.get("/openapi.json")).json()
    text = json.dumps(document)
    assert "#/$defs/" not in text
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        node = document
        for step in ref.removeprefix("#/").split("/"):
            node = node[step]


async def test_what_the_routes_refuse_the_schema_refuses(client: httpx.AsyncClient):
    document = (await client.get("/openapi.json")).json()
    params = {
        p["name"]: p["schema"] for p in document["paths"]["/hub/v1/tasks"]["get"]["parameters"]
    }
    assert params["cursor"]["anyOf"][0]["minLength"] == 1
    assert set(params["status"]["anyOf"][0]["enum"]) >= {"queued", "succeeded"}
    body = document["paths"]["/hub/v1/tasks"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["model"]["minLength"] == 1
    openai = document["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]
    assert openai["application/json"]["schema"]["properties"]["prompt"]["minLength"] == 1
    form = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]
    assert form["multipart/form-data"]["schema"]["properties"]["n"]["type"] == "integer"
    assert (await client.get("/hub/v1/tasks?cursor=")).status_code == 422
    assert (await client.get("/hub/v1/tasks?status=")).status_code == 422


async def test_a_well_formed_cursor_that_names_no_page_is_404(client: httpx.AsyncClient):
    for path in ("/hub/v1/tasks", "/hub/v1/webhooks/deliveries"):
        answer = await client.get(path, params={"cursor": "0" * 120})
        assert answer.status_code == 404, (path, answer.text)
        assert (await client.get(path, params={"cursor": "!!"})).status_code == 422


async def test_a_405_lists_every_method_of_the_path(client: httpx.AsyncClient):
    keys = await client.delete("/hub/v1/admin/keys")
    assert keys.status_code == 405 and keys.headers["Allow"] == "GET, POST"
    one = await client.delete("/hub/v1/admin/keys/key_x")
    assert one.status_code == 405 and one.headers["Allow"] == "GET, PATCH"
