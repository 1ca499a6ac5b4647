"""Building the router from the settings: provider keys in the environment and the routes file.

A key in the environment makes its provider a route for every model it can serve:

    IMAGEHUB_GEMINI_API_KEY      gemini      the Nano Banana family      priority 1
    IMAGEHUB_OPENAI_API_KEY      openai      GPT Image 2                 priority 1
    IMAGEHUB_OPENROUTER_API_KEY  openrouter  the Nano Banana family      priority 2
    IMAGEHUB_FAL_KEY             fal         all eight models            priority 3

The routes file (`IMAGEHUB_ROUTES_FILE`, TOML) adds routes, one `[[routes]]` table each; see
`RouteEntry` for its keys. Mistakes fail at startup, naming the route.

The offline `demo` provider serves the models without a route when `IMAGEHUB_DEMO` is true, or
when it is unset and no upstream route is configured at all (the keyless quickstart).
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

from pydantic import SecretStr, ValidationError

from imagehub.catalog import Catalog, ModelSpec
from imagehub.imagework import ImageWork
from imagehub.providers.demo import DemoProvider
from imagehub.routing.capabilities import honours_of
from imagehub.routing.entry import ProviderKind, RouteEntry, RoutesConfigError
from imagehub.routing.registry import PROVIDERS, make_provider
from imagehub.routing.router import Limiter, Route, Router
from imagehub.settings import Settings

__all__ = ["RouteEntry", "RoutesConfigError", "build_router", "log_routes", "make_provider"]


def build_router(settings: Settings, catalog: Catalog, work: ImageWork | None = None) -> Router:
    """Every route the settings describe, plus the demo fallback when it is on (drawing on
    `work`'s processes when given)."""
    entries = environment_entries(settings) + file_entries(settings.routes_file)
    names = [entry.label for entry in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RoutesConfigError(f"route names must be unique; repeated: {', '.join(duplicates)}")
    routes: dict[str, list[Route]] = {}
    for entry in entries:
        for model_id, route in _routes_of(entry, settings, catalog):
            routes.setdefault(model_id, []).append(route)
    # unset: the demo serves only a hub without any upstream (the keyless quickstart)
    demo = settings.demo if settings.demo is not None else not routes
    fallback = DemoProvider(catalog, work) if demo else None
    return Router(routes, fallback=fallback, hints=_hints(catalog))


def _hints(catalog: Catalog) -> dict[str, str]:
    """By model: the settings that would give it a route, for the 503 of a model without one."""
    hints = {}
    for model in catalog:
        keys = [
            spec.key_variable
            for spec in PROVIDERS.values()
            if spec.key_variable and spec.default_upstream(model) is not None
        ]
        hints[model.id] = f"set {' or '.join(keys)}, or add a route in IMAGEHUB_ROUTES_FILE"
    return hints


def environment_entries(settings: Settings) -> list[RouteEntry]:
    entries = []
    for kind, spec in PROVIDERS.items():
        if spec.key_setting is None or spec.base_url_setting is None:
            continue
        key: SecretStr | None = getattr(settings, spec.key_setting)
        if key is not None and key.get_secret_value():
            url = str(getattr(settings, spec.base_url_setting))
            entries.append(
                RouteEntry(provider=kind, api_key=key, base_url=url, priority=spec.priority)
            )
    return entries


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
    kind: ProviderKind = entry.provider
    return [
        (
            model.id,
            Route(
                provider,
                upstream,
                name=entry.label,
                priority=entry.priority,
                weight=entry.weight,
                timeout=entry.timeout_seconds,
                limiter=limiter,
                base_url=getattr(provider, "base_url", ""),
                kind=kind,
                honours=entry.supports.applied_to(honours_of(kind, model)),
            ),
        )
        for model, upstream in served
    ]


def _served(entry: RouteEntry, catalog: Catalog) -> list[tuple[ModelSpec, str]]:
    """(model, upstream model id) of every model the entry serves."""
    default = PROVIDERS[entry.provider].default_upstream
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
        served.append((model, upstream))
    return served


def log_routes(router: Router, catalog: Catalog, log: logging.Logger) -> None:
    """The routing table, one line per model: its routes in order, the demo marked as demo."""
    log.info("routing table (model -> routes, in the order tried):")
    for model in catalog:
        names = [
            f"{r.name} (demo: offline placeholder)" if r.is_demo else f"{r.name} ({r.kind})"
            for r in router.serving(model)
        ]
        log.info("  %s -> %s", model.id, ", ".join(names) or "NONE (refused: model_unavailable)")
