"""Python code that runs a catalog example through the SDK, for docs and the Model Reference page.

>>> print(python_example("nano-banana", {"prompt": "a lighthouse", "seed": 7}))
from imagehub.client import Client
<BLANKLINE>
with Client() as hub:  # IMAGEHUB_URL and IMAGEHUB_API_KEY
    task = hub.generate(
        "nano-banana",
        prompt="a lighthouse",
        seed=7,
    )
    print(hub.save(task, "out"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def python_example(model_id: str, params: Mapping[str, Any], base_url: str | None = None) -> str:
    """`hub.generate(model_id, **params)` then `hub.save(...)`, as a runnable script.

    Without `base_url` the script reads IMAGEHUB_URL; the key always comes from IMAGEHUB_API_KEY.
    """
    arguments = "".join(f"        {name}={_literal(value)},\n" for name, value in params.items())
    opening = (
        f"with Client({_literal(base_url)}) as hub:  # the key from IMAGEHUB_API_KEY\n"
        if base_url
        else "with Client() as hub:  # IMAGEHUB_URL and IMAGEHUB_API_KEY\n"
    )
    folder = '"images"' if base_url else '"out"'
    saving = (
        f"    for path, image in zip(hub.save(task, {folder}), task.output.images):\n"
        '        print(path, image.width, "x", image.height)\n'
        if base_url
        else f"    print(hub.save(task, {folder}))\n"
    )
    return (
        "from imagehub.client import Client\n\n"
        f"{opening}"
        "    task = hub.generate(\n"
        f"        {_literal(model_id)},\n"
        f"{arguments}"
        "    )\n"
        f"{saving}"
    )


def _literal(value: Any) -> str:
    """A Python literal for a JSON value (strings with double quotes, as ruff formats them)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)
