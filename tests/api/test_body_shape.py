"""A JSON body's shape is bounded before anything is decoded or stored: nesting, keys per
object and values in all; a 422 names the field and lists at most 50 failures."""

from __future__ import annotations

import json

import httpx
import pytest

from imagehub.api.bounds import MAX_DEPTH, MAX_MEMBERS
from imagehub.errors import MAX_DETAILS


def nested(levels: int) -> object:
    """A value that, as `metadata.a`, nests the body `levels` deep (body 1, metadata 2)."""
    value: object = 1
    for _ in range(levels - 2):
        value = [value]
    return value


def submit(levels: int) -> bytes:
    """A task body whose `metadata.a` nests it `levels` deep (body 1, metadata 2)."""
    lists = levels - 2
    head = '{"model":"nano-banana","input":{"prompt":"x"},"metadata":{"a":'
    return (head + "[" * lists + "1" + "]" * lists + "}}").encode()


async def test_the_deepest_accepted_task_renders_back_everywhere(client: httpx.AsyncClient):
    answer = await client.post("/hub/v1/tasks", content=submit(MAX_DEPTH))
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    assert (await client.get(f"/hub/v1/tasks/{task_id}")).status_code == 200
    assert (await client.get("/hub/v1/tasks")).status_code == 200
    async with client.stream("GET", f"/hub/v1/tasks/{task_id}/events") as events:
        assert events.status_code == 200
        async for line in events.aiter_lines():
            if line.startswith("data:"):
                assert json.loads(line[5:])["metadata"] == {"a": nested(MAX_DEPTH)}
                break


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 256, 300, 1000])
async def test_nesting_past_the_limit_is_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, levels: int
):
    answer = await client.post("/hub/v1/tasks", content=submit(levels))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["details"][0]["loc"] == ["metadata"]
    assert f"{MAX_DEPTH} levels" in error["message"]
    history = await client.get("/hub/v1/tasks")
    assert history.status_code == 200 and history.json()["data"] == []


@pytest.mark.parametrize("field", ["input", "metadata"])
async def test_a_million_keys_is_refused_at_once_with_a_short_answer(
    client: httpx.AsyncClient, field: str
):
    many = ",".join(f'"k{i}":1' for i in range(1_000_000))
    other = '"metadata":{}' if field == "input" else '"input":{"prompt":"x"}'
    raw = f'{{"model":"nano-banana",{other},"{field}":{{{many}}}}}'.encode()
    answer = await client.post("/hub/v1/tasks", content=raw)
    assert answer.status_code == 422
    assert len(answer.content) < 2_000
    assert answer.json()["error"]["details"][0]["loc"] == [field]
    assert f"{MAX_MEMBERS:,} keys" in answer.json()["error"]["message"]
    assert (await client.get("/hub/v1/tasks")).json()["data"] == []


async def test_an_error_list_is_capped_and_its_message_counts_every_failure(
    client: httpx.AsyncClient,
):
    unknown = {f"k{i}": 1 for i in range(MAX_MEMBERS - 10)}
    body = {"model": "nano-banana", "input": {"prompt": "x", **unknown}}
    answer = await client.post("/hub/v1/tasks", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert len(error["details"]) == MAX_DETAILS
    assert str(len(unknown)) in error["message"]


async def test_a_body_with_too_many_values_in_all_is_422(client: httpx.AsyncClient):
    spread = {f"m{i}": list(range(MAX_MEMBERS - 1)) for i in range(20)}
    body = {"model": "nano-banana", "input": {"prompt": "x"}, "metadata": spread}
    answer = await client.post("/hub/v1/tasks", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["type"] == "too_many_values"


async def test_brackets_and_commas_inside_strings_are_not_structure(client: httpx.AsyncClient):
    prompt = "[{" * 100 + "," * 2000 + '\\"]' + "\\\\"
    body = {"model": "nano-banana", "input": {"prompt": prompt}, "metadata": {"a": nested(20)}}
    answer = await client.post("/hub/v1/tasks", json=body)
    assert answer.status_code == 202, answer.text
