"""The hub is wired in one place, its parts share one of each collaborator, nothing calls up
to the hub (a finished task is announced on the notifier), and the free route is found by its
kind, never by its name."""

from __future__ import annotations

import inspect
import subprocess
import sys

from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.providers import GeneratedImage, GenerationResult
from imagehub.routing.router import Route, Router
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.tasks import Task, TaskStatus
from imagehub.tenancy.accounts import Limits
from imagehub.testing import ScriptedProvider, memory_hub, tiny_png
from imagehub.wakeups.notifier import Notifier
from imagehub.wiring import build_hub
from imagehub.worker import Worker

TASK = {"prompt": "a fox"}  # nano-banana: $0.039 an image on fal and on Google


def test_an_api_process_has_no_worker_and_a_worker_process_shares_its_parts():
    settings = Settings()
    api = build_hub(settings, run_worker=False, store=MemoryStore(), media=MemoryMedia())
    assert api.worker is None and api.webhooks is None

    hub = build_hub(settings, store=MemoryStore(), media=MemoryMedia())
    assert hub.worker is not None and hub.webhooks is not None
    assert hub.worker.store is hub.store and hub.webhooks.store is hub.store
    assert hub.worker.fetcher is hub.fetcher and hub.worker.notifier is hub.notifier
    assert hub.worker.pricing is hub.pricing
    assert hub.webhooks.accounts is hub.accounts


def test_a_worker_behind_the_demo_only_claims_what_its_image_processes_keep_busy():
    settings = Settings(demo=True, image_processes=1, worker_concurrency=64)
    demo = build_hub(settings, store=MemoryStore(), media=MemoryMedia())
    assert demo.worker is not None
    assert demo.worker.concurrency == 2 * demo.work.capacity == 4
    # tasks that call an upstream mostly wait on the network: the setting holds
    router = Router({"nano-banana": [Route(ScriptedProvider(), "up")]})
    upstream = build_hub(settings, router=router, store=MemoryStore(), media=MemoryMedia())
    assert upstream.worker is not None and upstream.worker.concurrency == 64


def test_the_hub_and_the_worker_build_nothing_themselves():
    hub_params = inspect.signature(Hub.__init__).parameters
    assert {"validator", "metrics", "policy", "accounts", "fetcher", "worker", "webhooks"} <= set(
        hub_params
    )
    # the worker gets no way to call its owner back
    assert "on_finish" not in inspect.signature(Worker.__init__).parameters
    assert not hasattr(Hub, "from_settings")


def test_a_finished_task_wakes_its_watchers_and_every_listener():
    notifier = Notifier()
    heard: list[str] = []
    notifier.on_finished(lambda task: heard.append(f"a:{task.id}"))
    notifier.on_finished(lambda task: heard.append(f"b:{task.id}"))
    task = Task(id="tsk_1", tenant_id="t", model="nano-banana", input={})
    with notifier.watch("tsk_1", ready_only=True) as changed:
        notifier.task_finished(task.replace(status=TaskStatus.CANCELED))
        assert changed.is_set()
    assert heard == ["a:tsk_1", "b:tsk_1"]


def test_the_webhook_sender_wakes_only_for_a_task_with_a_webhook():
    hub = memory_hub()
    assert hub.webhooks is not None
    plain = Task(id="tsk_1", tenant_id="t", model="nano-banana", input={})
    hub.notifier.task_finished(plain)
    assert not hub.webhooks._wake.is_set()
    hub.notifier.task_finished(plain.replace(id="tsk_2", webhook_url="https://example.com/h"))
    assert hub.webhooks._wake.is_set()


async def test_metrics_count_a_task_the_worker_finished_through_the_notifier():
    hub = memory_hub(ScriptedProvider(), poll_seconds=0.05)
    await hub.start()
    try:
        task, _ = await hub.submit("t", "nano-banana", dict(TASK))
        done = await hub.wait("t", task.id, 10)
    finally:
        await hub.stop()
    assert done.status == TaskStatus.SUCCEEDED
    text = (await hub.metrics_text()).decode()
    assert 'imagehub_tasks_finished_total{model="nano-banana",provider="scripted"' in text


def test_the_webhook_sender_never_imports_the_api():
    code = (
        "import sys, imagehub.webhooks.sender\n"
        "print(sorted(m for m in sys.modules if m.startswith('imagehub.api')))"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "[]"


async def reserved_and_cost(
    route: Route, model: str = "nano-banana"
) -> tuple[int, float, str | None]:
    """What a task on this one route reserves of a key's budget, and what it then costs."""
    router = Router({model: [route]})
    hub = build_hub(
        Settings(poll_seconds=0.05),
        router=router,
        store=MemoryStore(),
        media=MemoryMedia(),
        notifier=Notifier(),
    )
    await hub.start()
    try:
        _, key = await hub.accounts.create_key("t", limits=Limits(budget_micros=10_000_000))
        task, _ = await hub.submit("t", model, dict(TASK), key=key)
        reserved = (await hub.accounts.key(key.id)).reserved_micros
        done = await hub.wait("t", task.id, 10)
    finally:
        await hub.stop()
    assert done.usage is not None, done.error
    return reserved, done.usage.cost_usd, done.usage.basis


async def test_a_provider_named_demo_is_still_charged():
    route = Route(ScriptedProvider(name="demo"), "up")
    assert await reserved_and_cost(route) == (39_000, 0.039, "per_image")


async def test_a_route_of_the_demo_kind_is_free_whatever_its_name():
    route = Route(ScriptedProvider(name="scripted"), "up", kind="demo")
    assert await reserved_and_cost(route) == (0, 0.0, "per_image")


async def test_a_stand_in_for_openai_reserves_the_table_and_settles_on_its_tokens():
    result = GenerationResult(
        images=(GeneratedImage(tiny_png(), "image/png"),),
        input_tokens=50,
        output_tokens=1290,
        input_image_tokens=0,
        output_text_tokens=0,
    )
    provider = ScriptedProvider(kind="openai", script=[result])
    reserved, cost, basis = await reserved_and_cost(Route(provider, "up"), "gpt-image-2")
    # landscape_4_3 at high quality lists $0.15; the prompt "a fox" is 5 bytes at $5/1M
    assert reserved == 150_000 + 5 * 5
    assert (cost, basis) == ((50 * 5 + 1290 * 30) / 1e6, "tokens")
