"""Request ids, JSON log lines, the metrics an operator graphs and the dashboard that graphs them.

The cross-process trace is tests/acceptance/test_observability.py; here one process, in memory.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from imagehub import logs
from imagehub.api.observe import request_id
from imagehub.catalog import Catalog
from imagehub.errors import ContentPolicyViolation, UpstreamUnavailable
from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.metrics import Metrics
from imagehub.routing.router import Route, Router
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.testing import ScriptedProvider, memory_hub
from imagehub.wakeups.notifier import Notifier
from imagehub.wiring import build_hub
from tests.api.conftest import LOOPBACK, _client
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "imagehub.json"
#: every label the hub's own metrics may carry: no task, key or tenant id among them
LABELS = {"model", "route", "provider", "outcome", "status", "le"}
NB = {"model": "nano-banana", "input": {"prompt": "a red fox"}}


# -- request ids


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"req-1", True),
        (b"0f8c2e9a-6b1d-4c3e-9a7f-2d5b8e1c4a6f", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"", False),
        (b"with space", False),
        (b'quote"s', False),
        ("caf\u00e9".encode(), False),
        (b"new\nline", False),
    ],
)
def test_a_client_request_id_is_kept_only_when_sane(sent, kept):
    rid = request_id(sent)
    if kept:
        assert rid == sent.decode()
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)


async def test_every_answer_carries_a_request_id(client):
    sent = await client.get("/healthz", headers={"X-Request-Id": "abc.123"})
    assert sent.headers["x-request-id"] == "abc.123"
    one, two = await client.get("/healthz"), await client.get("/hub/v1/tasks/tsk_nope")
    assert two.status_code == 404
    assert re.fullmatch(r"[0-9a-f]{32}", one.headers["x-request-id"])
    assert one.headers["x-request-id"] != two.headers["x-request-id"]
    refused = await client.get("/hub/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.headers["x-request-id"]


# -- JSON log lines


def test_a_json_log_line_carries_the_ids_of_its_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("imagehub.test_json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with logs.about(request_id="req-9", tenant="tn_1"):
            with logs.about(task_id="tsk_1", route="gemini"):
                logger.info("inside %s", "both")
            logger.warning("outside the task")
        logger.info("no context")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4
    inside, outside, bare, failed = lines
    assert inside["message"] == "inside both" and inside["level"] == "info"
    assert inside["logger"] == "imagehub.test_json" and inside["time"].endswith("+00:00")
    assert (inside["request_id"], inside["tenant"], inside["task_id"], inside["route"]) == (
        "req-9",
        "tn_1",
        "tsk_1",
        "gemini",
    )
    assert outside["request_id"] == "req-9" and "task_id" not in outside
    assert outside["level"] == "warning"
    assert set(bare) == {"time", "level", "logger", "message"}, "no trace id: tracing is off"
    assert "ValueError: boom" in failed["exception"]


def test_uvicorn_access_lines_become_fields_without_the_query():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/hub/v1/tasks?cursor=secret", "1.1", 200),
        None,
    )
    line = json.loads(logs.JsonFormatter().format(record))
    assert (line["method"], line["path"], line["status"]) == ("GET", "/hub/v1/tasks", 200)


# -- tracing off costs no import


def test_with_no_otel_variable_the_sdk_is_never_imported(tmp_path):
    code = (
        "import asyncio, sys\n"
        "from imagehub.testing import ScriptedProvider, memory_hub\n"
        "async def main():\n"
        "    hub = memory_hub(ScriptedProvider(), poll_seconds=0.05)\n"
        "    await hub.start()\n"
        "    task, _ = await hub.submit('t', 'nano-banana', {'prompt': 'p'})\n"
        "    done = await hub.wait('t', task.id, 10)\n"
        "    await hub.stop()\n"
        "    assert done.status == 'succeeded' and done.traceparent is None\n"
        "    print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "[]"


# -- metrics


def _scripted_hub(alpha: ScriptedProvider, beta: ScriptedProvider) -> Hub:
    catalog = Catalog.load()
    spec = catalog.get("nano-banana")
    assert spec is not None
    routes = {
        "nano-banana": [
            Route(alpha, spec.upstream_model, priority=1),
            Route(beta, spec.upstream_model, priority=2),
        ]
    }
    settings = Settings(
        demo=False,
        retry_base_seconds=0.01,
        poll_seconds=0.05,
        max_attempts=1,
        fetch_allow_private=LOOPBACK,
        webhook_retry_delays=[0.05],
    )
    return build_hub(
        settings,
        catalog=catalog,
        router=Router(routes),
        store=MemoryStore(),
        media=MemoryMedia(),
        notifier=Notifier(),
    )


async def _wait_task(client, task_id: str) -> dict[str, Any]:
    answer = await client.get(f"/hub/v1/tasks/{task_id}?wait=10")
    assert answer.json()["ready"], answer.json()
    return answer.json()


async def _wait_delivery(hub: Hub, tenant: str, task_id: str, state: str) -> None:
    for _ in range(200):
        delivery = await hub.store.get_delivery(task_id, tenant)
        if delivery is not None and delivery.state == state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the delivery of {task_id} never became {state}")


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(families: dict[str, Any], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """A series' samples by their labels (`_total`, `_count`: the parser's family is the base)."""
    family = families.get(name) or families[re.sub(r"_(total|count|bucket|sum)$", "", name)]
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


async def test_metrics_after_a_scripted_run_with_failures_have_bounded_labels(
    receiver: Receiver,
):
    alpha = ScriptedProvider(
        name="alpha", kind="gemini", script=[UpstreamUnavailable(), ContentPolicyViolation()]
    )
    beta = ScriptedProvider(name="beta", kind="openrouter")
    hub = _scripted_hub(alpha, beta)
    receiver.script = [500]  # the first delivery fails, its retry succeeds
    async for client in _client(hub):
        # 1: alpha is unavailable, beta serves it; its webhook is retried once
        first = await client.post("/hub/v1/tasks", json={**NB, "webhook_url": receiver.url})
        assert (await _wait_task(client, first.json()["task_id"]))["provider"] == "beta"
        # 2: alpha refuses the content: the task fails at once, no failover
        second = await client.post("/hub/v1/tasks", json=NB)
        failed = await _wait_task(client, second.json()["task_id"])
        assert failed["error"]["code"] == "content_policy_violation"
        # 3: alpha serves it
        third = await client.post("/hub/v1/tasks", json=NB)
        assert (await _wait_task(client, third.json()["task_id"]))["provider"] == "alpha"
        stored = await hub.store.get(first.json()["task_id"])
        assert stored is not None
        tenant = stored.tenant_id
        await _wait_delivery(hub, tenant, stored.id, "succeeded")
        text = (await client.get("/metrics")).text
    families = _families(text)

    calls = _samples(families, "imagehub_upstream_calls_total")
    outcomes = {(dict(k)["route"], dict(k)["outcome"]): v for k, v in calls.items()}
    assert outcomes == {
        ("alpha", "upstream_unavailable"): 1,
        ("alpha", "content_policy_violation"): 1,
        ("alpha", "ok"): 1,
        ("beta", "ok"): 1,
    }
    assert {dict(k)["provider"] for k in calls} == {"gemini", "openrouter"}
    latency = _samples(families, "imagehub_upstream_seconds_count")
    assert {dict(k)["route"]: v for k, v in latency.items()} == {"alpha": 3, "beta": 1}
    finished = _samples(families, "imagehub_tasks_finished_total")
    assert {(dict(k)["status"], dict(k)["provider"]): v for k, v in finished.items()} == {
        ("succeeded", "alpha"): 1,
        ("succeeded", "beta"): 1,
        ("failed", "alpha"): 1,
    }

    # the queue, read from the store at scrape time: every catalog model, drained
    models = {spec.id for spec in Catalog.load()}
    queue = _samples(families, "imagehub_queue_tasks")
    assert {(dict(k)["model"], dict(k)["status"]) for k in queue} == {
        (m, s) for m in models for s in ("queued", "running")
    }
    assert set(queue.values()) == {0}
    assert {dict(k)["model"] for k in _samples(families, "imagehub_queue_oldest_seconds")} == models
    assert _samples(families, "imagehub_webhook_backlog") == {(): 0}
    webhooks = _samples(families, "imagehub_webhook_attempts_total")
    assert {dict(k)["outcome"]: v for k, v in webhooks.items()} == {"retry": 1, "succeeded": 1}
    assert "process_resident_memory_bytes" in families or "process_resident_memory" in families

    # bounded: only these label names, only configured values, never a task or tenant id
    for name, family in families.items():
        if not name.startswith("imagehub_"):
            continue
        for sample in family.samples:
            assert set(sample.labels) <= LABELS, (name, sample.labels)
            values = set(sample.labels.values())
            assert not any(v.startswith("tsk_") or v == tenant for v in values), sample
            assert sample.labels.get("model", "nano-banana") in models
            assert sample.labels.get("route", "alpha") in {"alpha", "beta"}


def test_a_label_value_outside_the_configured_set_counts_as_other():
    metrics = Metrics(models=["nano-banana"], routes=["gemini"], providers=["gemini"])
    metrics.upstream(
        route="tsk_not_a_route", provider="x", model="m", outcome="made_up", seconds=0.1
    )
    families = _families(metrics.render().decode())
    [labels] = _samples(families, "imagehub_upstream_calls_total")
    assert dict(labels) == {
        "route": "other",
        "provider": "other",
        "model": "other",
        "outcome": "other",
    }
    metrics.webhook("exploded")
    assert _samples(_families(metrics.render().decode()), "imagehub_webhook_attempts_total") == {
        (("outcome", "other"),): 1
    }


# -- the Grafana dashboard


def _exported_names(text: str) -> tuple[set[str], set[str]]:
    """Every series name the exposition can hold, and every label name it uses."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
    }
    names, labels = set(), set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
        for sample in family.samples:
            names.add(sample.name)
            labels.update(sample.labels)
    return names, labels


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


