"""Webhook routes: the tenant's signing secret, and the deliveries with their attempts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from imagehub.api.deps import AccountsDep, CallerDep, CursorQuery, HubDep
from imagehub.outbound.client import redact
from imagehub.render import rfc3339
from imagehub.schemas import ErrorBody
from imagehub.schemas.webhooks import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    SecretOut,
    WebhookSecretOut,
)
from imagehub.webhooks.types import Delivery, WebhookSecret

endpoints = APIRouter(tags=["webhooks"])
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 404, 422, 429, 503)
}


def secret_out(secrets: list[WebhookSecret]) -> WebhookSecretOut:
    current, *previous = secrets
    return WebhookSecretOut(
        secret=current.secret,
        created_at=rfc3339(current.created_at) or "",
        previous=[
            SecretOut(
                secret=s.secret,
                created_at=rfc3339(s.created_at) or "",
                expires_at=rfc3339(s.expires_at),
            )
            for s in previous
        ],
    )


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        webhook_id=d.id,
        task_id=d.task_id,
        url=redact(d.url),
        state=d.state,
        attempts=d.attempts,
        next_attempt_at=rfc3339(d.next_attempt_at) if d.state == "pending" else None,
        created_at=rfc3339(d.created_at) or "",
        history=[
            AttemptOut(at=rfc3339(a.at) or "", status=a.status, error=a.error) for a in d.history
        ],
    )


@endpoints.get("/hub/v1/webhooks/secret", response_model=WebhookSecretOut, responses=_ERRORS)
async def get_secret(accounts: AccountsDep, caller: CallerDep) -> WebhookSecretOut:
    """The tenant's `whsec_` secret that signs its webhooks (made on first use)."""
    return secret_out(await accounts.webhook_secrets(caller.tenant_id))


@endpoints.post(
    "/hub/v1/webhooks/secret/rotate", response_model=WebhookSecretOut, responses=_ERRORS
)
async def rotate_secret(accounts: AccountsDep, caller: CallerDep) -> WebhookSecretOut:
    """A new secret; the previous one keeps signing next to it for 24 hours."""
    return secret_out(await accounts.rotate_webhook_secret(caller.tenant_id))


@endpoints.get("/hub/v1/webhooks/deliveries", response_model=DeliveryList, responses=_ERRORS)
async def list_deliveries(
    hub: HubDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: CursorQuery = None,
) -> DeliveryList:
    """The tenant's webhook deliveries, newest first, with their attempts."""
    found, next_cursor = await hub.deliveries(caller.tenant_id, limit=limit, cursor=cursor)
    return DeliveryList(data=[delivery_out(d) for d in found], next_cursor=next_cursor)


@endpoints.get("/hub/v1/tasks/{task_id}/webhook", response_model=DeliveryOut, responses=_ERRORS)
async def task_webhook(task_id: str, hub: HubDep, caller: CallerDep) -> DeliveryOut:
    """A task's webhook delivery and its attempts (404 when the task has no webhook_url)."""
    return delivery_out(await hub.delivery(caller.tenant_id, task_id))
