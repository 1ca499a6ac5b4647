"""Routes: which upstreams serve each model, in which order, and how each one is doing.

A route is one configured way to serve a model: a provider instance (one pooled HTTP client
and its credentials), the upstream model id, a priority, a weight, an optional concurrency limit
and timeout. `build_router` reads them from the settings: one route per provider key set in the
environment, plus the entries of the routes file (`imagehub.routing.config`).

Health is kept per route in this process: a failing route cools down for a while and is skipped
while another route can serve the model (see `imagehub.routing.policy`).

Each route also knows what it can honour (`imagehub.routing.capabilities`): a request is only
ever given to a route that honours every parameter of it, and `Router.check` refuses at submit
a model no route serves (503 `model_unavailable`) or a request no route can honour (422).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from imagehub.catalog import Catalog, ModelSpec
from imagehub.errors import InvalidInput, ModelUnavailable, TaskError
from imagehub.providers.base import Provider
from imagehub.routing.capabilities import EVERYTHING, Honours, Refusal, refusal

#: the provider kind (and route name) of the offline placeholder provider
DEMO = "demo"


class Health:
    """A route's recent failures in this process, and until when it should be skipped."""

    def __init__(self) -> None:
        #: consecutive retryable failures
        self.failures = 0
        self.cooling_until = 0.0
        #: the cool-down was asked for by the upstream (429 with a delay): do not call it early
        self.rate_limited = False
        self.last_error = ""
        #: calls of the route running now in this process
        self.in_flight = 0
        #: told when the route starts or stops cooling down (the route state publisher)
        self.on_change: Callable[[], None] | None = None

    def cooling(self, now: float | None = None) -> bool:
        return self.remaining(now) > 0

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.cooling_until - (time.monotonic() if now is None else now))

    def cool(self, seconds: float, reason: str, *, rate_limited: bool = False) -> None:
        until = time.monotonic() + seconds
        if until > self.cooling_until:
            self.cooling_until = until
            self.rate_limited = rate_limited
            self._changed()
        self.last_error = reason

    def failed(self, reason: str) -> int:
        self.failures += 1
        self.last_error = reason
        return self.failures

    def succeeded(self) -> None:
        was_cooling = self.cooling_until > 0.0
        self.failures = 0
        self.cooling_until = 0.0
        self.rate_limited = False
        if was_cooling:
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class Limiter:
    """At most `limit` calls at once on one configured route, whichever models they are for."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)

    def full(self) -> bool:
        return self._slots.locked()

    async def acquire(self) -> None:
        await self._slots.acquire()

    def release(self) -> None:
        self._slots.release()


@dataclass(eq=False)
class Route:
    """One configured way to serve a model."""

    provider: Provider
    upstream_model: str
    #: what the task reports in `provider`; the provider's name unless the route has its own
    name: str = ""
    #: lower is tried first; routes of equal priority share the load by weight
    priority: int = 1
    weight: float = 1.0
    #: longest one call may take, in seconds (None: the hub's default)
    timeout: float | None = None
    limiter: Limiter | None = None
    base_url: str = ""
    #: what the route can honour for its model
    honours: Honours = EVERYTHING
    health: Health = field(default_factory=Health)
    #: which upstream this is (gemini, vertex, openai, openrouter, openai_compatible, fal,
    #: demo): what its tasks are priced by; the provider's `kind` unless the route has its own
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.provider.name
        if not self.kind:
            self.kind = _kind_of(self.provider)

    @property
    def is_demo(self) -> bool:
        return self.kind == DEMO


class Router:
    """Which routes serve a model, in the order to try them."""

    def __init__(
        self,
        routes: dict[str, list[Route]],
        fallback: Provider | None = None,
        *,
        rng: random.Random | None = None,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self._routes = routes
        self._fallback = fallback
        self._fallback_routes: dict[str, Route] = {}
        self._rng = rng or random.Random()
        #: by model id: what would give a model without a route one (named in the 503)
        self._hints = dict(hints or {})

    def routes(self, model: ModelSpec, params: Mapping[str, Any] | None = None) -> list[Route]:
        """The model's routes by priority, shuffled by weight within a priority.

        With `params` (a validated input), only the routes that honour every one of them.
        """
        routes = self._served_by(model)
        if params is not None:
            routes = [r for r in routes if refusal(r.honours, model, params) is None]
        if len(routes) <= 1:
            return list(routes)
        # a weighted random order (Efraimidis-Spirakis): key u^(1/w), largest first
        keys = {id(r): self._rng.random() ** (1 / r.weight) for r in routes}
        return sorted(routes, key=lambda r: (r.priority, -keys[id(r)]))

    def _served_by(self, model: ModelSpec) -> list[Route]:
        routes = self._routes.get(model.id, [])
        if routes or self._fallback is None:
            return routes
        if model.id not in self._fallback_routes:
            self._fallback_routes[model.id] = Route(self._fallback, model.upstream_model)
        return [self._fallback_routes[model.id]]

    def serving(self, model: ModelSpec) -> list[Route]:
        """Every route that serves the model, by priority (weights aside), the demo included."""
        return sorted(self._served_by(model), key=lambda r: r.priority)

    def check(self, model: ModelSpec, params: Mapping[str, Any]) -> None:
        """Refuse a validated request no route can take: 503 without a route, else 422."""
        routes = self._served_by(model)
        if not routes:
            hint = self._hints.get(model.id, "add a route in IMAGEHUB_ROUTES_FILE")
            raise ModelUnavailable(f"no route serves {model.id}: {hint}")
        refusals: list[tuple[Route, Refusal]] = []
        for route in routes:
            found = refusal(route.honours, model, params)
            if found is None:
                return
            refusals.append((route, found))
        raise _unsupported(model, refusals)

    def in_use(self) -> list[tuple[str, Route]]:
        """Every (model id, route) this process has: the configured ones, and the demo
        fallback's once it served a model."""
        pairs = [(model, r) for model, routes in self._routes.items() for r in routes]
        return pairs + list(self._fallback_routes.items())

    def configured(self) -> dict[str, list[Route]]:
        """Every configured route by model id (the demo fallback not included)."""
        return {model: list(routes) for model, routes in self._routes.items()}

    @property
    def fallback(self) -> Provider | None:
        return self._fallback

    def providers(self) -> list[Provider]:
        seen = {id(r.provider): r.provider for rs in self._routes.values() for r in rs}
        if self._fallback is not None:
            seen[id(self._fallback)] = self._fallback
        return list(seen.values())


