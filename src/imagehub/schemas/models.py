"""Wire schemas of the catalog: models and their parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from imagehub.schemas.tasks import _Out


class ParameterOut(_Out):
    name: str
    type: str
    required: bool
    default: Any = None
    values: list[str] | None = None
    minimum: int | None = None
    maximum: int | None = None
    description: str


class ModelOut(_Out):
    id: str
    name: str
    vendor: str
    capability: Literal["text-to-image", "image-to-image"]
    description: str
    parameters: list[ParameterOut]
    input_schema: dict[str, Any]
    example: dict[str, Any]
    #: whether a route serves the model on this hub (else a submit answers 503 model_unavailable)
    available: bool = True
    #: the routes that serve it, in the order tried (weights aside); `demo` is the offline
    #: placeholder provider
    providers: list[str] = Field(default_factory=list)


class ModelList(_Out):
    data: list[ModelOut]
