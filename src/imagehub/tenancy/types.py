"""What the store keeps of a tenant's keys, and what a submit charges them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from imagehub.tasks import utcnow


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: only its hash is kept."""

    id: str
    tenant_id: str
    key_hash: str
    #: the first characters of the key, to recognise it in lists
    prefix: str
    name: str = ""
    admin: bool = False
    created_at: datetime = field(default_factory=utcnow)
    revoked_at: datetime | None = None
    # limits, None for none: requests per minute, tasks in flight, total spend in micro-USD
    rpm_limit: int | None = None
    concurrency_limit: int | None = None
    budget_micros: int | None = None
    # kept by the store as tasks are submitted and finish
    active_tasks: int = 0
    reserved_micros: int = 0
    spent_micros: int = 0


@dataclass(frozen=True, slots=True)
class Submission:
    """What a submit writes along with its task, in the same transaction."""

    #: the key charged: one slot of its concurrency limit and `reserve_micros` of its budget,
    #: settled (at the task's real cost) or released when the task finishes
    key_id: str | None = None
    reserve_micros: int = 0
    #: where clients reach the hub, for the file URLs of the task's webhook
    base_url: str = ""


class OverLimit(Exception):
    """A key's concurrency limit or budget does not allow one more task; nothing was written."""

    def __init__(self, limit: Literal["concurrency", "budget"], key: ApiKey) -> None:
        self.limit = limit
        self.key = key
        super().__init__(limit)