async def test_the_grafana_dashboard_graphs_only_metrics_the_hub_exports():
    dashboard = json.loads(DASHBOARD.read_text())
    hub = memory_hub(ScriptedProvider())
    hub.metrics.upstream(
        route="scripted", provider="none", model="nano-banana", outcome="ok", seconds=1
    )
    hub.metrics.webhook("succeeded")
    names, labels = _exported_names((await hub.metrics_text()).decode())
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dashboard)}) == len(_panels(dashboard)), "unique ids"
    assert len(panels) >= 10
    queries = [t["expr"] for p in panels for t in p["targets"]]
    assert all(p["targets"] for p in panels), "every graph has a query"
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = set()
    for query in queries:
        for name in re.findall(r"\b((?:imagehub|process)_[a-z_]+)\b", query):
            used.add(name)
            assert name in names, f"{name} (in {query!r}) is not exported"
        for group in re.findall(r"\bby \(([^)]*)\)", query):
            for label in (part.strip() for part in group.split(",")):
                assert label in labels, f"{label} (in {query!r}) is no label of the hub's"
    # the dashboard shows what the issue asks for
    assert {
        "imagehub_upstream_seconds_bucket",
        "imagehub_upstream_calls_total",
        "imagehub_queue_tasks",
        "imagehub_queue_oldest_seconds",
        "imagehub_tasks_finished_total",
        "imagehub_webhook_backlog",
        "imagehub_webhook_attempts_total",
        "process_resident_memory_bytes",
    } <= used


