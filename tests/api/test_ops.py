from __future__ import annotations

from imagehub.testing import ScriptedProvider, memory_hub
from tests.api.conftest import _client
from tests.api.test_tasks import NB, submit_and_wait


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "store": True, "worker": True}


async def test_swagger_ui_is_at_docs(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "/openapi.json" in page.text


async def test_readiness_reports_no_worker_on_an_api_only_process():
    hub = memory_hub(ScriptedProvider(), run_worker=False)
    async for client in _client(hub):
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "store": True, "worker": None}


async def test_metrics_count_tasks(client):
    await submit_and_wait(client, NB)
    text = (await client.get("/metrics")).text
    assert 'imagehub_tasks_submitted_total{model="nano-banana"} 1.0' in text
    labels = 'model="nano-banana",provider="scripted",status="succeeded"'
    assert f"imagehub_tasks_finished_total{{{labels}}} 1.0" in text


async def test_openapi_documents_the_task_api(client):
    spec = (await client.get("/openapi.json")).json()
    assert {"/hub/v1/tasks", "/hub/v1/tasks/{task_id}", "/hub/v1/files"} <= set(spec["paths"])
    submit = spec["paths"]["/hub/v1/tasks"]["post"]
    body = submit["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["model", "input"]
    fields = {"model", "input", "webhook_url", "metadata", "partial_images"}
    assert set(body["properties"]) == fields


async def test_unknown_routes_answer_the_error_envelope(client):
    response = await client.get("/hub/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
