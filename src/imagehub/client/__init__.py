"""The Python SDK: `Client` and `AsyncClient`, typed with the hub's own wire schemas.

Installs and imports without any server dependency: httpx, pydantic, `imagehub.schemas` and
`imagehub.errors` only.

    from imagehub.client import Client

    with Client() as hub:  # IMAGEHUB_URL and IMAGEHUB_API_KEY
        hub.save(hub.generate("nano-banana-2", prompt="a lighthouse at dusk"), "out")
"""

from __future__ import annotations

from imagehub.client.aio import AsyncClient
from imagehub.client.sync import Client
from imagehub.errors import (
    AlreadyFinished,
    ClientError,
    HubError,
    HubUnreachable,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    Overloaded,
    RateLimited,
    TaskFailed,
    Unauthorized,
    WaitTimeout,
)
from imagehub.schemas import FileOut, ImageOut, ModelOut, TaskList, TaskOut

__all__ = [
    "AlreadyFinished",
    "AsyncClient",
    "Client",
    "ClientError",
    "FileOut",
    "HubError",
    "HubUnreachable",
    "IdempotencyKeyReused",
    "ImageOut",
    "InvalidInput",
    "ModelOut",
    "NotFound",
    "Overloaded",
    "RateLimited",
    "TaskFailed",
    "TaskList",
    "TaskOut",
    "Unauthorized",
    "WaitTimeout",
]
