"""Route state shared across processes: each process that runs tasks writes what its routes
are doing (health, cool-down, calls in flight) to the store; any process reads them all back.

A route's health lives in the process that calls it (`router.Health`). The publisher writes a
snapshot every `route_state_seconds`, and at once when a route starts or stops cooling down;
`merge` folds the rows of the processes still alive into one view per route and model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from imagehub.routing.router import Route, Router
from imagehub.store.base import RouteState, RouteStateStore
from imagehub.tasks import new_id, utcnow

log = logging.getLogger("imagehub.routing")

#: a process whose rows are older than this is taken as gone
LIVE_SECONDS = 30.0


def snapshot(router: Router, process_id: str) -> list[RouteState]:
    """This process's routes as it would publish them now."""
    now, mono = utcnow(), time.monotonic()
    rows = []
    for model, route in router.in_use():
        health = route.health
        remaining = health.remaining(mono)
        until = now + timedelta(seconds=remaining) if remaining > 0 else None
        state = {
            "provider": route.kind or route.name,
            "healthy": remaining <= 0,
            "cooling_until": until.timestamp() if until else None,
            "rate_limited": bool(remaining > 0 and health.rate_limited),
            "in_flight": health.in_flight,
            "max_concurrency": route.limiter.limit if route.limiter is not None else None,
            "failures": health.failures,
            "last_error": health.last_error,
        }
        rows.append(RouteState(process_id, route.name, model, state, now))
    return rows


class RouteStatePublisher:
    """Writes this process's route states to the store, periodically and on changes."""

    def __init__(self, store: RouteStateStore, router: Router, interval: float) -> None:
        self.store = store
        self.router = router
        self.interval = interval
        self.process_id = new_id("proc_")
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()

    def changed(self) -> None:
        """A route started or stopped cooling down: publish now."""
        self._changed.set()

    async def publish(self) -> None:
        self._watch(route for _, route in self.router.in_use())
        await self.store.publish_route_states(
            self.process_id, snapshot(self.router, self.process_id)
        )

    def _watch(self, routes: Iterable[Route]) -> None:
        for route in routes:
            route.health.on_change = self.changed

    async def run(self) -> None:
        while not self._stopping.is_set():
            self._changed.clear()
            try:
                await self.publish()
            except Exception:
                log.warning("could not publish the route states; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval)

    async def stop(self) -> None:
        """Stop, saying the routes are gone: this process's rows are removed."""
        self._stopping.set()
        self._changed.set()
        with contextlib.suppress(Exception):
            await self.store.publish_route_states(self.process_id, [])


@dataclass(slots=True)
class RouteView:
    """One route of one model across the live processes."""

    route: str
    model: str
    provider: str
    #: no live process has it cooling down
    healthy: bool = True
    #: the latest end of a cool-down in any process
    cooling_until: datetime | None = None
    rate_limited: bool = False
    #: calls running now, summed over the processes
    in_flight: int = 0
    #: the limit of calls at once in each process (None: none)
    max_concurrency: int | None = None
    last_error: str = ""
    #: live processes that reported the route
    processes: list[str] = field(default_factory=list)
    updated_at: datetime | None = None


def merge(rows: Iterable[RouteState], local: Router | None = None) -> list[RouteView]:
    """One view per (route, model): the live rows folded together.

    `local`'s routes come first, so a route no live process reported still shows, as healthy.
    """
    views: dict[tuple[str, str], RouteView] = {}
    if local is not None:
        for model, route in local.in_use():
            limit = route.limiter.limit if route.limiter is not None else None
            views[(route.name, model)] = RouteView(
                route.name, model, route.kind or route.name, max_concurrency=limit
            )
    for row in sorted(rows, key=lambda r: r.updated_at):
        s = row.state
        view = views.setdefault(
            (row.route, row.model),
            RouteView(row.route, row.model, str(s.get("provider", row.route))),
        )
        view.processes.append(row.process_id)
        view.in_flight += int(s.get("in_flight") or 0)
        if s.get("max_concurrency") is not None:
            view.max_concurrency = int(s["max_concurrency"])
        if not s.get("healthy", True):
            view.healthy = False
            until = s.get("cooling_until")
            if until is not None:
                at = datetime.fromtimestamp(float(until), utcnow().tzinfo)
                if view.cooling_until is None or at > view.cooling_until:
                    view.cooling_until = at
            view.rate_limited = view.rate_limited or bool(s.get("rate_limited"))
        if s.get("last_error"):
            view.last_error = str(s["last_error"])  # rows come oldest first: the latest wins
        view.updated_at = row.updated_at
    return sorted(views.values(), key=lambda v: (v.model, v.route))


def live_since() -> datetime:
    """The oldest update of a process still taken as alive."""
    return utcnow() - timedelta(seconds=LIVE_SECONDS)
