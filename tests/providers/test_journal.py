"""The worker's attempts journal: one row per route call, failovers and retries included,
written by real Gemini routes against loopback fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.providers.conftest import TENANT, provider_settings, run_task
from tests.providers.fake_upstream import FakeUpstream
from tests.providers.test_failover import NB, two_routes
from tests.providers.wire import g_error, gemini_ok


@pytest.fixture
async def second() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream(gemini_ok).start()
    yield server
    await server.close()


async def test_a_failover_journals_each_route_call_of_the_attempt(
    upstream, second, make_hub, tmp_path
):
    upstream.handler = lambda seen: g_error(503, "UNAVAILABLE", "The model is overloaded.")
    hub = await make_hub(two_routes(tmp_path, upstream, second))
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "succeeded"
    calls = await hub.store.attempts(task.id)
    assert [(c.route, c.provider, c.number, c.outcome) for c in calls] == [
        ("primary", "gemini", 1, "upstream_unavailable"),
        ("backup", "gemini", 1, "succeeded"),
    ]
    assert all(c.task_id == task.id and c.tenant_id == TENANT for c in calls)
    assert all(c.model == "nano-banana" and c.seconds >= 0 for c in calls)
    # the latency shape of the normalized input: nano-banana's only one is num_images
    assert [c.shape for c in calls] == ["num_images=1", "num_images=1"]
    assert "overloaded" in calls[0].message
    assert calls[0].finished_at <= calls[1].started_at


async def test_retried_attempts_are_journaled_with_their_numbers(upstream, make_hub):
    answers = iter([g_error(503, "UNAVAILABLE", "busy"), g_error(503, "UNAVAILABLE", "busy")])
    upstream.handler = lambda seen: next(answers, None) or gemini_ok(seen)
    hub = await make_hub(**provider_settings("gemini", upstream, "/v1beta"))
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "succeeded" and task.attempts == 3
    calls = await hub.store.attempts(task.id)
    assert [(c.number, c.outcome) for c in calls] == [
        (1, "upstream_unavailable"),
        (2, "upstream_unavailable"),
        (3, "succeeded"),
    ]
