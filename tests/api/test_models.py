from __future__ import annotations

EXPECTED_IDS = [
    "nano-banana",
    "nano-banana-2",
    "nano-banana-pro",
    "gpt-image-2",
    "nano-banana/edit",
    "nano-banana-2/edit",
    "nano-banana-pro/edit",
    "gpt-image-2/edit",
]


async def test_models_lists_the_eight_models_with_tables_schemas_and_examples(client):
    data = (await client.get("/hub/v1/models")).json()["data"]
    assert [m["id"] for m in data] == EXPECTED_IDS
    for model in data:
        assert model["capability"] in ("text-to-image", "image-to-image")
        schema = model["input_schema"]
        assert schema["$schema"].endswith("2020-12/schema")
        assert schema["additionalProperties"] is False
        assert [p["name"] for p in model["parameters"]] == list(schema["properties"])
        assert set(schema["required"]) == {p["name"] for p in model["parameters"] if p["required"]}
        assert model["example"]["model"] == model["id"]


async def test_each_models_example_is_a_valid_request(client):
    for model in (await client.get("/hub/v1/models")).json()["data"]:
        response = await client.post("/hub/v1/tasks", json=model["example"])
        assert response.status_code == 202, (model["id"], response.text)


async def test_one_model_by_id_including_ids_with_a_slash(client):
    model = (await client.get("/hub/v1/models/nano-banana-2/edit")).json()
    assert model["name"] == "Nano Banana 2 Edit"
    image_urls = next(p for p in model["parameters"] if p["name"] == "image_urls")
    assert (image_urls["required"], image_urls["minimum"], image_urls["maximum"]) == (True, 1, 14)
    resolution = next(p for p in model["parameters"] if p["name"] == "resolution")
    assert resolution["values"] == ["0.5K", "1K", "2K", "4K"] and resolution["default"] == "1K"
    missing = await client.get("/hub/v1/models/dall-e-3")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
