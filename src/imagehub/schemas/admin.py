"""Wire schemas of the admin routes: usage and spend, routes, tasks across tenants with their
route calls, webhook deliveries across tenants."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from imagehub.schemas.tasks import TaskOut
from imagehub.schemas.webhooks import DeliveryOut

GroupByName = Literal["day", "model", "tenant", "provider"]
DeliveryStateName = Literal["waiting", "pending", "succeeded", "failed", "failing"]


class UsageGroupOut(BaseModel):
    """The tasks submitted in the range, in one group."""

    key: str = Field(
        description="The group: a UTC day (YYYY-MM-DD), a model id, a tenant id, or a route "
        "name (`none` for tasks no route ran)."
    )
    tasks: int
    succeeded: int
    failed: int
    canceled: int
    unfinished: int = Field(description="Queued or running now.")
    images: int = Field(description="Images the succeeded tasks made.")
    cost_usd: float = Field(description="What the succeeded tasks cost.")
    failure_rate: float | None = Field(
        description="Failed among succeeded and failed (canceled aside); null when none ended."
    )
    latency_p50_seconds: float | None = Field(
        description="Median seconds from submit to finish of the succeeded tasks."
    )
    latency_p95_seconds: float | None


class UsageReport(BaseModel):
    group_by: GroupByName
    since: str
    until: str
    groups: list[UsageGroupOut] = Field(
        description="By day: every day of the range, oldest first, empty days included; "
        "otherwise the dearest groups first."
    )
    total: UsageGroupOut
    truncated: bool = Field(
        description="The range holds more tasks than one report reads: the newest are counted."
    )


class CallStatsOut(BaseModel):
    """A route's calls over a while, every process's (from the attempts journal)."""

    requests: int
    succeeded: int
    p50_seconds: float | None
    p95_seconds: float | None
    errors: dict[str, int] = Field(description="Failed calls by error code, most first.")


class RouteStateOut(BaseModel):
    """One route of one model: its state now, across the live processes, and the last hour."""

    route: str
    model: str
    provider: str = Field(description="The route's kind: gemini, vertex, openai, fal, ...")
    healthy: bool = Field(description="No live process has the route cooling down.")
    cooling_until: str | None = Field(
        description="Until when the route is skipped (the latest of the processes)."
    )
    rate_limited: bool = Field(description="The cool-down is the upstream's own 429 pause.")
    in_flight: int = Field(description="Calls running now, summed over the processes.")
    max_concurrency: int | None = Field(description="Calls at once per process; null: no limit.")
    last_error: str
    processes: int = Field(description="Live processes that run the route.")
    updated_at: str | None = Field(description="The latest report of a process.")
    last_hour: CallStatsOut


class RouteList(BaseModel):
    data: list[RouteStateOut]


class RouteCallOut(BaseModel):
    """One call of a route for a task (a failover within an attempt makes several)."""

    number: int = Field(description="The task's attempt the call belongs to, from 1.")
    route: str
    provider: str
    started_at: str
    finished_at: str
    seconds: float
    outcome: str = Field(description="`succeeded`, or the error code the call ended with.")
    message: str


class AdminTaskOut(TaskOut):
    tenant_id: str


class AdminTaskList(BaseModel):
    data: list[AdminTaskOut]
    next_cursor: str | None


class AdminDeliveryOut(DeliveryOut):
    tenant_id: str


class AdminTaskDetail(AdminTaskOut):
    route_calls: list[RouteCallOut] = Field(
        description="Every route call of every attempt, in order (the attempts journal)."
    )
    webhook: AdminDeliveryOut | None = Field(
        description="The task's webhook delivery and its attempts; null without a webhook_url."
    )


class AdminDeliveryList(BaseModel):
    data: list[AdminDeliveryOut]
    next_cursor: str | None


class TenantOut(BaseModel):
    """A tenant: the keys it holds, summed."""

    tenant_id: str
    keys: int = Field(description="Its keys, revoked ones included.")
    active_keys: int
    admin_keys: int = Field(description="Its active admin keys.")
    active_tasks: int = Field(description="Tasks queued or running now, over its keys.")
    reserved_usd: float
    spent_usd: float
    created_at: str = Field(description="When its first key was made.")


class TenantList(BaseModel):
    data: list[TenantOut]
