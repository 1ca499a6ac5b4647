"""The Model Reference page in a real browser against a real `imagehub serve` (demo provider)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import KEY, Server
from tests.browser.conftest import Page, expect

#: the visible text of every cell of a card's parameter table (screen-reader-only text left out)
ROWS_JS = """card => [...card.querySelectorAll('table.params tbody tr')].map(row =>
  [...row.children].map(cell => {
    const copy = cell.cloneNode(true);
    copy.querySelectorAll('.sr-only').forEach(n => n.remove());
    return copy.textContent.replace(/\\s+/g, ' ').trim();
  }))"""


DASH = "\u2013"  # what an empty cell shows


def expected_row(param: dict[str, Any]) -> list[str]:
    """A row of the page's table, from the parameter as GET /hub/v1/models shows it."""
    default = param["default"]
    if default is None:
        default_text = DASH
    elif isinstance(default, bool):
        default_text = str(default).lower()
    else:
        default_text = '""' if default == "" else str(default)
    if param["values"]:
        range_text = " ".join(param["values"])
    elif param["type"] == "string[]":
        range_text = f"{param['minimum'] or 0} to {param['maximum']} items"
    elif param["minimum"] is not None and param["maximum"] is not None:
        range_text = f"{param['minimum']} to {param['maximum']}"
    elif param["type"] == "oneOf":
        range_text = "preset, auto or {width, height}"
    else:
        range_text = DASH
    required = "✓" if param["required"] else DASH
    return [
        param["name"],
        param["type"],
        required,
        default_text,
        range_text,
        param["description"],
    ]


def anchor(model_id: str) -> str:
    return "#model-" + model_id.replace("/", "--")


def open_card(tab: Any, model_id: str) -> Any:
    card = tab.locator(anchor(model_id))
    panel_id = card.evaluate("c => c.closest('[role=tabpanel]').id")
    tab.click(f"[aria-controls='{panel_id}']")
    if card.get_attribute("open") is None:
        card.locator(":scope > summary").click()
    assert card.get_attribute("open") is not None
    return card


def test_tabs_by_capability_with_counts_by_mouse_and_keyboard(page: Page):
    tab = page.open()
    tabs = tab.get_by_role("tab", name="Text to image · 4")
    edit = tab.get_by_role("tab", name="Image to image / Edit · 4")
    assert tabs.get_attribute("aria-selected") == "true"
    assert tab.locator("#panel-text-to-image").is_visible()
    assert not tab.locator("#panel-image-to-image").is_visible()
    page.screenshot("page")

    edit.click()
    assert edit.get_attribute("aria-selected") == "true"
    assert tab.locator("#panel-image-to-image").is_visible()
    assert not tab.locator("#panel-text-to-image").is_visible()
    assert tab.locator("#panel-image-to-image .model-card").count() == 4

    # the ARIA tabs pattern: arrows move the selection and the focus; one tab stop
    edit.focus()
    tab.keyboard.press("ArrowLeft")
    assert tabs.get_attribute("aria-selected") == "true"
    assert tab.evaluate("document.activeElement.id") == "tab-text-to-image"
    assert tabs.get_attribute("tabindex") == "0" and edit.get_attribute("tabindex") == "-1"
    tab.keyboard.press("End")
    assert edit.get_attribute("aria-selected") == "true"

    # the next Tab stop is the panel's first card; Enter on its summary opens it
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.closest('.model-card').dataset.model") == (
        "nano-banana/edit"
    )
    tab.keyboard.press("Enter")
    assert tab.locator(anchor("nano-banana/edit")).get_attribute("open") is not None


def test_skip_link_is_the_first_stop_and_lands_on_main(page: Page):
    tab = page.open()
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.textContent") == "Skip to content"
    tab.keyboard.press("Enter")
    assert tab.evaluate("document.activeElement.id") == "main"


def test_every_card_table_matches_the_models_api(page: Page, api: httpx.Client):
    tab = page.open()
    models = api.get("/hub/v1/models").json()["data"]
    assert len(models) == 8
    for model in models:
        card = open_card(tab, model["id"])
        assert card.locator("table.params").is_visible()
        headers = card.locator("table.params thead th").all_inner_texts()
        assert [h.strip().lower() for h in headers] == [
            "parameter",
            "type",
            "required",
            "default",
            "values / range",
            "description",
        ]
        assert card.evaluate(ROWS_JS) == [expected_row(p) for p in model["parameters"]]
        assert model["name"] in card.locator(":scope > summary").inner_text()
    open_card(tab, "nano-banana-2")
    page.screenshot("model-card", anchor("nano-banana-2"))


def test_a_copied_curl_example_runs_against_the_hub(page: Page, server: Server, api: httpx.Client):
    if shutil.which("curl") is None or shutil.which("bash") is None:
        pytest.skip("needs curl and bash to run the copied example")
    tab = page.open()
    card = open_card(tab, "nano-banana")
    card.get_by_role("tab", name="curl").click()
    copy = card.get_by_role("button", name="Copy Example for nano-banana: curl")
    copy.click()
    expect(copy).to_have_text("Copied")
    copied = tab.evaluate("navigator.clipboard.readText()")
    assert copied == card.locator("code[data-lang=curl]").text_content()
    assert server.url in copied and KEY not in copied

    run = subprocess.run(
        ["bash", "-c", copied],
        env={**os.environ, "IMAGEHUB_API_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=45,
        check=True,
    )
    task = json.loads(run.stdout)
    assert task["model"] == "nano-banana" and task["status"] == "succeeded"
    example = api.get("/hub/v1/models/nano-banana").json()["example"]
    assert {k: task["input"][k] for k in example["input"]} == example["input"]
    image = httpx.get(task["output"]["images"][0]["url"], timeout=10)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_language_tabs_follow_each_other(page: Page):
    tab = page.open()
    card = open_card(tab, "gpt-image-2")
    card.get_by_role("tab", name="Python").click()
    python = card.locator("code[data-lang=python]")
    assert python.is_visible() and "from imagehub.client import Client" in python.inner_text()
    # every other switcher follows, the endpoint's polling loop included
    assert tab.locator("#loop-panel-python").is_visible()
    assert not tab.locator("#loop-panel-curl").is_visible()


def test_try_it_opens_the_model_in_the_playground(page: Page):
    tab = page.open()
    card = open_card(tab, "gpt-image-2/edit")
    card.get_by_role("link", name="Try it in the playground").click()
    expect(tab.locator("#pg-model")).to_have_value("gpt-image-2/edit")
    assert tab.evaluate("document.activeElement.id") == "pg-model"
    expect(tab.locator("#f-image_size")).to_have_value("auto")  # this model's own default
    tab.locator(".request-preview summary").click()
    body = json.loads(tab.locator("#pg-body").inner_text())
    assert body["model"] == "gpt-image-2/edit" and "image_urls" in body["input"]


def test_without_javascript_the_reference_still_reads(browser: Any, server: Server):
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto(server.url + "/")
        # every capability panel shows, the tab strip and the playground form hide
        assert tab.locator("#panel-image-to-image").is_visible()
        assert not tab.locator(".cap-tabs").is_visible()
        assert not tab.locator("#pg-form").is_visible()
        assert tab.locator(".js-required").first.is_visible()
        card = tab.locator(anchor("nano-banana-2/edit"))
        card.locator(":scope > summary").click()
        assert card.locator("table.params").is_visible()
        assert card.locator("code[data-lang=python]").is_visible()  # every language shows
    finally:
        context.close()
