"""The README stays true: every setting documented, CI running the README's test command."""

from __future__ import annotations

import tomllib
from pathlib import Path

from imagehub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

TEST_COMMAND = "python -m pip install -e '.[test]' && python -m pytest"
FAST_COMMAND = 'python -m pytest -m "not slow" -n auto'


def test_every_setting_is_in_the_readme_table_with_its_description():
    for name, field in Settings.model_fields.items():
        row = next(
            (
                line
                for line in README.splitlines()
                if line.startswith(f"| `IMAGEHUB_{name.upper()}`")
            ),
            None,
        )
        assert row is not None, f"IMAGEHUB_{name.upper()} is not documented"
        assert field.description and field.description in row


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in README
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text()


def test_the_readme_gives_the_fast_command_and_the_slow_marker_exists():
    assert FAST_COMMAND in README
    assert any(m.startswith("slow:") for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"])
