"""Providers (one adapter per upstream wire protocol) and the router that picks them."""

from __future__ import annotations

from dataclasses import dataclass

from imagehub.catalog import ModelSpec
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
    "Route",
    "Router",
]


@dataclass(frozen=True, slots=True)
class Route:
    """One configured way to serve a model."""

    provider: Provider
    upstream_model: str


class Router:
    """Which routes serve a model, in the order to try them."""

    def __init__(self, routes: dict[str, list[Route]], fallback: Provider | None = None) -> None:
        self._routes = routes
        self._fallback = fallback

    def routes(self, model: ModelSpec) -> list[Route]:
        routes = self._routes.get(model.id, [])
        if not routes and self._fallback is not None:
            return [Route(self._fallback, model.upstream_model)]
        return routes

    def providers(self) -> list[Provider]:
        seen = {id(r.provider): r.provider for rs in self._routes.values() for r in rs}
        if self._fallback is not None:
            seen[id(self._fallback)] = self._fallback
        return list(seen.values())
