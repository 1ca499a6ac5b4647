"""Building the router from the settings: provider keys in the environment and the routes file.

A key in the environment makes its provider a route for every model it can serve:

    IMAGEHUB_GEMINI_API_KEY      gemini      the Nano Banana family      priority 1
    IMAGEHUB_OPENAI_API_KEY      openai      GPT Image 2                 priority 1
    IMAGEHUB_OPENROUTER_API_KEY  openrouter  the Nano Banana family      priority 2
    IMAGEHUB_FAL_KEY             fal         all eight models            priority 3

The routes file (`IMAGEHUB_ROUTES_FILE`, TOML) adds routes, one `[[routes]]` table each; see
`RouteEntry` for its keys. Mistakes fail at startup, naming the route.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from imagehub.catalog import Catalog, ModelSpec
from imagehub.providers.base import Provider
from imagehub.providers.demo import DemoProvider
from imagehub.providers.fal import FalProvider
from imagehub.providers.gemini import GeminiProvider, VertexProvider
from imagehub.providers.openai import OpenAIProvider
from imagehub.providers.openai_compatible import OpenAICompatibleProvider, OpenRouterProvider
from imagehub.providers.vertex_auth import GoogleTokens
from imagehub.routing.router import Limiter, Route, Router
from imagehub.settings import Settings, secret_from_environment

ProviderKind = Literal["gemini", "vertex", "openai", "openrouter", "openai_compatible", "fal"]

#: which models a provider serves by default, and under which upstream id
DEFAULT_UPSTREAM: dict[str, Callable[[ModelSpec], str | None]] = {
    "gemini": GeminiProvider.default_upstream,
    "vertex": VertexProvider.default_upstream,
    "openai": OpenAIProvider.default_upstream,
    "openrouter": OpenRouterProvider.default_upstream,
    "openai_compatible": OpenAICompatibleProvider.default_upstream,
    "fal": FalProvider.default_upstream,
}


class RoutesConfigError(ValueError):
    """The routes configuration is wrong; the message names the route and the mistake."""


class RouteEntry(BaseModel):
    """One route of the routes file (`[[routes]]`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: what tasks report in `provider`; default: the provider kind
    name: str | None = None
    provider: ProviderKind
    #: the credential itself, or the name of the environment variable that holds it
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    #: catalog model ids this route serves; default: every model the provider can serve
    models: list[str] | None = None
    #: one upstream model id for every model of the route, or one per model id
    upstream_model: str | None = None
    upstream_models: dict[str, str] = Field(default_factory=dict)
    priority: int = 1
    weight: float = Field(1.0, gt=0)
    max_concurrency: int | None = Field(None, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    #: extra request headers (openai_compatible, openrouter), e.g. HTTP-Referer
    headers: dict[str, str] = Field(default_factory=dict)
    #: vertex: the Google Cloud project, location and (optional) service-account file
    project: str | None = None
    location: str = "global"
    credentials_file: Path | None = None
    #: fal: the longest pause between two status polls
    poll_seconds: float = Field(1.0, gt=0)

    @property
    def label(self) -> str:
        return self.name or self.provider


def build_router(settings: Settings, catalog: Catalog) -> Router:
    """Every route the settings describe, plus the demo fallback when allowed."""
    entries = environment_entries(settings) + file_entries(settings.routes_file)
    names = [entry.label for entry in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RoutesConfigError(f"route names must be unique; repeated: {', '.join(duplicates)}")
    routes: dict[str, list[Route]] = {}
    for entry in entries:
        for model_id, route in _routes_of(entry, settings, catalog):
            routes.setdefault(model_id, []).append(route)
    fallback = DemoProvider(catalog) if settings.demo else None
    return Router(routes, fallback=fallback)


def environment_entries(settings: Settings) -> list[RouteEntry]:
    keyed: list[tuple[ProviderKind, SecretStr | None, str, int]] = [
        ("gemini", settings.gemini_api_key, settings.gemini_base_url, 1),
        ("openai", settings.openai_api_key, settings.openai_base_url, 1),
        ("openrouter", settings.openrouter_api_key, settings.openrouter_base_url, 2),
        ("fal", settings.fal_key, settings.fal_base_url, 3),
    ]
    return [
        RouteEntry(provider=kind, api_key=key, base_url=url, priority=priority)
        for kind, key, url, priority in keyed
        if key is not None and key.get_secret_value()
    ]


def file_entries(path: Path | None) -> list[RouteEntry]:
    if path is None:
        return []
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RoutesConfigError(f"routes file {path}: {exc}") from None
    unknown = sorted(set(data) - {"routes"})
    if unknown:
        raise RoutesConfigError(f"routes file {path}: unknown tables {unknown}; use [[routes]]")
    entries = []
    for i, raw in enumerate(data.get("routes", [])):
        try:
            entries.append(RouteEntry.model_validate(raw))
        except ValidationError as exc:
            where = raw.get("name") or f"#{i + 1}"
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise RoutesConfigError(f"routes file {path}, route {where}: {problems}") from None
    return entries


def _routes_of(entry: RouteEntry, settings: Settings, catalog: Catalog) -> list[tuple[str, Route]]:
    served = _served(entry, catalog)
    if not served:
        return []
    provider = make_provider(entry, settings, catalog)
    limiter = Limiter(entry.max_concurrency) if entry.max_concurrency else None
    return [
        (
            model_id,
            Route(
                provider,
                upstream,
                name=entry.label,
                priority=entry.priority,
                weight=entry.weight,
                timeout=entry.timeout_seconds,
                limiter=limiter,
                base_url=getattr(provider, "base_url", ""),
            ),
        )
        for model_id, upstream in served
    ]


def _served(entry: RouteEntry, catalog: Catalog) -> list[tuple[str, str]]:
    """(model id, upstream model id) of every model the entry serves."""
    default = DEFAULT_UPSTREAM[entry.provider]
    wanted = entry.models if entry.models is not None else [m.id for m in catalog]
    unknown = sorted(set(wanted) - {m.id for m in catalog})
    if unknown:
        raise RoutesConfigError(f"route {entry.label}: unknown models {unknown}")
    served = []
    for model_id in wanted:
        model = catalog.get(model_id)
        assert model is not None  # checked above
        upstream = entry.upstream_models.get(model_id) or entry.upstream_model or default(model)
        if upstream is None:
            if entry.models is not None:
                raise RoutesConfigError(
                    f"route {entry.label}: {entry.provider} has no default upstream model for "
                    f"{model_id}; set upstream_model or upstream_models"
                )
            continue
        served.append((model_id, upstream))
    return served


def make_provider(entry: RouteEntry, settings: Settings, catalog: Catalog) -> Provider:
    """One provider instance (one pooled HTTP client) for one route entry."""
    timeout = entry.timeout_seconds or settings.upstream_timeout_seconds
    name, limit = entry.label, entry.max_concurrency
    if entry.provider == "vertex":
        return _vertex(entry, timeout)
    base_url = entry.base_url or _default_base_url(entry, settings)
    key = _credential(entry)
    if entry.provider in ("openrouter", "openai_compatible"):
        cls = OpenRouterProvider if entry.provider == "openrouter" else OpenAICompatibleProvider
        return cls(
            name=name,
            api_key=key,  # a self-hosted compatible server may need none
            base_url=base_url,
            timeout=timeout,
            max_connections=limit,
            headers=entry.headers,
        )
    if key is None:
        raise RoutesConfigError(f"route {name}: {entry.provider} needs api_key or api_key_env")
    if entry.provider == "gemini":
        return GeminiProvider(
            name=name, api_key=key, base_url=base_url, timeout=timeout, max_connections=limit
        )
    if entry.provider == "openai":
        return OpenAIProvider(
            name=name,
            api_key=key,
            base_url=base_url,
            catalog=catalog,
            timeout=timeout,
            max_connections=limit,
        )
    return FalProvider(
        name=name,
        api_key=key,
        base_url=base_url,
        catalog=catalog,
        timeout=timeout,
        max_connections=limit,
        poll_seconds=entry.poll_seconds,
    )


def _vertex(entry: RouteEntry, timeout: float) -> VertexProvider:
    if not entry.project:
        raise RoutesConfigError(f"route {entry.label}: vertex needs `project`")
    return VertexProvider(
        name=entry.label,
        project=entry.project,
        location=entry.location,
        tokens=GoogleTokens(entry.credentials_file),
        base_url=entry.base_url,
        timeout=timeout,
        max_connections=entry.max_concurrency,
    )


def _default_base_url(entry: RouteEntry, settings: Settings) -> str:
    defaults = {
        "gemini": settings.gemini_base_url,
        "openai": settings.openai_base_url,
        "openrouter": settings.openrouter_base_url,
        "fal": settings.fal_base_url,
    }
    if entry.provider not in defaults:
        raise RoutesConfigError(f"route {entry.label}: {entry.provider} needs `base_url`")
    return defaults[entry.provider]


def _credential(entry: RouteEntry) -> SecretStr | None:
    if entry.api_key is not None:
        return entry.api_key
    if entry.api_key_env is None:
        return None
    key = secret_from_environment(entry.api_key_env)
    if key is None:
        raise RoutesConfigError(
            f"route {entry.label}: the environment variable {entry.api_key_env} (api_key_env) "
            "is not set"
        )
    return key
