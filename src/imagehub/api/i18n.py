"""The page's languages: which one a visitor gets, and the message catalogs that translate it.

English is the source language: every message id is the English text, so English needs no
catalog. Each other language has a Babel catalog, `locale/<code>/LC_MESSAGES/messages.po`,
compiled in memory with Babel when first used: the package ships only text, and an editable
install and a wheel behave the same. One catalog feeds the templates (Jinja2's i18n extension)
and the page's scripts (the page embeds the translations of the messages its scripts use).
"""

from __future__ import annotations

import functools
import gettext
import io
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import IO, Any

from babel.messages.extract import extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

#: language code (as `?lang=` and the cookie spell it) -> the HTML `lang` attribute
LANGUAGES = {"en": "en", "zh": "zh-CN"}
DEFAULT = "en"
#: the cookie the page's language switch sets
COOKIE = "imagehub_lang"
#: how the page's scripts mark a message for translation: `_("…")`
SCRIPT_KEYWORDS = {"_": None}


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page's language: `?lang=`, then the saved choice, then Accept-Language, then English."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    for tag in preferred_tags(accept_language or ""):
        primary = tag.split("-", 1)[0].lower()
        if primary in LANGUAGES:
            return primary
    return DEFAULT


def preferred_tags(header: str) -> list[str]:
    """The language tags of an Accept-Language header, most wanted first; q=0 means "not this"."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.strip() and quality > 0:
            ranked.append((-quality, index, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog of a language, compiled from its .po file once per process."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    po = resources.files("imagehub.api").joinpath("locale", language, "LC_MESSAGES", "messages.po")
    with po.open("rb") as source:
        catalog = read_po(source, locale=language, abort_invalid=True)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain="messages")


@functools.cache
def script_messages() -> tuple[str, ...]:
    """Every message the page's scripts translate, as Babel's JavaScript extractor finds them."""
    found: set[str] = set()
    for entry in resources.files("imagehub.api").joinpath("static").iterdir():
        if entry.name.endswith(".js"):
            with entry.open("rb") as source:
                for _, message, _, _ in extract("javascript", source, SCRIPT_KEYWORDS):
                    assert isinstance(message, str)  # `_` takes one argument
                    found.add(message)
    return tuple(sorted(found))


def script_catalog(language: str) -> dict[str, str]:
    """The translations the page's scripts need, embedded in the page as JSON."""
    if language == DEFAULT:
        return {}
    gettext_ = translations(language).gettext
    return {message: gettext_(message) for message in script_messages()}


def extract_catalog(
    fileobj: IO[bytes], keywords: Mapping[str, Any], comment_tags: list[str], options: Any
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """A Babel extractor for models.toml: every description is a message of the page."""
    text = fileobj.read().decode()
    data = tomllib.loads(text)
    descriptions = [p["description"] for p in data.get("params", {}).values()]
    for model in data.get("models", []):
        descriptions.append(model["description"])
        for override in model.get("overrides", {}).values():
            if "description" in override:
                descriptions.append(override["description"])
    lines = text.splitlines()
    for description in descriptions:
        # the line it is on, for translators' reference; TOML escapes make some unfindable
        line = next((n for n, row in enumerate(lines, 1) if description in row), 0)
        yield line, None, description, ["a model or parameter description in the catalog"]


def N_(message: str) -> str:
    """Mark a message for the catalog where it is defined; it is translated where it is shown."""
    return message
