"""The operator's view of a hub, across tenants: usage and spend, routes, tasks with their
attempts, webhook deliveries (and a retry). The admin API routes are its border.

It reads the store and this process's router; it changes nothing but a delivery's due time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from imagehub.errors import InvalidInput, NotFound, NotRetryable
from imagehub.routing.router import Router
from imagehub.routing.states import RouteView, live_since, merge
from imagehub.routing.stats import CallStats, by_route, percentile
from imagehub.store import Store
from imagehub.store.base import DeliveryFilter, TaskFilter, UsageRow
from imagehub.tasks import Attempt, Page, Task, TaskStatus, utcnow
from imagehub.webhooks.types import Delivery

GroupBy = Literal["day", "model", "tenant", "provider"]
#: the longest time range a usage report covers
MAX_RANGE = timedelta(days=92)
#: tasks a usage report reads at most; past it the report says it is truncated
MAX_USAGE_TASKS = 100_000
#: route calls the last hour's route statistics read at most
MAX_HOUR_CALLS = 50_000


@dataclass(slots=True)
class UsageGroup:
    key: str
    tasks: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    #: queued or running
    unfinished: int = 0
    images: int = 0
    cost_usd: float = 0.0
    #: seconds from submit to finish of the succeeded tasks
    latencies: list[float] = field(default_factory=list)

    @property
    def failure_rate(self) -> float | None:
        """Failed among the finished (canceled aside); None before any finished."""
        ended = self.succeeded + self.failed
        return self.failed / ended if ended else None

    @property
    def p50_seconds(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p95_seconds(self) -> float | None:
        return percentile(self.latencies, 95)


@dataclass(frozen=True, slots=True)
class Usage:
    group_by: GroupBy
    since: datetime
    until: datetime
    groups: list[UsageGroup]
    total: UsageGroup
    #: more tasks than MAX_USAGE_TASKS were made in the range: the report counts the newest
    truncated: bool


@dataclass(frozen=True, slots=True)
class RouteReport:
    view: RouteView
    #: the route's calls over the last hour, every process's
    hour: CallStats


def time_range(
    since: datetime | None, until: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    """The range a report covers: until now, `default` long, at most MAX_RANGE (422 past it)."""
    until = _utc(until) if until is not None else utcnow()
    since = _utc(since) if since is not None else until - default
    if since >= until:
        raise InvalidInput.one(["query", "since"], "since must be before until", "range")
    if until - since > MAX_RANGE:
        raise InvalidInput.one(
            ["query", "since"],
            f"the time range is longer than {MAX_RANGE.days} days; ask for a shorter one",
            "range",
        )
    return since, until


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def group_key(row: UsageRow, group_by: GroupBy) -> str:
    if group_by == "day":
        return datetime.fromtimestamp(row.created_at, UTC).date().isoformat()
    if group_by == "model":
        return row.model
    if group_by == "tenant":
        return row.tenant_id
    return row.provider or "none"


def add(group: UsageGroup, row: UsageRow) -> None:
    group.tasks += 1
    if row.status == TaskStatus.SUCCEEDED:
        group.succeeded += 1
        group.images += row.images
        group.cost_usd += row.cost_usd
        if row.finished_at is not None:
            group.latencies.append(row.finished_at - row.created_at)
    elif row.status == TaskStatus.FAILED:
        group.failed += 1
    elif row.status == TaskStatus.CANCELED:
        group.canceled += 1
    else:
        group.unfinished += 1


def summarise_usage(
    rows: Iterable[UsageRow], group_by: GroupBy, since: datetime, until: datetime
) -> tuple[list[UsageGroup], UsageGroup]:
    """Usage per group (by day: every day of the range, empty ones too), and in total."""
    groups: dict[str, UsageGroup] = {}
    if group_by == "day":
        day = since.astimezone(UTC).date()
        while day <= (until - timedelta(microseconds=1)).astimezone(UTC).date():
            groups[day.isoformat()] = UsageGroup(day.isoformat())
            day += timedelta(days=1)
    total = UsageGroup("total")
    for row in rows:
        key = group_key(row, group_by)
        add(groups.setdefault(key, UsageGroup(key)), row)
        add(total, row)
    ordered = sorted(groups.values(), key=lambda g: g.key)
    if group_by != "day":  # the biggest spenders first
        ordered.sort(key=lambda g: (-g.cost_usd, -g.tasks, g.key))
    return ordered, total


class Admin:
    """What the admin routes answer."""

    def __init__(
        self, store: Store, router: Router, nudge: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self.router = router
        #: wakes this process's webhook sender (None: it runs none)
        self._nudge = nudge

    async def usage(
        self,
        group_by: GroupBy,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Usage:
        start, end = time_range(since, until, timedelta(days=7))
        rows = await self.store.usage_rows(start, end, MAX_USAGE_TASKS + 1)
        truncated = len(rows) > MAX_USAGE_TASKS
        rows = rows[:MAX_USAGE_TASKS]
        groups, total = summarise_usage(rows, group_by, start, end)
        return Usage(group_by, start, end, groups, total, truncated)

    async def routes(self) -> list[RouteReport]:
        views = merge(await self.store.route_states(live_since()), self.router)
        calls = await self.store.recent_attempts(
            utcnow() - timedelta(hours=1), limit=MAX_HOUR_CALLS
        )
        stats = by_route(calls)
        known = {(v.route, v.model) for v in views}
        # a route that served in the last hour but runs in no live process now
        for route, model in stats.keys() - known:
            provider = next(c.provider for c in calls if (c.route, c.model) == (route, model))
            views.append(RouteView(route, model, provider))
        views.sort(key=lambda v: (v.model, v.route))
        return [RouteReport(v, stats.get((v.route, v.model), CallStats())) for v in views]

    async def tasks(self, where: TaskFilter, limit: int, cursor: str | None) -> Page:
        where = dataclasses.replace(
            where,
            since=_utc(where.since) if where.since is not None else None,
            until=_utc(where.until) if where.until is not None else None,
        )
        try:
            return await self.store.find_tasks(where, limit=limit, cursor=cursor)
        except (ValueError, UnicodeDecodeError):
            raise NotFound("no page at this cursor") from None

    async def task(self, task_id: str) -> tuple[Task, list[Attempt], Delivery | None]:
        """A task of any tenant, its route calls, and its webhook delivery if it has one."""
        task = await self.store.get(task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        delivery = None
        if task.webhook_url is not None:
            delivery = await self.store.get_delivery(task_id, task.tenant_id)
        return task, await self.store.attempts(task_id), delivery

    async def deliveries(
        self,
        tenant_id: str | None,
        state: DeliveryFilter | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Delivery], str | None]:
        try:
            return await self.store.find_deliveries(
                tenant_id=tenant_id, state=state, limit=limit, cursor=cursor
            )
        except (ValueError, UnicodeDecodeError):
            raise NotFound("no page at this cursor") from None

    async def retry_delivery(self, delivery_id: str) -> Delivery:
        """Make a failed or pending delivery due now (404 unknown, 409 when it cannot be)."""
        retried = await self.store.retry_delivery(delivery_id)
        if retried is None:
            if await self.store.get_delivery_by_id(delivery_id) is None:
                raise NotFound(f"no webhook delivery {delivery_id!r}")
            raise NotRetryable()
        if self._nudge is not None:
            self._nudge()
        return retried
