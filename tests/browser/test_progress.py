"""The playground's progress bar: the `progress` events of a task's stream, drawn in a real
browser. The demo provider finishes at once, so the stream the page reads is the hub's own
event format played by Playwright: a queued task, then progress events (one a revised, lower
estimate); the long-poll after the stream is held, so that the bar stays to be read."""

from __future__ import annotations

import json
from typing import Any

from tests.browser.conftest import Page, expect


def frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def progress(task_id: str, status: str, **fields: Any) -> str:
    data = {"task_id": task_id, "status": status, "queue_position": None, **fields}
    return frame("progress", {"eta_seconds": None, "progress": 0.0, **data})


def play(page: Page, events: list[Any]) -> None:
    """The page's next task stream answers with `events` (each a function of the task)."""

    def stream(route: Any) -> None:
        task_id = route.request.url.split("/tasks/")[1].split("/")[0]
        task = page.tab.evaluate(
            "async (id) => (await fetch('/hub/v1/tasks/' + id, {headers: {Authorization: "
            "'Bearer ' + sessionStorage.getItem('imagehub.apiKey')}})).json()",
            task_id,
        )
        queued = {**task, "status": "queued", "ready": False, "output": None, "usage": None}
        queued |= {"queue_position": 3, "eta_seconds": 50.0, "progress": 0.0}
        body = frame("task", queued) + "".join(event(task_id) for event in events)
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    page.tab.route("**/hub/v1/tasks/*/events", stream)
    # the long-poll after the stream: held, never answered while the test reads the bar
    page.tab.route("**/hub/v1/tasks/*?wait=*", lambda route: None)


def submit(page: Page) -> Any:
    tab = page.tab
    tab.select_option("#pg-model", "nano-banana-2")
    tab.fill("#f-prompt", "a slow lighthouse")
    tab.click("#pg-submit")
    return tab


def test_the_bar_shows_progress_never_going_back_elapsed_and_time_left(page: Page):
    tab = page.open("#playground")
    page.enter_key()
    play(
        page,
        [
            lambda t: progress(t, "queued", queue_position=2, eta_seconds=40, elapsed_seconds=3),
            lambda t: progress(t, "running", progress=0.5, eta_seconds=10, elapsed_seconds=12),
            # a revised estimate: the bar keeps what it showed
            lambda t: progress(t, "running", progress=0.4, eta_seconds=11, elapsed_seconds=13),
        ],
    )
    submit(page)
    bar = tab.locator("#pg-progress")
    expect(bar.locator(".task-bar-text")).to_have_text("13 s elapsed · about 11 s left")
    assert bar.locator("progress").evaluate("p => p.value") == 0.5
    assert bar.locator("progress").get_attribute("aria-label") == "Progress"
    page.screenshot("playground-progress", "#pg-status")


def test_a_queued_task_shows_its_place_in_chinese(zh_page: Page):
    tab = zh_page.open("#playground")
    zh_page.enter_key()
    play(
        zh_page,
        [lambda t: progress(t, "queued", queue_position=2, eta_seconds=40, elapsed_seconds=3)],
    )
    submit(zh_page)
    text = tab.locator("#pg-progress .task-bar-text")
    expect(text).to_have_text("队列中前面还有 2 个 · 已等待 3 秒 · 约剩 40 秒")
