"""Providers: one adapter per upstream wire protocol (`demo`, `gemini`, `openai`,
`openai_compatible`, `fal`). Routes and the router live in `imagehub.routing`."""

from __future__ import annotations

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
