"""The playground and the history, in a real browser against a real hub (demo provider)."""

from __future__ import annotations

import httpx

from tests.acceptance.conftest import KEY
from tests.browser.conftest import Page, expect

PAGE_SIZE = 12  # the history's page size (gallery.js)
TIMES = " \u00d7 "  # width x height, as the page writes it


def test_without_a_key_the_playground_asks_for_one(page: Page):
    tab = page.open("#playground")
    tab.click("#pg-submit")
    expect(tab.locator("#key-status")).to_have_text("Paste your API key first.")
    assert tab.evaluate("document.activeElement.id") == "api-key"
    page.enter_key("ih_not_a_key")
    tab.click("#pg-submit")
    expect(tab.locator("#key-status")).to_have_text("The hub does not know this key.")


def test_the_key_stays_in_the_browser_and_goes_only_to_the_hub(page: Page):
    tab = page.open()
    page.enter_key()
    assert tab.evaluate("sessionStorage.getItem('imagehub.apiKey')") == KEY
    assert tab.evaluate("localStorage.getItem('imagehub.apiKey')") is None
    tab.check("#key-remember")
    assert tab.evaluate("localStorage.getItem('imagehub.apiKey')") == KEY
    tab.reload()
    expect(tab.locator("#api-key")).to_have_value(KEY)
    tab.click("#key-forget")
    assert tab.evaluate("localStorage.getItem('imagehub.apiKey')") is None
    assert all(url.startswith(page.server.url) for url in page.requests), page.requests
    assert page.authorized and all("/hub/v1/" in url for url in page.authorized)


