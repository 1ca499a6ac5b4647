"""Providers: one adapter per upstream wire protocol (`demo`, `gemini`, `openai`,
`openai_compatible`, `fal`). Routes and the router live in `imagehub.routes`."""

from __future__ import annotations

from typing import Any

from imagehub.providers.base import (
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    InputImage,
    Provider,
)

__all__ = [
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "InputImage",
    "Provider",
]


def __getattr__(name: str) -> Any:
    # `Route` and `Router` moved to imagehub.routes; old imports keep working
    if name in ("Route", "Router"):
        from imagehub import routes

        return getattr(routes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
