"""Model routes: the catalog as JSON."""

from __future__ import annotations

from fastapi import APIRouter

from imagehub.api.deps import CallerDep, HubDep
from imagehub.api.errors import error_responses
from imagehub.render import model_out
from imagehub.schemas import ModelList, ModelOut

endpoints = APIRouter(prefix="/hub/v1/models", tags=["models"])
_ERRORS = error_responses(401, 404, 422, 429, 503)


@endpoints.get("", response_model=ModelList, responses=_ERRORS)
async def list_models(hub: HubDep, caller: CallerDep) -> ModelList:
    """Every model with its parameter table, JSON Schema and an example."""
    return ModelList(data=[model_out(m, hub.validator) for m in hub.models()])


@endpoints.get("/{model_id:path}", response_model=ModelOut, responses=_ERRORS)
async def get_model(model_id: str, hub: HubDep, caller: CallerDep) -> ModelOut:
    """One model; ids may contain `/` (`nano-banana/edit`)."""
    return model_out(hub.model(model_id), hub.validator)
