"""The console's operator flows end to end, in English and Chinese: a real `imagehub serve`
whose Gemini route is a loopback fake (one of its models always answers 503, so its route cools
down), the day's tasks in a Chart.js chart, a task's every route call, and a failing webhook
retried from the console until the loopback receiver takes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import KEY, Server
from tests.acceptance.test_routing_truth import ThreadedUpstream
from tests.browser.conftest import Page, expect
from tests.providers.fake_upstream import Action, FakeUpstream, Seen
from tests.providers.wire import g_error, gemini_ok
from tests.webhook_receiver import Receiver

#: the upstream model of nano-banana-pro: the fake answers it 503, every time
BROKEN = "gemini-3-pro-image"
ENV = {
    "IMAGEHUB_GEMINI_API_KEY": "console-gemini-key",
    "IMAGEHUB_FETCH_ALLOW_PRIVATE": "127.0.0.1/32",
    "IMAGEHUB_RETRY_BASE_SECONDS": "0.05",
    "IMAGEHUB_POLL_SECONDS": "0.2",
    # long enough that the cool-down is still on while the browser looks
    "IMAGEHUB_ROUTE_COOLDOWN_SECONDS": "900",
    # a webhook that fails once has failed: only the console's retry sends it again
    "IMAGEHUB_WEBHOOK_RETRY_DELAYS": "[]",
}


def _gemini(seen: Seen) -> Action:
    if BROKEN in seen.path:
        return g_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    return gemini_ok(seen)


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeUpstream]:
    with ThreadedUpstream(FakeUpstream(_gemini)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gemini: FakeUpstream) -> Iterator[Server]:
    """Replaces the package's demo server: this one's only route is the Gemini fake."""
    env = {**ENV, "IMAGEHUB_GEMINI_BASE_URL": gemini.url + "/v1beta"}
    hub = Server(tmp_path_factory.mktemp("console") / "data", env)
    hub.start()
    yield hub
    hub.stop()


def submit(api: httpx.Client, model: str, **extra: Any) -> str:
    answer = api.post("/hub/v1/tasks", json={"model": model, "input": {"prompt": "a fox"}, **extra})
    assert answer.status_code in (200, 201, 202), answer.text
    return str(answer.json()["task_id"])


def wait_until(read: Any, done: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        assert time.monotonic() < deadline, value
        time.sleep(0.1)
    return value


def ready(api: httpx.Client, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = api.get(f"/hub/v1/tasks/{task_id}", params={"wait": 30}).json()
    assert task["ready"], task
    return task


def open_console(page: Page, lang: str, section: str) -> Any:
    tab = page.tab
    tab.goto(f"{page.server.url}/console?lang={lang}#{section}")
    tab.wait_for_selector("html[data-ready=true]")
    tab.fill("#console-key", KEY)
    tab.evaluate("document.documentElement.dataset.ready = 'false'")
    tab.locator("#console-key-form button[type=submit]").click()
    tab.wait_for_selector("html[data-ready=true]")
    expect(tab.locator("#console-body")).to_be_visible()
    return tab


LANGS = pytest.mark.parametrize("lang", ["en", "zh"])


@LANGS
def test_a_route_cools_down_after_its_upstream_fails(page: Page, api: httpx.Client, lang: str):
    assert ready(api, submit(api, "nano-banana-2"))["status"] == "succeeded"
    failed = ready(api, submit(api, "nano-banana-pro"))
    assert failed["status"] == "failed", failed

    def pro_route() -> dict[str, Any]:
        routes = api.get("/hub/v1/admin/routes").json()["data"]
        return next(r for r in routes if r["model"] == "nano-banana-pro")

    route = wait_until(pro_route, lambda r: r["cooling_until"] is not None)
    assert route["route"] == "gemini" and not route["healthy"]
    tab = open_console(page, lang, "routes")
    row = tab.locator("#routes-table tr[data-model='nano-banana-pro']")
    expect(row.locator("[data-state=cooling]")).to_contain_text(
        "cooling down until" if lang == "en" else "冷却中"
    )
    assert route["last_hour"]["errors"], route
    for code in route["last_hour"]["errors"]:
        expect(row).to_contain_text(code)
    expect(row.locator("td").nth(5)).to_have_text(str(route["last_hour"]["requests"]))
    # the model that works is healthy on the same route
    healthy = tab.locator("#routes-table tr[data-model='nano-banana-2'] [data-state]")
    expect(healthy).to_have_attribute("data-state", "healthy")


@LANGS
def test_a_failed_tasks_detail_lists_every_route_call(page: Page, api: httpx.Client, lang: str):
    task_id = submit(api, "nano-banana-pro")
    assert ready(api, task_id)["status"] == "failed"
    detail = api.get(f"/hub/v1/admin/tasks/{task_id}").json()
    calls = detail["route_calls"]
    assert len(calls) >= 1 and all(c["outcome"] != "succeeded" for c in calls)
    tab = open_console(page, lang, "tasks")
    tab.select_option("#tasks-filter [name=status]", "failed")
    tab.fill("#tasks-filter [name=model]", "nano-banana-pro")
    tab.locator("#tasks-filter button[type=submit]").click()
    row = tab.locator(f"#tasks-table tr[data-task-row='{task_id}']")
    expect(row).to_be_visible()
    expect(tab.locator("#tasks-table tbody tr [data-status]").first).to_have_text("failed")
    row.locator("[data-task]").click()
    attempts = tab.locator("#attempts-table tbody tr")
    expect(attempts).to_have_count(len(calls))
    for index, call in enumerate(calls):
        expect(attempts.nth(index)).to_contain_text(call["outcome"])
        expect(attempts.nth(index)).to_contain_text(call["route"])
    expect(tab.locator("#task-detail")).to_contain_text(detail["error"]["code"])
    # the other filters go to the API as they are: a tenant with no task lists none
    tab.select_option("#tasks-filter [name=status]", "")
    tab.fill("#tasks-filter [name=tenant]", "nobody")
    tab.locator("#tasks-filter button[type=submit]").click()
    expect(tab.locator("#tasks-table tbody tr")).to_have_count(1)
    expect(tab.locator("#tasks-table tbody td[colspan]")).to_be_visible()
    tab.fill("#tasks-filter [name=tenant]", "default")
    tab.fill("#tasks-filter [name=provider]", "gemini")
    tab.locator("#tasks-filter button[type=submit]").click()
    expect(row).to_be_visible()
    asked = [url for url in page.requests if "/hub/v1/admin/tasks?" in url][-1]
    assert "tenant_id=default" in asked and "provider=gemini" in asked


@LANGS
def test_the_usage_chart_shows_the_days_tasks(page: Page, api: httpx.Client, lang: str):
    for _ in range(2):
        assert ready(api, submit(api, "nano-banana-2"))["status"] == "succeeded"
    today = datetime.now(UTC).date().isoformat()
    report = api.get("/hub/v1/admin/usage", params={"group_by": "day"}).json()
    expected = next(g for g in report["groups"] if g["key"] == today)
    assert expected["tasks"] >= 2 and expected["images"] >= 2
    tab = open_console(page, lang, "usage")
    chart_js = """() => {
      const chart = window.Chart.getChart(document.getElementById('usage-chart'));
      return {labels: chart.data.labels, values: chart.data.datasets[0].data,
              label: chart.data.datasets[0].label};
    }"""
    drawn = tab.evaluate(chart_js)
    assert drawn["labels"][-1] == today
    assert drawn["values"][-1] == expected["tasks"]
    assert drawn["label"] == ("tasks" if lang == "en" else "任务数")
    # the canvas is drawn: the bars are there in pixels, not only in data
    painted = tab.evaluate(
        """() => {
      const canvas = document.getElementById('usage-chart');
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) n++;
      return n;
    }"""
    )
    assert painted > 1000
    row = tab.locator(f"#usage-table tr[data-usage-key='{today}']")
    expect(row.locator("td").first).to_have_text(str(expected["tasks"]))
    # another measure redraws the same chart
    tab.select_option("#usage-filter [name=metric]", "images")
    tab.wait_for_function(
        f"() => window.Chart.getChart(document.getElementById('usage-chart'))"
        f".data.datasets[0].data.at(-1) === {expected['images']}"
    )
    # by model: one bar per model that ran
    tab.select_option("#usage-filter [name=group_by]", "model")
    expect(tab.locator("#usage-table tr[data-usage-key='nano-banana-2']")).to_be_visible()


@LANGS
def test_a_failed_webhook_is_retried_from_the_console(
    page: Page, api: httpx.Client, receiver: Receiver, lang: str
):
    receiver.script = [500]  # fails once, then takes every delivery
    task_id = submit(api, "nano-banana-2", webhook_url=receiver.url)
    ready(api, task_id)
    receiver.wait_for(1)

    def delivery() -> dict[str, Any]:
        found = api.get("/hub/v1/admin/webhooks/deliveries", params={"state": "failing"}).json()
        return next((d for d in found["data"] if d["task_id"] == task_id), {})

    failed = wait_until(delivery, lambda d: d.get("state") == "failed")
    tab = open_console(page, lang, "webhooks")
    row = tab.locator(f"#webhooks-table tr[data-task='{task_id}']")
    expect(row.locator("[data-state]")).to_have_text("failed")
    expect(row).to_contain_text("HTTP 500")
    if lang == "en":  # the whole console, every section with data (docs/assets/console.png)
        page.screenshot("console")
    row.locator("[data-retry]").click()
    receiver.wait_for(2)
    expect(tab.locator("#webhooks-message")).to_have_attribute("data-kind", "ok")
    expect(tab.locator("#webhooks-message")).to_contain_text("succeeded")
    # the failing list no longer has it; the whole list shows it delivered
    expect(row).to_have_count(0)
    tab.uncheck("#webhooks-filter [name=failing]")
    expect(row.locator("[data-state]")).to_have_text("succeeded")
    # the task's detail shows its webhook too
    tab.locator("a[href='#tasks']").click()
    tab.locator("#tasks-filter button[type=submit]").click()
    tab.locator(f"#tasks-table [data-task='{task_id}']").click()
    expect(tab.locator("#task-detail [data-state]")).to_have_text("succeeded")
    expect(tab.locator("#task-detail")).to_contain_text(receiver.url)
    after = api.get(f"/hub/v1/tasks/{task_id}/webhook").json()
    assert after["state"] == "succeeded" and after["attempts"] == failed["attempts"] + 1
    assert receiver.received[1].headers["webhook-id"] == f"msg_{task_id}"
