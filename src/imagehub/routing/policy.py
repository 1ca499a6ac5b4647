"""The one failure policy: fail over between routes within an attempt, cool failing routes
down, and retry the task later with exponential backoff and jitter.

Within one attempt, the model's routes are tried in order (priority, then weight):

    content blocked, no image, invalid request, input image    fail the task now
    rate limited, unavailable, timeout, malformed answer        next route; retry later if none
    credentials, model id or account refused                    next route; fail if none

A route is skipped while it cools down if another route can serve the model; when all of them
are cooling, the one that recovers first is tried anyway, unless the upstream itself asked for
the pause (429 with a delay): then the attempt ends at once and the retry waits for it.

Between attempts the worker requeues a retryable failure after `delay()`; the task fails once
its attempts are spent or the upstream asks to wait longer than `retry_max_delay_seconds`.
No other layer retries: the providers' HTTP clients retry nothing.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from imagehub.errors import (
    TaskError,
    UpstreamConfigError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from imagehub.providers import deadlines
from imagehub.routing.router import Route
from imagehub.settings import Settings

T = TypeVar("T")
#: told of each route call: the route, when the call started, and the error it ended with
Observer = Callable[[Route, datetime, BaseException | None], None]
#: consecutive retryable failures after which a route cools down
FAILURES_BEFORE_COOLDOWN = 3
#: a route whose credentials or model id were refused cools down this many times longer
CONFIG_COOLDOWN_FACTOR = 10


class FailurePolicy:
    def __init__(
        self,
        *,
        retry_base_seconds: float = 1.0,
        retry_max_delay_seconds: float = 300.0,
        cooldown_seconds: float = 30.0,
        default_timeout: float = 300.0,
    ) -> None:
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_delay_seconds = retry_max_delay_seconds
        self.cooldown_seconds = cooldown_seconds
        self.default_timeout = default_timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> FailurePolicy:
        return cls(
            retry_base_seconds=settings.retry_base_seconds,
            retry_max_delay_seconds=settings.retry_max_delay_seconds,
            cooldown_seconds=settings.route_cooldown_seconds,
            default_timeout=settings.upstream_timeout_seconds,
        )

    # -- within an attempt

    async def run(
        self,
        routes: Sequence[Route],
        call: Callable[[Route], Awaitable[T]],
        observe: Observer | None = None,
    ) -> tuple[Route, T]:
        """Call the routes in turn until one succeeds or a failure must end the attempt.

        `observe` is told of every route call as it ends (the attempts journal).
        """
        remaining = self._usable(routes)
        if not remaining:
            raise UpstreamConfigError("no upstream route is configured for this model")
        errors: list[TaskError] = []
        while remaining:
            route = await _acquire(remaining)
            remaining.remove(route)
            started = datetime.now(UTC)
            route.health.in_flight += 1
            # the timeout here, not in a coroutine of its own: every call in flight holds
            # this frame
            seconds = route.timeout or self.default_timeout
            try:
                try:
                    async with deadlines.within(seconds):
                        result = await call(route)
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"{route.name} did not finish within {seconds:g} s"
                    ) from None
            except TaskError as exc:
                self._failed(route, started, exc, observe)
                if not _may_fail_over(exc):
                    raise
                errors.append(exc)
                continue
            except Exception as exc:
                if observe is not None:
                    observe(route, started, exc)
                raise
            finally:
                route.health.in_flight -= 1
                if route.limiter is not None:
                    route.limiter.release()
            route.health.succeeded()
            if observe is not None:
                observe(route, started, None)
            return route, result
        # prefer a retryable error: another attempt may still succeed
        raise next((e for e in reversed(errors) if e.retryable), errors[-1])

    def _usable(self, routes: Sequence[Route]) -> list[Route]:
        ready = [r for r in routes if not r.health.cooling()]
        if ready or not routes:
            return ready
        first = min(routes, key=lambda r: r.health.remaining())
        if all(r.health.rate_limited for r in routes):
            wait = first.health.remaining()
            raise UpstreamRateLimited(
                f"every route is pausing as the upstream asked ({first.health.last_error}); "
                f"next try in {wait:.0f} s",
                retry_after=wait,
            )
        return [first]

    def _failed(
        self, route: Route, started: datetime, exc: TaskError, observe: Observer | None
    ) -> None:
        """A route call failed: name the route in the error, and record and report it."""
        exc.route = exc.route or route.name
        self._record(route, exc)
        if observe is not None:
            observe(route, started, exc)

    def _record(self, route: Route, exc: TaskError) -> None:
        health = route.health
        if isinstance(exc, UpstreamRateLimited):
            pause = exc.retry_after if exc.retry_after is not None else self.cooldown_seconds
            health.cool(pause, exc.message, rate_limited=exc.retry_after is not None)
        elif isinstance(exc, UpstreamConfigError):
            health.cool(self.cooldown_seconds * CONFIG_COOLDOWN_FACTOR, exc.message)
        elif exc.retryable and health.failed(exc.message) >= FAILURES_BEFORE_COOLDOWN:
            health.cool(self.cooldown_seconds, exc.message)

    # -- between attempts

    def delay(self, attempts: int, max_attempts: int, exc: TaskError) -> float | None:
        """Seconds before the next attempt, or None when the task should fail now."""
        if not exc.retryable or attempts >= max_attempts:
            return None
        delay = self.retry_base_seconds * 2.0 ** (attempts - 1) * random.uniform(0.5, 1.5)
        if isinstance(exc, UpstreamRateLimited) and exc.retry_after:
            if exc.retry_after > self.retry_max_delay_seconds:
                return None
            delay = max(delay, exc.retry_after)
        return min(delay, self.retry_max_delay_seconds)

    def storage_delay(self, attempts: int) -> float:
        """Seconds before a task that met a storage fault runs again (backoff, at most 60 s)."""
        delay = self.retry_base_seconds * 2.0 ** min(attempts - 1, 16) * random.uniform(0.5, 1.5)
        return min(delay, 60.0, self.retry_max_delay_seconds)

    def final(self, attempts: int, exc: TaskError) -> TaskError:
        """The error a failed task keeps: the last one, saying why the hub stopped trying."""
        if not exc.retryable:
            return exc
        why = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
        wait = exc.retry_after if isinstance(exc, UpstreamRateLimited) else None
        if wait and wait > self.retry_max_delay_seconds:
            why = f"the upstream asked to wait {wait:.0f} s, longer than this hub waits"
        final = type(exc)(f"{exc.message} ({why})")
        final.final, final.route = True, exc.route
        return final


async def _acquire(routes: list[Route]) -> Route:
    """The first route with a free slot; if all are busy, wait for the first one."""
    for route in routes:
        if route.limiter is None:
            return route
        if not route.limiter.full():
            await route.limiter.acquire()
            return route
    first = routes[0]
    assert first.limiter is not None
    await first.limiter.acquire()
    return first


def _may_fail_over(exc: TaskError) -> bool:
    return exc.retryable or isinstance(exc, UpstreamConfigError)
