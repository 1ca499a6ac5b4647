"""Admin routes across tenants: usage and spend, routes, tasks, webhook deliveries.

Every route needs an admin key (403 `forbidden` for any other); the console at /console is
drawn from these and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from imagehub.admin import RouteReport, UsageGroup
from imagehub.api.deps import BaseUrlDep, CursorQuery, OperatorDep
from imagehub.api.webhooks import delivery_out
from imagehub.render import rfc3339, task_out
from imagehub.schemas import ErrorBody
from imagehub.schemas.admin import (
    AdminDeliveryList,
    AdminDeliveryOut,
    AdminTaskDetail,
    AdminTaskList,
    AdminTaskOut,
    CallStatsOut,
    DeliveryStateName,
    GroupByName,
    RouteCallOut,
    RouteList,
    RouteStateOut,
    UsageGroupOut,
    UsageReport,
)
from imagehub.schemas.tasks import TaskStatusName
from imagehub.store.base import TaskFilter
from imagehub.tasks import Attempt, Task, TaskStatus
from imagehub.webhooks.types import Delivery

endpoints = APIRouter(prefix="/hub/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 422, 429)
}

SinceQuery = Annotated[
    datetime | None,
    Query(description="From this time (RFC 3339; UTC when it names no offset)."),
]
UntilQuery = Annotated[datetime | None, Query(description="Before this time (default: now).")]
LimitQuery = Annotated[int, Query(ge=1, le=200)]
TenantQuery = Annotated[str | None, Query(max_length=64)]


def _group(group: UsageGroup) -> UsageGroupOut:
    return UsageGroupOut(
        key=group.key,
        tasks=group.tasks,
        succeeded=group.succeeded,
        failed=group.failed,
        canceled=group.canceled,
        unfinished=group.unfinished,
        images=group.images,
        cost_usd=round(group.cost_usd, 6),
        failure_rate=group.failure_rate,
        latency_p50_seconds=group.p50_seconds,
        latency_p95_seconds=group.p95_seconds,
    )


@endpoints.get("/usage", response_model=UsageReport, responses=_ERRORS)
async def usage(
    view: OperatorDep,
    group_by: GroupByName = "day",
    since: SinceQuery = None,
    until: UntilQuery = None,
) -> UsageReport:
    """Tasks, images, cost, failure rate and latency of the tasks submitted in a time range
    (default: the last 7 days; at most 92 days), by day, model, tenant or provider (route)."""
    report = await view.usage(group_by, since, until)
    return UsageReport(
        group_by=report.group_by,
        since=rfc3339(report.since) or "",
        until=rfc3339(report.until) or "",
        groups=[_group(g) for g in report.groups],
        total=_group(report.total),
        truncated=report.truncated,
    )


def _route(report: RouteReport) -> RouteStateOut:
    v, hour = report.view, report.hour
    return RouteStateOut(
        route=v.route,
        model=v.model,
        provider=v.provider,
        healthy=v.healthy,
        cooling_until=rfc3339(v.cooling_until),
        rate_limited=v.rate_limited,
        in_flight=v.in_flight,
        max_concurrency=v.max_concurrency,
        last_error=v.last_error,
        processes=len(v.processes),
        updated_at=rfc3339(v.updated_at),
        last_hour=CallStatsOut(
            requests=hour.requests,
            succeeded=hour.succeeded,
            p50_seconds=hour.p50_seconds,
            p95_seconds=hour.p95_seconds,
            errors=hour.errors,
        ),
    )


@endpoints.get("/routes", response_model=RouteList, responses=_ERRORS)
async def routes(view: OperatorDep) -> RouteList:
    """Each route of each model: its state now in every live process that runs tasks
    (healthy, cooling down until, calls in flight, concurrency limit), and its calls over
    the last hour (requests, p50/p95 latency, errors by code)."""
    return RouteList(data=[_route(r) for r in await view.routes()])


def _task(task: Task, base_url: str) -> AdminTaskOut:
    return AdminTaskOut(**task_out(task, base_url).model_dump(), tenant_id=task.tenant_id)


def _call(call: Attempt) -> RouteCallOut:
    return RouteCallOut(
        number=call.number,
        route=call.route,
        provider=call.provider,
        started_at=rfc3339(call.started_at) or "",
        finished_at=rfc3339(call.finished_at) or "",
        seconds=round(call.seconds, 3),
        outcome=call.outcome,
        message=call.message,
    )


@endpoints.get("/tasks", response_model=AdminTaskList, responses=_ERRORS)
async def list_tasks(
    view: OperatorDep,
    base_url: BaseUrlDep,
    status: TaskStatusName | None = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    tenant_id: TenantQuery = None,
    provider: Annotated[
        str | None, Query(max_length=100, description="The route that ran the task.")
    ] = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> AdminTaskList:
    """Every tenant's tasks, newest first, filtered by status, model, tenant, route and the
    time they were submitted."""
    where = TaskFilter(
        tenant_id=tenant_id,
        model=model,
        status=TaskStatus(status) if status else None,
        provider=provider,
        since=since,
        until=until,
    )
    page = await view.tasks(where, limit, cursor)
    return AdminTaskList(
        data=[_task(t, base_url) for t in page.tasks], next_cursor=page.next_cursor
    )


@endpoints.get("/tasks/{task_id}", response_model=AdminTaskDetail, responses=_ERRORS)
async def get_task(task_id: str, view: OperatorDep, base_url: BaseUrlDep) -> AdminTaskDetail:
    """A task of any tenant, with every route call of every attempt and how it ended, and its
    webhook delivery."""
    task, calls, delivery = await view.task(task_id)
    return AdminTaskDetail(
        **_task(task, base_url).model_dump(),
        route_calls=[_call(c) for c in calls],
        webhook=_delivery(delivery) if delivery is not None else None,
    )


def _delivery(d: Delivery) -> AdminDeliveryOut:
    return AdminDeliveryOut(**delivery_out(d).model_dump(), tenant_id=d.tenant_id)


@endpoints.get("/webhooks/deliveries", response_model=AdminDeliveryList, responses=_ERRORS)
async def list_deliveries(
    view: OperatorDep,
    state: Annotated[
        DeliveryStateName | None,
        Query(description="A state, or `failing`: failed, or pending after a failed attempt."),
    ] = None,
    tenant_id: TenantQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> AdminDeliveryList:
    """Every tenant's webhook deliveries, newest first, with their attempts."""
    found, next_cursor = await view.deliveries(tenant_id, state, limit, cursor)
    return AdminDeliveryList(data=[_delivery(d) for d in found], next_cursor=next_cursor)


@endpoints.post(
    "/webhooks/deliveries/{webhook_id}/retry",
    response_model=AdminDeliveryOut,
    responses={**_ERRORS, 409: {"model": ErrorBody}},
)
async def retry_delivery(webhook_id: str, view: OperatorDep) -> AdminDeliveryOut:
    """Send a failed or pending delivery now (one more attempt for a failed one).

    409 `not_retryable` when it succeeded, its task is not finished, or a sender holds it."""
    return _delivery(await view.retry_delivery(webhook_id))