# -- spans, in one process


async def test_a_failover_shows_as_sibling_upstream_spans_in_the_submit_trace():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from imagehub.tracing import OtelTracing

    exported = InMemorySpanExporter()
    alpha = ScriptedProvider(name="alpha", kind="gemini", script=[UpstreamUnavailable()])
    beta = ScriptedProvider(name="beta", kind="openrouter")
    catalog = Catalog.load()
    spec = catalog.get("nano-banana")
    assert spec is not None
    routes = [Route(alpha, "up-a", priority=1), Route(beta, "up-b", priority=2)]
    hub = build_hub(
        Settings(demo=False, poll_seconds=0.05, trace_prompts=True),
        catalog=catalog,
        router=Router({"nano-banana": routes}),
        store=MemoryStore(),
        media=MemoryMedia(),
        notifier=Notifier(),
        tracing=OtelTracing(span_exporter=exported),
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    worker_log = logging.getLogger("imagehub.worker")
    worker_log.addHandler(handler)
    worker_log.setLevel(logging.INFO)
    await hub.start()
    try:
        task, _ = await hub.submit("tn_1", "nano-banana", {"prompt": "a blue heron"})
        done = await hub.wait("tn_1", task.id, 10)
    finally:
        await hub.stop()  # sends the spans still buffered
        worker_log.removeHandler(handler)
    assert done.status == "succeeded" and done.provider == "beta"
    assert done.traceparent is not None
    spans = exported.get_finished_spans()
    trace_id = format(spans[0].context.trace_id, "032x")
    assert {format(s.context.trace_id, "032x") for s in spans} == {trace_id}
    assert done.traceparent.split("-")[1] == trace_id
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert set(by_name) == {
        "imagehub.submit",
        "imagehub.queue_wait",
        "imagehub.attempt",
        "imagehub.upstream",
        "imagehub.media_write",
    }
    [attempt] = by_name["imagehub.attempt"]
    failed, served = sorted(by_name["imagehub.upstream"], key=lambda s: s.start_time)
    for call in (failed, served):
        assert call.parent is not None and call.parent.span_id == attempt.context.span_id
        assert call.attributes["imagehub.task_id"] == task.id
        assert call.attributes["imagehub.prompt"] == "a blue heron", "the operator opted in"
    assert failed.attributes["imagehub.route"] == "alpha"
    assert failed.attributes["error.type"] == "upstream_unavailable"
    assert failed.attributes["imagehub.status_class"] == "upstream_unavailable"
    assert not failed.status.is_ok
    assert served.attributes["imagehub.route"] == "beta"
    assert served.attributes["imagehub.status_class"] == "ok"
    assert served.attributes["imagehub.bytes"] == len(beta.image)
    [write] = by_name["imagehub.media_write"]
    assert write.attributes["imagehub.bytes"] > 0
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finished = [line for line in lines if line.get("task_id") == task.id]
    assert finished and all(line["trace_id"] == trace_id for line in finished)