def test_submit_watch_live_and_see_the_images(page: Page, api: httpx.Client):
    tab = page.open("#playground")
    page.enter_key()
    tab.select_option("#pg-model", "nano-banana-2")
    # the form is drawn from the parameter table
    model = api.get("/hub/v1/models/nano-banana-2").json()
    fields = tab.locator("#pg-fields [data-field]").evaluate_all("n => n.map(f => f.dataset.field)")
    assert fields == [p["name"] for p in model["parameters"]]
    options = tab.locator("#f-resolution option").all_inner_texts()
    assert options == ["0.5K", "1K (default)", "2K", "4K"]
    expect(tab.locator("#f-num_images")).to_have_attribute("max", "4")
    assert tab.locator("#f-sync_mode").get_attribute("role") == "switch"

    tab.fill("#f-prompt", "a red kite over green hills")
    tab.select_option("#f-resolution", "0.5K")
    tab.select_option("#f-aspect_ratio", "16:9")
    tab.select_option("#f-output_format", "webp")
    tab.fill("#f-num_images", "2")
    tab.click("#pg-submit")

    figures = tab.locator("#pg-output figure")
    expect(figures).to_have_count(2)
    expect(tab.locator("#pg-status .badge")).to_have_text("succeeded")
    captions = figures.locator(".image-meta").all_inner_texts()
    assert all(c.startswith(f"688{TIMES}384 · WEBP · ") for c in captions), captions
    loaded = figures.locator("img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert loaded == [688, 688]
    # the status came over the server-sent events stream
    assert any(url.endswith("/events") for url in page.requests)
    task_id = tab.locator("#pg-status code").inner_text()
    task = api.get(f"/hub/v1/tasks/{task_id}").json()
    assert task["input"]["prompt"] == "a red kite over green hills"
    assert task["input"]["resolution"] == "0.5K" and task["input"]["num_images"] == 2
    page.screenshot("playground", "#playground")


def test_the_hubs_422_messages_land_on_the_fields(page: Page):
    tab = page.open("#playground")
    page.enter_key()
    tab.fill("#f-num_images", "9")
    tab.fill("#f-prompt", "")
    tab.click("#pg-submit")
    field = tab.locator("[data-field=num_images]")
    expect(field).to_have_class("field invalid")
    expect(field.locator(".field-error")).to_have_text("must be <= 4")
    assert tab.locator("#f-num_images").get_attribute("aria-invalid") == "true"
    expect(tab.locator("[data-field=prompt] .field-error")).to_have_text("must not be empty")
    summary = tab.locator("#pg-errors")
    expect(summary).to_be_visible()
    assert "num_images: must be <= 4" in summary.inner_text()
    assert tab.evaluate("document.activeElement.id") == "pg-errors"
    summary.get_by_role("link", name="num_images: must be <= 4").click()
    assert tab.evaluate("document.activeElement.id") == "f-num_images"
    page.screenshot("playground-errors", "#pg-form")

    # GPT Image: a custom size breaking the hub's rules
    tab.select_option("#pg-model", "gpt-image-2")
    tab.select_option("#f-image_size", "custom")
    tab.fill("#f-image_size-width", "1000")
    tab.fill("#f-image_size-height", "1000")
    tab.click("#pg-submit")
    size = tab.locator("[data-field=image_size]")
    expect(size.locator(".field-error")).to_have_text("both sides must be multiples of 16")
    # a valid custom size goes through
    tab.fill("#f-prompt", "a menu board")
    tab.fill("#f-image_size-width", "1024")
    tab.fill("#f-image_size-height", "768")
    tab.click("#pg-submit")
    expect(tab.locator("#pg-status .badge")).to_have_text("succeeded")
    expect(tab.locator("#pg-output .image-meta")).to_contain_text(f"1024{TIMES}768 · PNG")
    expect(size.locator(".field-error")).to_be_hidden()


def test_a_failed_task_shows_its_error_code_and_message(page: Page):
    tab = page.open("#playground")
    page.enter_key()
    tab.select_option("#pg-model", "nano-banana/edit")
    # nothing listens on port 9: the download of the input image fails
    page.allowed.append("http://127.0.0.1:9/")
    tab.fill("#f-image_urls", "http://127.0.0.1:9/photo.png")
    tab.click("[data-field=image_urls] >> text=Add URL")
    tab.click("#pg-submit")
    expect(tab.locator("#pg-status .badge")).to_have_text("failed")
    error = tab.locator("#pg-output .task-error")
    expect(error.locator("strong")).to_have_text("image_download_error")
    expect(error.locator("p")).to_contain_text("could not be downloaded")


def test_an_uploaded_image_is_edited(page: Page, tmp_path):
    from imagehub.testing import tiny_png

    photo = tmp_path / "photo.png"
    photo.write_bytes(tiny_png(64, 48))
    tab = page.open("#playground")
    page.enter_key()
    tab.select_option("#pg-model", "gpt-image-2/edit")
    tab.set_input_files("[data-field=image_urls] input[type=file]", str(photo))
    expect(tab.locator("[data-field=image_urls] .image-list img")).to_have_count(1)
    tab.fill("#f-prompt", "make it blue")
    tab.click("#pg-submit")
    expect(tab.locator("#pg-status .badge")).to_have_text("succeeded")
    expect(tab.locator("#pg-output figure")).to_have_count(1)


def test_the_history_pages_and_opens_a_task(page: Page, api: httpx.Client):
    while len(api.get("/hub/v1/tasks", params={"limit": 200}).json()["data"]) <= PAGE_SIZE + 2:
        body = {"model": "nano-banana", "input": {"prompt": "history", "output_format": "jpeg"}}
        assert api.post("/hub/v1/tasks", json=body).status_code == 202
    first = api.get("/hub/v1/tasks", params={"limit": PAGE_SIZE}).json()
    second = api.get(
        "/hub/v1/tasks", params={"limit": PAGE_SIZE, "cursor": first["next_cursor"]}
    ).json()

    tab = page.open("#history")
    page.enter_key()
    cards = tab.locator("#gallery .task-card")
    expect(cards).to_have_count(PAGE_SIZE)
    ids = cards.evaluate_all("cs => cs.map(c => c.dataset.taskId)")
    assert ids == [t["task_id"] for t in first["data"]]
    expect(tab.locator("#gallery-prev")).to_be_disabled()
    page.screenshot("gallery", "#history")

    tab.click("#gallery-next")
    expect(tab.locator("#gallery-page")).to_have_text("Page 2")
    expect(cards.first).to_have_attribute("data-task-id", second["data"][0]["task_id"])
    ids = cards.evaluate_all("cs => cs.map(c => c.dataset.taskId)")
    assert ids == [t["task_id"] for t in second["data"]]
    tab.click("#gallery-prev")
    expect(tab.locator("#gallery-page")).to_have_text("Page 1")
    expect(cards.first).to_have_attribute("data-task-id", first["data"][0]["task_id"])

    # a card opens the task's details in a modal dialog; Escape closes it, focus returns
    newest = first["data"][0]
    cards.first.click()
    dialog = tab.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#task-dialog-title")).to_have_text(newest["task_id"])
    expect(dialog.locator(".kv")).to_contain_text(newest["model"])
    expect(dialog.locator("pre code")).to_contain_text(newest["input"]["prompt"])
    page.screenshot("task-details", "#task-dialog")
    tab.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert tab.evaluate("document.activeElement.dataset.taskId") == newest["task_id"]


def test_readable_at_phone_width(phone: Page):
    tab = phone.open("#model-nano-banana-2")
    phone.enter_key()
    assert tab.locator("#model-nano-banana-2").get_attribute("open") is not None
    # nothing is wider than the screen: no sideways scrolling
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # the parameter table turns into one block per parameter
    row = tab.locator("#model-nano-banana-2 tr[data-param=num_images]")
    box = row.bounding_box()
    assert box is not None and box["width"] <= 390
    assert tab.evaluate("getComputedStyle(document.querySelector('.params td.desc')).display") == (
        "block"
    )
    tab.evaluate("() => window.scrollTo(0, 0)")
    phone.screenshot("page-phone", full=False)
    phone.screenshot("model-card-phone", "#model-nano-banana-2")
    tab.locator("#playground").scroll_into_view_if_needed()
    phone.screenshot("playground-phone", "#pg-form")


CONTROLS = "#playground input, #playground select, #playground textarea"
UNLABELLED_JS = f"""() => [...document.querySelectorAll('{CONTROLS}')]
  .filter(c => !(c.labels.length || c.getAttribute('aria-label')
    || c.getAttribute('aria-labelledby'))).map(c => c.outerHTML)"""


def test_every_control_of_every_models_form_has_a_label(page: Page, api: httpx.Client):
    tab = page.open("#playground")
    for model in api.get("/hub/v1/models").json()["data"]:
        tab.select_option("#pg-model", model["id"])
        names = tab.locator("#pg-fields [data-field]").evaluate_all(
            "n => n.map(f => f.dataset.field)"
        )
        assert names == [p["name"] for p in model["parameters"]]
        assert tab.evaluate(UNLABELLED_JS) == [], model["id"]
        # every hint and error a control points at exists
        missing = tab.evaluate(
            """() => [...document.querySelectorAll('#pg-fields [aria-describedby]')]
              .flatMap(c => c.getAttribute('aria-describedby').split(' '))
              .filter(id => !document.getElementById(id))"""
        )
        assert missing == [], model["id"]


def test_a_grounded_task_shows_its_search_suggestions_and_sources(page: Page):
    tab = page.open()
    task = {
        "status": "succeeded",
        "warnings": [],
        "output": {
            "images": [],
            "grounding": {
                "queries": ["lighthouse at dusk"],
                "search_entry_point": "<div>suggestions</div>",
                "sources": [{"uri": "https://example.com/a", "title": "A page"}],
            },
        },
    }
    found = tab.evaluate(
        """async (task) => {
            const { taskOutput } = await import("/static/render.js");
            const box = taskOutput(task).find((n) => n.classList.contains("grounding"));
            return [...box.querySelectorAll("a")].map((a) => [a.textContent, a.href]);
        }""",
        task,
    )
    assert found == [
        ["lighthouse at dusk", "https://www.google.com/search?q=lighthouse%20at%20dusk"],
        ["A page", "https://example.com/a"],
    ]
