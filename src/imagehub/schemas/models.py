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


class TokenRatesOut(_Out):
    """USD per million tokens, as the upstream bills them."""

    text_in: float
    image_in: float
    text_out: float
    image_out: float


class RoutePriceOut(_Out):
    """What one image of the model costs on one of its routes."""

    route: str = Field(description="The route's name, as a task's `provider` reports it.")
    provider: str = Field(description="The route's kind: gemini, vertex, openai, fal, demo...")
    usd_per_image: float = Field(description="One image at the model's default parameters.")
    min_usd_per_image: float
    max_usd_per_image: float
    varies_by: Literal["", "resolution", "size"] = Field(
        description="What moves the price between min and max: `resolution`, `size` (and "
        "quality), or nothing."
    )
    web_search_usd: float = Field(0.0, description="Added per image with enable_web_search.")
    basis: Literal["per_image", "tokens"] = Field(
        description="`tokens`: a task is charged the tokens the upstream reports at "
        "`token_rates` (the per-image figures are what a submit reserves)."
    )
    token_rates: TokenRatesOut | None = None
    description: str = Field(description="The price in a sentence (English).")


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
    #: the price per image on each of those routes (from the hub's price book)
    price: list[RoutePriceOut] = Field(default_factory=list)


class ModelList(_Out):
    data: list[ModelOut]