def _kind_of(provider: Provider) -> str:
    """The provider's protocol (`kind`); empty for one without (a test double): never its name."""
    return str(getattr(provider, "kind", ""))


def _unsupported(model: ModelSpec, refusals: list[tuple[Route, Refusal]]) -> InvalidInput:
    """The 422 of a request every route of its model refuses, naming the parameter and why."""
    first = refusals[0][1]
    reasons = list(dict.fromkeys(r.what for _, r in refusals))
    if len(reasons) == 1:
        message = f"no configured route for {model.id} supports {first.what}"
    else:
        each = "; ".join(f"{route.name} does not support {r.what}" for route, r in refusals)
        message = f"no configured route for {model.id} can honour this request: {each}"
    return InvalidInput.one(["input", first.param], message, "unsupported_by_routes")


@runtime_checkable
class LiveCheck(Protocol):
    """A provider that can check a route with one cheap live call (no image is generated)."""

    async def check(self, upstream_model: str) -> str: ...


def describe(router: Router, catalog: Catalog) -> list[dict[str, str]]:
    """One row per model and route, in the order they would be tried (weights aside)."""
    rows = []
    configured = router.configured()
    for model in catalog:
        routes = sorted(configured.get(model.id, []), key=lambda r: r.priority)
        if not routes:
            served = "demo (offline; IMAGEHUB_DEMO)" if router.fallback is not None else "NONE"
            rows.append({"model": model.id, "route": served})
            continue
        for route in routes:
            limit = route.limiter.limit if route.limiter is not None else None
            rows.append(
                {
                    "model": model.id,
                    "route": route.name,
                    "provider": route.kind,
                    "upstream_model": route.upstream_model,
                    "priority": str(route.priority),
                    "weight": f"{route.weight:g}",
                    "max_concurrency": str(limit or "-"),
                    "timeout": f"{route.timeout:g}" if route.timeout else "default",
                    "base_url": route.base_url,
                }
            )
    return rows


async def check_live(router: Router) -> list[tuple[str, bool, str]]:
    """Call each distinct (route, upstream model) once: (what, ok, what it said)."""
    seen: dict[tuple[str, str], Route] = {}
    for routes in router.configured().values():
        for route in routes:
            seen.setdefault((route.name, route.upstream_model), route)
    results = []
    for (name, upstream), route in seen.items():
        if not isinstance(route.provider, LiveCheck):
            results.append((name, True, f"{upstream}: no live check for this provider"))
            continue
        try:
            said = await route.provider.check(upstream)
        except TaskError as exc:
            results.append((name, False, f"{upstream}: {exc.code}: {exc.message}"))
        else:
            results.append((name, True, said))
    return results
