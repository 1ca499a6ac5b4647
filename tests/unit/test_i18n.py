"""The page's languages: who gets which, and catalogs that say everything in every language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from imagehub.api import i18n

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "src" / "imagehub" / "api" / "locale"
CATALOGS = sorted(LOCALE.glob("*/LC_MESSAGES/messages.po"))

#: the wording of the user's own Chinese Model Reference page, restated: the catalog keeps it
INTRO = "在下方按能力分类的标签页中挑选模型,点击展开即可查看参数表和可直接复制的请求示例。"
SEED = {
    "Endpoint": "接口地址",
    "Model Reference": "模型参考(Model Reference)",
    "Pick a model in the tabs by capability; open it to see its parameter table and request "
    "examples ready to copy.": INTRO,
    "Text to image": "文生图",
    "Image to image / Edit": "图生图 / 编辑",
}


# -- negotiation


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, None, "en"),
        (None, None, "", "en"),
        (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, None, "fr-FR, zh-Hans;q=0.5", "zh"),  # the first language the page has
        (None, None, "de;q=1, zh-TW;q=0.7, en;q=0.6", "zh"),
        (None, None, "en;q=0.2, zh;q=0.9", "zh"),  # by quality, not by position
        (None, None, "zh;q=0, en", "en"),  # q=0: not this one
        (None, None, "ZH-cn", "zh"),
        (None, None, "*", "en"),
        (None, None, "zh;q=oops", "en"),
        (None, "zh", "en-US", "zh"),  # the saved choice beats the browser's
        (None, "en", "zh-CN", "en"),
        (None, "klingon", "zh-CN", "zh"),  # an unknown saved choice is ignored
        ("zh", "en", "en-US", "zh"),  # the address beats everything
        ("en", "zh", "zh-CN", "en"),
        ("fr", "zh", "en", "zh"),  # an unknown ?lang= is ignored
        ("", None, "zh", "zh"),
    ],
)
def test_query_then_cookie_then_accept_language_then_english(query, cookie, accept, expected):
    assert i18n.negotiate(query, cookie, accept) == expected


def test_accept_language_tags_are_ranked_by_quality_then_order():
    header = "fr;q=0.5, en-GB, zh;q=0.8, de;q=0.5, es;q=0"
    assert i18n.preferred_tags(header) == ["en-GB", "zh", "fr", "de"]


def test_every_language_has_a_catalog_and_an_html_tag():
    assert i18n.LANGUAGES == {"en": "en", "zh": "zh-CN"}
    assert [path.parts[-3] for path in CATALOGS] == [c for c in i18n.LANGUAGES if c != "en"]


# -- the catalogs are complete


def extracted() -> set[str]:
    """Every message of the templates, scripts, page module and model catalog, by Babel."""
    with (ROOT / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    found = extract_from_dir(ROOT, method_map, options_map)
    return {message for _, _, message, _, _ in found if isinstance(message, str)}


@pytest.fixture(scope="module")
def source_messages() -> set[str]:
    messages = extracted()
    assert len(messages) > 150  # the mapping found the templates, scripts and catalog
    return messages


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.parts[-3])
def test_a_catalog_has_exactly_the_messages_of_the_sources(path: Path, source_messages):
    with path.open("rb") as po:
        catalog = read_po(po)
    ids = {message.id for message in catalog if message.id}
    assert not source_messages - ids, f"untranslated in {path.parts[-3]}"
    assert not ids - source_messages, f"no longer in the sources, still in {path.parts[-3]}"
    assert not catalog.obsolete


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.parts[-3])
def test_every_message_is_translated_and_keeps_its_placeholders(path: Path):
    with path.open("rb") as po:
        catalog = read_po(po)
    for message in catalog:
        if not message.id:
            continue
        assert isinstance(message.string, str) and message.string.strip(), message.id
        assert not message.fuzzy, message.id
        assert placeholders(message.string) == placeholders(message.id), message.id
        assert tags(message.string) == tags(message.id), message.id
    assert not [problem for *_, problems in catalog.check() for problem in problems]


def placeholders(text: str) -> list[str]:
    """`%(name)s` and `{name}`: a translation must keep every one."""
    return sorted(re.findall(r"%\(\w+\)s|\{\w+\}", text))


def tags(text: str) -> set[str]:
    """The kinds of HTML element of a message: a translation keeps the markup's kinds."""
    return set(re.findall(r"</?\w+", text))


def test_the_scripts_messages_are_the_catalogs_script_messages(source_messages):
    messages = i18n.script_messages()
    assert {"Copy", "Page {page}", "queued", "Open in the playground"} <= set(messages)
    assert set(messages) <= source_messages
    zh = i18n.script_catalog("zh")
    assert set(zh) == set(messages) and all(zh.values())
    assert i18n.script_catalog("en") == {}  # English is the message id itself


def test_the_seed_wording_is_kept_verbatim():
    zh = i18n.translations("zh")
    for english, chinese in SEED.items():
        assert zh.gettext(english) == chinese
    poll = zh.gettext(
        "Poll until <code>ready = true</code>. Add <code>?wait=30</code> to hold each call until "
        "the task is ready (up to 30 s), send <code>Prefer: wait=30</code> with the submit to get "
        "the finished task at once, or stream <code>GET /hub/v1/tasks/{taskId}/events</code>."
    )
    assert re.sub("<[^>]+>", "", poll).startswith(
        "轮询 GET /hub/v1/tasks/:taskId,直到 ready = true。"
    )


def test_english_needs_no_catalog():
    assert i18n.translations("en").gettext("Endpoint") == "Endpoint"


def test_the_console_is_in_the_catalogs_and_the_vendored_chart_library_is_not(source_messages):
    # its template and its scripts are extracted like the page's, so the checks above cover them
    assert {"Operator console", "Keys and tenants", "Save the limits"} <= source_messages
    assert {"Retry now", "cooling down until {when}", "Every attempt"} <= set(
        i18n.script_messages()
    )
    # Chart.js is shipped as published: none of its code is read for messages
    with (ROOT / "babel.cfg").open() as mapping:
        method_map, _ = parse_mapping_cfg(mapping)
    assert ("src/imagehub/api/static/vendor/**", "ignore") in method_map
