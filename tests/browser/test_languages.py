"""The page in Chinese and English in a real browser: the seed's wording, the switch, previews."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Page, expect

INTRO = "在下方按能力分类的标签页中挑选模型,点击展开即可查看参数表和可直接复制的请求示例。"
POLL = "GET /hub/v1/tasks/:taskId,直到 ready = true。"
#: every element that must show whole at any width: tabs, model ids, value chips, the switch
WHOLE = ".cap-tabs [role=tab], .model-id code, .chip, .lang-switch a, .nav-links a"
CLIPPED_JS = f"""() => [...document.querySelectorAll('{WHOLE}')]
  .filter(n => n.getClientRects().length)
  .filter(n => {{
    const box = n.getBoundingClientRect();
    return n.scrollWidth > n.clientWidth + 1 || box.left < -0.5
      || box.right > document.documentElement.clientWidth + 0.5;
  }}).map(n => n.outerHTML.slice(0, 120))"""


def words(tab: Any, selector: str) -> str:
    return re.sub(r"\s+", " ", tab.locator(selector).inner_text()).strip()


def test_the_chinese_page_reads_in_the_seeds_words(zh_page: Page, api: httpx.Client):
    # the browser asks for Chinese (Accept-Language: zh-CN): no choice needed
    tab = zh_page.open()
    assert tab.evaluate("document.documentElement.lang") == "zh-CN"
    expect(tab.locator("h1")).to_have_text("模型参考(Model Reference)")
    expect(tab.locator("#endpoint-title")).to_have_text("接口地址")
    assert POLL in words(tab, "#endpoint .steps")
    assert INTRO in words(tab, "#models")
    text_tab = tab.get_by_role("tab", name="文生图 · 4", exact=True)
    edit_tab = tab.get_by_role("tab", name="图生图 / 编辑 · 4", exact=True)
    expect(text_tab).to_have_attribute("aria-selected", "true")
    edit_tab.click()
    expect(tab.locator("#panel-image-to-image")).to_be_visible()
    text_tab.click()
    # the table's headings are Chinese; names, values and examples are the API's
    card = tab.locator("#model-nano-banana-2")
    card.locator(":scope > summary").click()
    expect(card.locator("table.params thead")).to_contain_text("参数")
    # the price table too: the route's name as configured, its words Chinese
    expect(card.locator("table.prices thead")).to_contain_text("路由")
    expect(card.locator("table.prices tbody")).to_contain_text("免费(离线占位图)")
    expect(card.locator("tr[data-param=aspect_ratio] .chip").first).to_have_text("auto")
    expect(card.locator("tr[data-param=prompt] .desc")).to_have_text(
        "用平实的语言描述图片要呈现的内容。"
    )
    assert '"model": "nano-banana-2"' in card.locator("[id$=-code-curl]").inner_text()
    # the scripts speak Chinese too: the playground's form and the history
    expect(tab.locator("#gallery-status")).to_contain_text("API 密钥")
    tab.select_option("#pg-model", "nano-banana-2")
    expect(tab.locator("[data-field=prompt] .field-hint")).to_have_text(
        "必填。 用平实的语言描述图片要呈现的内容。"
    )
    expect(tab.locator("[data-field=num_images] .field-hint")).to_contain_text("1 到 4。")
    expect(tab.locator("#f-aspect_ratio option[value=auto]")).to_have_text(
        "auto\uff08默认\uff09"
    )  # full-width parentheses
    card.locator(":scope > summary").click()
    zh_page.enter_key()
    expect(tab.locator("#gallery-page")).to_have_text("第 1 页")
    tab.evaluate("() => window.scrollTo(0, 0)")
    zh_page.screenshot("page-zh")


def test_the_switch_changes_language_and_keeps_the_page_as_it_was(page: Page):
    tab = page.open()
    assert tab.evaluate("document.documentElement.lang") == "en"
    switch = tab.get_by_role("navigation", name="Language")
    expect(switch.get_by_role("link", name="English")).to_have_attribute("aria-current", "true")
    tab.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot("page-en")

    # a tab, a card, and a model in the playground with typed values
    tab.get_by_role("tab", name="Image to image / Edit · 4").click()
    card = tab.locator("#model-nano-banana-pro--edit")
    card.locator(":scope > summary").click()
    tab.select_option("#pg-model", "nano-banana-2")
    tab.fill("#f-prompt", "一座海边灯塔 · a lighthouse at dusk")
    tab.fill("#f-num_images", "3")
    tab.select_option("#f-aspect_ratio", "8:1")
    tab.check("#f-enable_web_search")

    switch.get_by_role("link", name="中文").click()
    tab.wait_for_url(re.compile(r"\?lang=zh"))
    tab.wait_for_selector("html[lang=zh-CN][data-ready=true]")
    expect(tab.locator("h1")).to_have_text("模型参考(Model Reference)")
    kept(tab, "图生图 / 编辑 · 4")
    # the choice is saved: the plain address opens in Chinese now
    cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
    assert cookies["imagehub_lang"] == "zh"
    page.open()
    assert tab.evaluate("document.documentElement.lang") == "zh-CN"
    # the state is restored once, after a switch only: a reload starts afresh
    assert tab.evaluate("sessionStorage.getItem('imagehub.pageState')") is None

    # and back: the same state again, the page in English
    tab.get_by_role("tab", name="图生图 / 编辑 · 4").click()
    tab.locator("#model-nano-banana-pro--edit > summary").click()
    tab.select_option("#pg-model", "nano-banana-2")
    tab.fill("#f-prompt", "一座海边灯塔 · a lighthouse at dusk")
    tab.fill("#f-num_images", "3")
    tab.select_option("#f-aspect_ratio", "8:1")
    tab.check("#f-enable_web_search")
    tab.get_by_role("navigation", name="语言").get_by_role("link", name="English").click()
    tab.wait_for_selector("html[lang=en][data-ready=true]")
    kept(tab, "Image to image / Edit · 4")
    assert {c["name"]: c["value"] for c in tab.context.cookies()}["imagehub_lang"] == "en"


def kept(tab: Any, edit_tab_name: str) -> None:
    """The state the switch test set up, after the reload into the other language."""
    expect(tab.get_by_role("tab", name=edit_tab_name)).to_have_attribute("aria-selected", "true")
    expect(tab.locator("#panel-image-to-image")).to_be_visible()
    assert tab.locator("#model-nano-banana-pro--edit").get_attribute("open") is not None
    expect(tab.locator("#pg-model")).to_have_value("nano-banana-2")
    expect(tab.locator("#f-prompt")).to_have_value("一座海边灯塔 · a lighthouse at dusk")
    expect(tab.locator("#f-num_images")).to_have_value("3")
    expect(tab.locator("#f-aspect_ratio")).to_have_value("8:1")
    expect(tab.locator("#f-enable_web_search")).to_be_checked()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_nothing_is_clipped_at_360_pixels(narrow: Page, lang: str):
    tab = narrow.open(f"?lang={lang}#model-nano-banana-2")
    assert tab.locator("#model-nano-banana-2").get_attribute("open") is not None
    tab.locator("#model-gpt-image-2 > summary").click()
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert tab.evaluate(CLIPPED_JS) == []
    narrow.screenshot(f"models-360-{lang}", "#model-nano-banana-2")
    tab.get_by_role("tab", name=re.compile("(Image to image|图生图)")).click()
    tab.locator("#model-nano-banana-2--edit > summary").click()
    assert tab.evaluate(CLIPPED_JS) == []
    tab.evaluate("() => window.scrollTo(0, 0)")
    narrow.screenshot(f"page-360-{lang}", full=False)


def test_the_history_shows_previews_not_originals(page: Page, api: httpx.Client):
    body = {"model": "nano-banana", "input": {"prompt": "preview", "aspect_ratio": "16:9"}}
    task = api.post("/hub/v1/tasks", json=body, headers={"Prefer": "wait=30"}).json()
    assert task["status"] == "succeeded"
    original = task["output"]["images"][0]
    tab = page.open("#history")
    page.enter_key()
    image = tab.locator(f"[data-task-id='{task['task_id']}'] img")
    expect(image).to_have_attribute("src", original["url"] + "?w=256")
    tab.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [
        256,
        round(256 * original["height"] / original["width"]),
    ]
    # the original's own URL is not fetched for the list
    assert original["url"] not in page.requests
