"""The client pages of the docs stay true: model aliases, size mapping, exit codes."""

from __future__ import annotations

import re

from imagehub.api.openai_wire import aliases, resolve_model, size_params
from imagehub.catalog import Catalog
from imagehub.cli.client import Exit
from tests.unit.test_docs import doc

CATALOG = Catalog.load()


def section(title: str) -> str:
    """The page `title` of the docs (docs/openai.md, docs/cli.md)."""
    return doc({"OpenAI-compatible endpoints": "openai.md", "Command line": "cli.md"}[title])


def table_rows(text: str, first_header: str) -> list[list[str]]:
    lines = text.split(f"| {first_header} |", 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_model_alias_is_in_the_docs_table_and_runs_where_it_says():
    rows = table_rows(section("OpenAI-compatible endpoints"), "`model`")
    documented: set[str] = set()
    for names, runs_on in rows:
        for name in re.findall(r"`([^`]+)`", names):
            target = re.findall(r"`([^`]+)`", runs_on)
            expected = target[0] if target else name
            assert resolve_model(CATALOG, name, edit=False).id == expected, name
            documented.add(name)
    assert set(aliases(CATALOG)) <= documented | {"nano-banana", "nano-banana-pro"}
    assert resolve_model(CATALOG, None, edit=False).id == "gpt-image-2"


def test_the_docs_size_table_is_what_the_mapping_does():
    rows = table_rows(section("OpenAI-compatible endpoints"), "`size`")
    assert rows
    models = ["nano-banana", "nano-banana-2", "nano-banana-pro"]
    for size, *cells in rows:
        for model_id, cell in zip(models, cells, strict=True):
            spec = CATALOG.get(model_id)
            assert spec is not None
            params = size_params(CATALOG, spec, size.strip("`"))
            shown = ", ".join(str(params[k]) for k in ("aspect_ratio", "resolution") if k in params)
            assert shown == cell, (size, model_id)


def test_the_documented_exit_codes_are_the_cli_s():
    rows = table_rows(section("Command line"), "code")
    assert [int(code) for code, _ in rows] == [int(e) for e in Exit]
