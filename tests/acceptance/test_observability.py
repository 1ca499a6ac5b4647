"""One task, followed across processes: an API-only `imagehub serve` and an `imagehub worker` on
PostgreSQL, each exporting spans over OTLP/HTTP to a loopback receiver and logging JSON lines.

The task is submitted with a known W3C traceparent: every span about it, from the HTTP request
to the webhook, must belong to that one trace, and every log line about it must name it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance.conftest import KEY, free_port
from tests.fault.cluster import Api
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.providers.fake_upstream import FakeUpstream
from tests.providers.wire import gemini_ok
from tests.webhook_receiver import Receiver

GEMINI_KEY = "AIza-observability-test-key"
PROMPT = "a lighthouse at dusk, secret-prompt-words"
WANTED = {
    "POST /hub/v1/tasks",
    "imagehub.submit",
    "imagehub.queue_wait",
    "imagehub.attempt",
    "imagehub.upstream",
    "imagehub.media_write",
    "imagehub.webhook",
}


def _env(postgres_url: str, upstream: FakeUpstream, otlp: OtlpReceiver, service: str) -> dict:
    return {
        "IMAGEHUB_DATABASE_URL": postgres_url,
        "IMAGEHUB_GEMINI_API_KEY": GEMINI_KEY,
        "IMAGEHUB_GEMINI_BASE_URL": upstream.url + "/v1beta",
        "IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1",
        "IMAGEHUB_POLL_SECONDS": "0.2",
        "IMAGEHUB_LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON log: each must be one JSON object."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines, f"{path} is empty"
    parsed = [json.loads(line) for line in lines]
    for line in parsed:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    return parsed


async def _wait_ready(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    for _ in range(600):
        task = (await http.get(f"/hub/v1/tasks/{task_id}")).json()
        if task["ready"]:
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never finished")


def _by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    named: dict[str, ReceivedSpan] = {}
    for span in spans:
        named.setdefault(span.name, span)
    return named


async def test_one_trace_and_its_log_lines_cover_submit_attempt_upstream_and_webhook(
    tmp_path: Path, postgres_url: str, otlp: OtlpReceiver, receiver: Receiver
):
    upstream = await FakeUpstream(gemini_ok).start()
    data = tmp_path / "data"
    api = Api(data, _env(postgres_url, upstream, otlp, "imagehub-api"))
    worker_log = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    try:
        await asyncio.to_thread(api.start, "--log-level", "info")
        metrics_port = free_port()
        env = {
            **os.environ,
            "IMAGEHUB_ADMIN_KEY": KEY,
            "IMAGEHUB_METRICS_PORT": str(metrics_port),
            **_env(postgres_url, upstream, otlp, "imagehub-worker"),
        }
        with worker_log.open("w") as out:
            worker = subprocess.Popen(  # noqa: ASYNC220 - started once, never awaited on
                [sys.executable, "-m", "imagehub.cli", "worker", "--data-dir", str(data)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as http:
            answer = await http.post(
                "/hub/v1/tasks",
                json={
                    "model": "nano-banana",
                    "input": {"prompt": PROMPT},
                    "webhook_url": receiver.url,
                },
                headers={
                    "traceparent": f"00-{trace_id}-{client_span}-01",
                    "X-Request-Id": "req-otel-0001",
                },
            )
            assert answer.status_code == 202, answer.text
            assert answer.headers["x-request-id"] == "req-otel-0001"
            task_id = answer.json()["task_id"]
            task = await _wait_ready(http, task_id)
            assert task["status"] == "succeeded" and task["provider"] == "gemini"
            # a request without a sane id of its own gets a fresh one
            insane = await http.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
            assert len(insane.headers["x-request-id"]) == 32
        await asyncio.to_thread(receiver.wait_for, 1)
        # the worker process serves its own metrics: the upstream call was counted there
        async with httpx.AsyncClient(timeout=10) as plain:
            worker_metrics = (await plain.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        called = 'model="nano-banana",outcome="ok",provider="gemini",route="gemini"'
        assert f"imagehub_upstream_calls_total{{{called}}} 1.0" in worker_metrics
        assert "imagehub_queue_tasks" not in worker_metrics, "API processes report the queue"
        # a stop sends the spans still buffered
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 30) == 0
        # uvicorn stops gracefully, then re-raises the signal it caught
        assert api.stop() in (0, -signal.SIGTERM)
        spans = await asyncio.to_thread(otlp.wait_for, trace_id, WANTED)
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        if api.proc is not None and api.proc.poll() is None:
            api.stop()
        await upstream.close()

    named = _by_name(spans)
    request, submit = named["POST /hub/v1/tasks"], named["imagehub.submit"]
    # the chain: the client's span -> the HTTP request -> submit -> the worker's spans
    assert request.parent_span_id == client_span
    assert submit.parent_span_id == request.span_id
    for name in ("imagehub.queue_wait", "imagehub.attempt", "imagehub.webhook"):
        assert named[name].parent_span_id == submit.span_id, name
    attempt = named["imagehub.attempt"]
    assert named["imagehub.upstream"].parent_span_id == attempt.span_id
    # in two processes
    assert {request.service, submit.service} == {"imagehub-api"}
    for name in ("imagehub.attempt", "imagehub.upstream", "imagehub.webhook"):
        assert named[name].service == "imagehub-worker", name
    # each carries the task id
    for name in WANTED - {"POST /hub/v1/tasks"}:
        assert named[name].attributes["imagehub.task_id"] == task_id, name
    call = named["imagehub.upstream"].attributes
    assert call["imagehub.provider"] == "gemini" and call["imagehub.route"] == "gemini"
    assert call["imagehub.model"] == "nano-banana"
    assert call["imagehub.status_class"] == "ok" and call["imagehub.bytes"] > 0
    assert named["imagehub.webhook"].attributes["http.response.status_code"] == 200
    assert request.attributes["http.response.status_code"] == 202
    assert request.attributes["http.route"] == "/hub/v1/tasks"
    # never the key, and not the prompt unless the operator opted in
    every_value = repr([s.attributes for s in otlp.spans])
    assert GEMINI_KEY not in every_value and KEY not in every_value
    assert "secret-prompt-words" not in every_value

    api_lines = _json_lines(api.log)
    access = [
        line
        for line in api_lines
        if line["logger"] == "uvicorn.access" and line.get("request_id") == "req-otel-0001"
    ]
    assert len(access) == 1, api_lines
    assert access[0]["task_id"] == task_id and access[0]["trace_id"] == trace_id
    assert access[0]["tenant"] and access[0]["status"] == 202
    assert access[0]["method"] == "POST" and access[0]["path"] == "/hub/v1/tasks"
    worker_lines = [line for line in _json_lines(worker_log) if line.get("task_id") == task_id]
    assert {line["logger"] for line in worker_lines} >= {
        "imagehub.worker",
        "imagehub.webhooks.sender",
    }
    assert all(line["trace_id"] == trace_id for line in worker_lines), worker_lines
