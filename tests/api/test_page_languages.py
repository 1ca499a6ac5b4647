"""The page in Chinese and English: chosen per visitor, translated throughout, API untouched."""

from __future__ import annotations

import html
import json
import re

import httpx
import pytest

from imagehub.hub import Hub
from tests.api.test_page import code_block

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
SEED_POLL = "GET /hub/v1/tasks/:taskId,直到 ready = true。"


async def page(client: httpx.AsyncClient, **kwargs) -> httpx.Response:
    response = await client.get("/", **kwargs)
    assert response.status_code == 200
    assert response.headers["vary"] == "Accept-Language, Cookie"
    return response


def lang_of(response: httpx.Response) -> str:
    match = re.search(r'<html lang="([^"]+)">', response.text)
    assert match
    assert response.headers["content-language"] == match.group(1)
    return match.group(1)


def text_of(markup: str) -> str:
    """The page's text as a reader sees it: tags gone, entities read, spaces collapsed."""
    body = re.sub(r"<script.*?</script>|<[^>]+>", "", markup, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(body))


def embedded(markup: str, element_id: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', markup)
    assert match
    return json.loads(match.group(1))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "en"),
        ({"headers": {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}}, "zh-CN"),
        ({"params": {"lang": "zh"}}, "zh-CN"),
        ({"headers": {"Cookie": "imagehub_lang=zh"}}, "zh-CN"),
        ({"params": {"lang": "en"}, "headers": {"Accept-Language": "zh-CN"}}, "en"),
        ({"headers": {"Cookie": "imagehub_lang=en", "Accept-Language": "zh-CN"}}, "en"),
        ({"params": {"lang": "xx"}, "headers": {"Accept-Language": "zh"}}, "zh-CN"),
    ],
)
async def test_the_visitors_language(client: httpx.AsyncClient, kwargs, expected: str):
    assert lang_of(await page(client, **kwargs)) == expected


async def test_the_chinese_page_uses_the_seeds_wording(client: httpx.AsyncClient):
    markup = (await page(client, params={"lang": "zh"})).text
    text = text_of(markup)
    for phrase in (
        "接口地址",
        "模型参考(Model Reference)",
        "在下方按能力分类的标签页中挑选模型,点击展开即可查看参数表和可直接复制的请求示例。",
        "文生图 · 4",
        "图生图 / 编辑 · 4",
        SEED_POLL,
    ):
        assert phrase in text, phrase
    assert '文生图 <span class="count">· 4</span>' in markup
    assert len(CJK.findall(text)) > 1000  # translated throughout, not just the headings
    # the switch names both languages in their own words, and marks the current one
    assert 'href="/?lang=en" hreflang="en" lang="en"' in markup
    assert re.search(r'href="/\?lang=zh"[^>]*\n?\s*aria-current="true"', markup)


async def test_the_english_page_has_no_chinese_but_the_switch(client: httpx.AsyncClient):
    markup = (await page(client)).text
    assert "".join(CJK.findall(text_of(markup))) == "中文"
    assert 'Text to image <span class="count">· 4</span>' in markup


async def test_names_values_and_examples_stay_as_the_api_spells_them(
    client: httpx.AsyncClient, hub: Hub
):
    english = (await page(client, params={"lang": "en"})).text
    chinese = (await page(client, params={"lang": "zh"})).text
    for spec in hub.catalog:
        anchor = "model-" + spec.id.replace("/", "--")
        for lang in ("curl", "python", "javascript"):
            block = f"{anchor}-code-{lang}"
            assert code_block(chinese, block) == code_block(english, block)
        card = chinese.split(f'data-model="{spec.id}"', 1)[1].split("</details>", 1)[0]
        assert f"<code>{spec.id}</code>" in chinese
        for param in spec.params:
            assert f"<code>{param.name}</code>" in card
            for value in param.values or []:
                assert f'<code class="chip">{html.escape(value)}</code>' in card
    # the API's own answers do not change with the page's language
    models = await client.get("/hub/v1/models", headers={"Accept-Language": "zh-CN"})
    assert not CJK.search(models.text)


async def test_descriptions_and_the_scripts_messages_are_translated(client: httpx.AsyncClient):
    markup = (await page(client, params={"lang": "zh"})).text
    assert "用平实的语言描述图片要呈现的内容。" in markup  # the prompt's description, in the table
    catalog = embedded(markup, "catalog-data")
    prompt = catalog["models"][0]["params"][0]
    assert (
        prompt["name"] == "prompt" and prompt["description"] == "用平实的语言描述图片要呈现的内容。"
    )
    messages = embedded(markup, "messages-data")
    assert messages["Page {page}"] == "第 {page} 页"
    assert messages["queued"] == "排队中"
    english = (await page(client)).text
    assert embedded(english, "messages-data") == {}
    assert embedded(english, "catalog-data")["models"][0]["params"][0]["description"] == (
        "What the image should show, in plain words."
    )
