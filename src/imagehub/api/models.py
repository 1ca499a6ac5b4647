"""Model routes: the catalog as JSON."""

from __future__ import annotations

from fastapi import APIRouter

from imagehub.api.deps import CallerDep, HubDep
from imagehub.api.errors import error_responses
from imagehub.api.prices import route_prices
from imagehub.catalog import ModelSpec
from imagehub.hub import Hub
from imagehub.render import model_out
from imagehub.schemas import ModelList, ModelOut

endpoints = APIRouter(prefix="/hub/v1/models", tags=["models"])
_ERRORS = error_responses(401, 404, 422, 429, 503)


@endpoints.get("", response_model=ModelList, responses=_ERRORS)
async def list_models(hub: HubDep, caller: CallerDep) -> ModelList:
    """Every model with its parameter table, JSON Schema, an example, the routes serving it and
    its price per image on each."""
    return ModelList(data=[_model(hub, m) for m in hub.models()])


@endpoints.get("/{model_id:path}", response_model=ModelOut, responses=_ERRORS)
async def get_model(model_id: str, hub: HubDep, caller: CallerDep) -> ModelOut:
    """One model; ids may contain `/` (`nano-banana/edit`)."""
    return _model(hub, hub.model(model_id))


def _model(hub: Hub, spec: ModelSpec) -> ModelOut:
    return model_out(spec, hub.validator, _providers(hub, spec), route_prices(hub, spec))


def _providers(hub: Hub, spec: ModelSpec) -> list[str]:
    """The names of the routes serving the model, in order; `demo` for the offline placeholder."""
    return [route.name for route in hub.router.serving(spec)]
