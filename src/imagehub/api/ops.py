"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from imagehub.api.deps import HubDep

endpoints = APIRouter(tags=["operations"])


@endpoints.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@endpoints.get(
    "/readyz",
    responses={
        200: {
            "description": "Ready: the store answers, the worker runs (`worker` is null in a "
            "process that runs none, `imagehub serve --no-worker`)"
        },
        503: {"description": "Not ready: the same keys, with the check that failed false"},
    },
)
async def readyz(hub: HubDep) -> JSONResponse:
    """The store answers and the worker (if this process runs one) is running."""
    checks = await hub.ready()
    ok = all(check is not False for check in checks.values())  # None: not run here
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, 200 if ok else 503)


@endpoints.get("/metrics", response_class=Response)
async def metrics(hub: HubDep) -> Response:
    """Prometheus text."""
    return Response(await hub.metrics_text(), media_type=CONTENT_TYPE_LATEST)
