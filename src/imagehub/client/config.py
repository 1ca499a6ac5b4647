"""Where the SDK finds the hub: its arguments first, then two environment variables.

The SDK installs without the server's settings machinery, so it reads exactly IMAGEHUB_URL and
IMAGEHUB_API_KEY here itself (the one exception to "only settings.py reads the environment").
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    api_key: str | None


def resolve(base_url: str | None, api_key: str | None) -> Target:
    """`base_url` else IMAGEHUB_URL else the local default; `api_key` else IMAGEHUB_API_KEY."""
    url = base_url or os.environ.get("IMAGEHUB_URL") or DEFAULT_URL
    key = api_key or os.environ.get("IMAGEHUB_API_KEY") or None
    return Target(url.rstrip("/"), key)
