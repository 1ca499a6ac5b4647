"""The docs stay true: every setting documented, CI running the README's test command, the
README's quickstart as a newcomer types it, and every docs page reachable."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from docs_hooks import env_name, errors_page, model_pages, pages, settings_page

from imagehub.catalog import Catalog
from imagehub.errors import HTTP_ERRORS, TASK_ERRORS
from imagehub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"

TEST_COMMAND = "python -m pip install -e '.[test]' && python -m pytest"
FAST_COMMAND = 'python -m pytest -m "not slow" -n auto'
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
QUICKSTART = (
    "python3 -m venv .venv && . .venv/bin/activate && "
    "python -m pip install -e '.[server]' && imagehub serve"
)


def doc(name: str) -> str:
    """A page of the documentation site, written or generated."""
    path = DOCS / name
    return path.read_text() if path.exists() else pages()[name]


def test_every_setting_is_in_the_generated_settings_page_with_its_description():
    page = settings_page()
    for name, field in Settings.model_fields.items():
        env = env_name(name, field.validation_alias)
        row = next((line for line in page.splitlines() if line.startswith(f"| `{env}`")), None)
        assert row is not None, f"{env} is not documented"
        assert field.description and field.description.replace("|", "\\|") in row


def test_the_readme_keeps_no_settings_table():
    assert not [line for line in README.splitlines() if line.startswith("| `IMAGEHUB_")]


def test_every_error_code_is_on_the_generated_page():
    page = errors_page()
    for code, cls in HTTP_ERRORS.items():
        assert f"| {cls.status} | `{code}` |" in page
    for code in TASK_ERRORS:
        assert f"| `{code}` |" in page
    assert "`idempotency_key_reused`" in page


def test_every_model_has_a_generated_page_with_every_parameter():
    generated = model_pages()
    for spec in Catalog.load():
        page = generated[f"models/{spec.id.replace('/', '-')}.md"]
        for param in spec.params:
            assert f"| `{param.name}` |" in page, (spec.id, param.name)


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in README
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text()


def test_ci_builds_the_docs_strictly():
    assert "mkdocs build --strict" in (ROOT / ".ci" / "run").read_text()


def test_the_quickstart_makes_a_virtual_environment_and_needs_no_python_command():
    for text in (README, doc("quickstart.md")):
        assert QUICKSTART in text
    assert not re.search(r"^python -m pip install -e '\.\[server\]'", README, re.M)


def test_the_readme_is_short_and_links_only_to_files_that_exist():
    assert len(README.splitlines()) < 150
    for target in re.findall(r"\]\(((?!https?://|#)[^)#]+)", README):
        assert (ROOT / target).exists(), target


def test_every_written_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for path in DOCS.glob("*.md"):
        assert f" {path.name}" in nav, f"{path.name} is not in mkdocs.yml's nav"


def test_the_readme_gives_the_fast_command_and_the_slow_marker_exists():
    assert FAST_COMMAND in README
    assert any(m.startswith("slow:") for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"])
