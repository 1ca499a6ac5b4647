"""The provider registry: for each provider kind, how to build it and what it serves by default.

Adding a wire protocol is one entry here (plus its capability table in `capabilities`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from imagehub.catalog import Catalog, ModelSpec
from imagehub.providers.base import Provider
from imagehub.providers.fal import FalProvider
from imagehub.providers.gemini import GeminiProvider, VertexProvider
from imagehub.providers.openai import OpenAIProvider
from imagehub.providers.openai_compatible import OpenAICompatibleProvider, OpenRouterProvider
from imagehub.providers.vertex_auth import GoogleTokens
from imagehub.routing.entry import ProviderKind, RouteEntry, RoutesConfigError
from imagehub.settings import Settings


@dataclass(frozen=True, slots=True)
class Wiring:
    """What every factory gets: the entry and the values derived from it and the settings."""

    entry: RouteEntry
    settings: Settings
    catalog: Catalog
    timeout: float
    #: the route's base URL: its own, else the provider's setting (None for vertex's default)
    base_url: str | None
    key: SecretStr | None

    def required_key(self) -> SecretStr:
        if self.key is None:
            raise RoutesConfigError(
                f"route {self.entry.label}: {self.entry.provider} needs api_key or api_key_env"
            )
        return self.key

    def required_base_url(self) -> str:
        if self.base_url is None:
            raise RoutesConfigError(
                f"route {self.entry.label}: {self.entry.provider} needs `base_url`"
            )
        return self.base_url


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider kind: its factory, default upstream ids and environment settings."""

    build: Callable[[Wiring], Provider]
    #: the upstream model id for a catalog model, None when the kind does not serve it
    default_upstream: Callable[[ModelSpec], str | None]
    #: the Settings fields of its key and base URL, when a key in the environment makes a route
    key_setting: str | None = None
    base_url_setting: str | None = None
    #: the priority of the route that key makes
    priority: int = 1

    @property
    def key_variable(self) -> str | None:
        return f"IMAGEHUB_{self.key_setting.upper()}" if self.key_setting else None


def _gemini(w: Wiring) -> Provider:
    return GeminiProvider(
        name=w.entry.label,
        api_key=w.required_key(),
        base_url=w.required_base_url(),
        timeout=w.timeout,
        max_connections=w.entry.max_concurrency,
    )


def _vertex(w: Wiring) -> Provider:
    if not w.entry.project:
        raise RoutesConfigError(f"route {w.entry.label}: vertex needs `project`")
    return VertexProvider(
        name=w.entry.label,
        project=w.entry.project,
        location=w.entry.location,
        tokens=GoogleTokens(w.entry.credentials_file),
        base_url=w.entry.base_url,
        timeout=w.timeout,
        max_connections=w.entry.max_concurrency,
    )


def _openai(w: Wiring) -> Provider:
    return OpenAIProvider(
        name=w.entry.label,
        api_key=w.required_key(),
        base_url=w.required_base_url(),
        catalog=w.catalog,
        timeout=w.timeout,
        max_connections=w.entry.max_concurrency,
    )


def _chat(cls: type[OpenAICompatibleProvider]) -> Callable[[Wiring], Provider]:
    def build(w: Wiring) -> Provider:
        return cls(
            name=w.entry.label,
            api_key=w.key,  # a self-hosted compatible server may need none
            base_url=w.required_base_url(),
            timeout=w.timeout,
            max_connections=w.entry.max_concurrency,
            headers=w.entry.headers,
        )

    return build


def _fal(w: Wiring) -> Provider:
    return FalProvider(
        name=w.entry.label,
        api_key=w.required_key(),
        base_url=w.required_base_url(),
        catalog=w.catalog,
        timeout=w.timeout,
        max_connections=w.entry.max_concurrency,
        poll_seconds=w.entry.poll_seconds,
    )


#: every configurable provider kind, in the order environment keys are read
PROVIDERS: dict[ProviderKind, ProviderSpec] = {
    "gemini": ProviderSpec(
        _gemini, GeminiProvider.default_upstream, "gemini_api_key", "gemini_base_url", 1
    ),
    "openai": ProviderSpec(
        _openai, OpenAIProvider.default_upstream, "openai_api_key", "openai_base_url", 1
    ),
    "openrouter": ProviderSpec(
        _chat(OpenRouterProvider),
        OpenRouterProvider.default_upstream,
        "openrouter_api_key",
        "openrouter_base_url",
        2,
    ),
    "fal": ProviderSpec(_fal, FalProvider.default_upstream, "fal_key", "fal_base_url", 3),
    "vertex": ProviderSpec(_vertex, VertexProvider.default_upstream),
    "openai_compatible": ProviderSpec(
        _chat(OpenAICompatibleProvider), OpenAICompatibleProvider.default_upstream
    ),
}


def make_provider(entry: RouteEntry, settings: Settings, catalog: Catalog) -> Provider:
    """One provider instance (one pooled HTTP client) for one route entry."""
    spec = PROVIDERS[entry.provider]
    default_url = str(getattr(settings, spec.base_url_setting)) if spec.base_url_setting else None
    wiring = Wiring(
        entry=entry,
        settings=settings,
        catalog=catalog,
        timeout=entry.timeout_seconds or settings.upstream_timeout_seconds,
        base_url=entry.base_url or default_url,
        key=entry.credential(),
    )
    return spec.build(wiring)
