"""The failure policy across routes: failover, cool-down, concurrency limits, retry budget."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagehub.catalog import Catalog
from imagehub.errors import ModelUnavailable
from imagehub.routing.router import Route, Router
from imagehub.tasks import TaskFailure
from imagehub.testing import ScriptedProvider
from tests.providers.conftest import KEYS, TENANT, run_task
from tests.providers.fake_upstream import FakeUpstream, Hang, Reply
from tests.providers.wire import g_answer, g_error, g_image, gemini_ok

NB = {"prompt": "a fox"}


@pytest.fixture
async def backup() -> AsyncIterator[FakeUpstream]:
    server = await FakeUpstream(gemini_ok).start()
    yield server
    await server.close()


def two_routes(tmp_path: Path, primary: FakeUpstream, backup: FakeUpstream, **extra: str) -> Path:
    """Two Gemini routes for every Nano Banana model: `primary` (priority 1), `backup` (2)."""
    options = "\n".join(f"{k} = {v}" for k, v in extra.items())
    path = tmp_path / "routes.toml"
    path.write_text(
        f"""
[[routes]]
name = "primary"
provider = "gemini"
api_key = "{KEYS["gemini"]}"
base_url = "{primary.url}/v1beta"
priority = 1
{options}

[[routes]]
name = "backup"
provider = "gemini"
api_key = "{KEYS["gemini"]}"
base_url = "{backup.url}/v1beta"
priority = 2
"""
    )
    return path


@pytest.mark.parametrize(
    "failure",
    [
        g_error(503, "UNAVAILABLE", "The model is overloaded."),
        g_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", retry_delay="20s"),
        g_error(401, "UNAUTHENTICATED", "API key not valid."),
        Hang(10),
    ],
    ids=["503", "429", "401", "hang"],
)
async def test_a_failing_route_fails_over_within_the_attempt(
    upstream, backup, make_hub, tmp_path, failure
):
    upstream.handler = lambda seen: failure
    # only the primary has a short timeout: the backup must never time out, even when slow;
    # short, but long enough for a loaded machine's primary to be reached before it runs out
    hub = await make_hub(two_routes(tmp_path, upstream, backup, timeout_seconds="1"))
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "succeeded" and task.attempts == 1
    assert task.provider == "backup"
    assert len(upstream.seen) == 1 and len(backup.seen) == 1


async def test_a_route_cools_down_after_repeated_failures(upstream, backup, make_hub, tmp_path):
    upstream.handler = lambda seen: g_error(503, "UNAVAILABLE", "overloaded")
    hub = await make_hub(two_routes(tmp_path, upstream, backup))
    for _ in range(5):
        task = await run_task(hub, "nano-banana", NB)
        assert task.provider == "backup"
    # three consecutive failures, then the primary is skipped while it cools down
    assert len(upstream.seen) == 3 and len(backup.seen) == 5
    primary = hub.router.routes(hub.catalog.get("nano-banana"))[0]
    assert primary.name == "primary" and primary.health.cooling()


async def test_a_rate_limited_route_is_skipped_at_once(upstream, backup, make_hub, tmp_path):
    upstream.handler = lambda seen: g_error(429, "RESOURCE_EXHAUSTED", "slow", retry_delay="30s")
    hub = await make_hub(two_routes(tmp_path, upstream, backup))
    for _ in range(3):
        assert (await run_task(hub, "nano-banana", NB)).provider == "backup"
    assert len(upstream.seen) == 1


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (Reply(200, {"promptFeedback": {"blockReason": "SAFETY"}}), "content_policy_violation"),
        (g_error(400, "INVALID_ARGUMENT", "bad request"), "upstream_error"),
        (Reply(200, g_answer(finish="NO_IMAGE")), "no_image_generated"),
    ],
)
async def test_failures_of_the_request_itself_do_not_fail_over(
    upstream, backup, make_hub, tmp_path, failure, code
):
    upstream.handler = lambda seen: failure
    hub = await make_hub(two_routes(tmp_path, upstream, backup))
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "failed" and task.error.code == code
    assert len(backup.seen) == 0


async def test_when_every_route_fails_the_task_is_retried_later(
    upstream, backup, make_hub, tmp_path
):
    for server in (upstream, backup):
        server.then(g_error(503, "UNAVAILABLE", "overloaded"))
        server.handler = gemini_ok
    hub = await make_hub(two_routes(tmp_path, upstream, backup))
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "succeeded" and task.attempts == 2
    assert task.provider == "primary"


async def test_the_last_attempt_reports_the_error_and_the_attempts(upstream, make_hub):
    upstream.handler = lambda seen: g_error(503, "UNAVAILABLE", "The model is overloaded.")
    hub = await make_hub(gemini_api_key=KEYS["gemini"], gemini_base_url=upstream.url)
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "failed" and task.attempts == 3 and len(upstream.seen) == 3
    assert task.error == TaskFailure(
        code="upstream_unavailable",
        message="gemini is unavailable (HTTP 503: UNAVAILABLE The model is overloaded.) "
        "(gave up after 3 attempts)",
        retryable=False,  # the hub has stopped trying: retrying is over
    )
    assert task.provider == "gemini"  # the route of the last attempt


async def test_a_single_route_in_cool_down_is_still_tried(upstream, make_hub):
    upstream.then(*[g_error(503, "UNAVAILABLE", "overloaded")] * 3)
    upstream.handler = gemini_ok
    hub = await make_hub(gemini_api_key=KEYS["gemini"], gemini_base_url=upstream.url)
    failed = await run_task(hub, "nano-banana", NB)
    assert failed.status == "failed"
    # cooling down, but with no other route, trying beats failing without a call
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "succeeded" and task.attempts == 1


async def test_while_the_upstream_asks_for_a_pause_nothing_is_sent(upstream, make_hub):
    upstream.then(g_error(429, "RESOURCE_EXHAUSTED", "slow", retry_delay="1s"))
    upstream.handler = gemini_ok
    hub = await make_hub(gemini_api_key=KEYS["gemini"], gemini_base_url=upstream.url)
    first, _ = await hub.submit(TENANT, "nano-banana", NB)
    route = hub.router.routes(hub.catalog.get("nano-banana"))[0]
    for _ in range(1000):  # until the 429 has been seen and recorded
        if route.health.cooling():
            break
        await asyncio.sleep(0.01)
    second = await run_task(hub, "nano-banana", NB)
    first = await hub.wait(TENANT, first.id, 10)
    assert first.status == second.status == "succeeded"
    assert second.attempts == 2  # its first attempt ended at once, without a call
    assert len(upstream.seen) == 3
    assert min(s.at for s in upstream.seen[1:]) - upstream.seen[0].at >= 0.9


async def test_a_retry_after_beyond_the_budget_fails_at_once(upstream, make_hub):
    upstream.then(g_error(429, "RESOURCE_EXHAUSTED", "Daily quota", retry_delay="86400s"))
    hub = await make_hub(gemini_api_key=KEYS["gemini"], gemini_base_url=upstream.url)
    task = await run_task(hub, "nano-banana", NB)
    assert task.status == "failed" and task.attempts == 1
    assert task.error.code == "upstream_rate_limited"
    assert "asked to wait 86400 s, longer than this hub waits" in task.error.message


async def test_max_concurrency_sends_the_overflow_to_the_next_route(
    upstream, backup, make_hub, tmp_path
):
    upstream.handler = lambda seen: Reply(200, g_answer(g_image()), delay=1.0)
    hub = await make_hub(two_routes(tmp_path, upstream, backup, max_concurrency="1"))
    tasks = await asyncio.gather(*(run_task(hub, "nano-banana", NB) for _ in range(2)))
    assert sorted(t.provider for t in tasks) == ["backup", "primary"]


async def test_max_concurrency_queues_calls_when_no_other_route(upstream, make_hub, tmp_path):
    upstream.handler = lambda seen: Reply(200, g_answer(g_image()), delay=0.2)
    routes = tmp_path / "routes.toml"
    routes.write_text(
        f'[[routes]]\nprovider = "gemini"\napi_key = "k"\nbase_url = "{upstream.url}"\n'
        "max_concurrency = 1\n"
    )
    hub = await make_hub(routes)
    tasks = await asyncio.gather(*(run_task(hub, "nano-banana", NB) for _ in range(3)))
    assert all(t.status == "succeeded" and t.attempts == 1 for t in tasks)
    arrivals = sorted(s.at for s in upstream.seen)
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(arrivals))


async def test_no_route_and_no_demo_is_refused_at_submit_with_a_clear_message(make_hub):
    hub = await make_hub(demo=False)
    with pytest.raises(ModelUnavailable) as caught:
        await hub.submit(TENANT, "gpt-image-2", {"prompt": "x"})
    assert "no route serves gpt-image-2" in caught.value.message
    assert (await hub.list_tasks(TENANT)).tasks == []


async def test_a_task_whose_route_is_gone_when_it_runs_fails_with_a_clear_message(make_hub):
    hub = await make_hub(demo=True)
    assert hub.worker is not None
    hub.worker.router = Router({})  # the worker's routes changed after the submit
    task = await run_task(hub, "gpt-image-2", {"prompt": "x"})
    assert task.status == "failed" and task.error.code == "upstream_error"
    assert "no upstream route serves gpt-image-2" in task.error.message


def test_weights_share_the_load_within_a_priority():
    catalog = Catalog.load()
    model = catalog.get("nano-banana")
    heavy, light = ScriptedProvider(name="heavy"), ScriptedProvider(name="light")
    last = ScriptedProvider(name="last")
    routes = [
        Route(heavy, "m", weight=3),
        Route(light, "m", weight=1),
        Route(last, "m", priority=2),
    ]
    router = Router({"nano-banana": routes}, rng=random.Random(7))
    firsts = [router.routes(model)[0].name for _ in range(4000)]
    assert 0.7 < firsts.count("heavy") / 4000 < 0.8
    assert all(router.routes(model)[-1].name == "last" for _ in range(100))
