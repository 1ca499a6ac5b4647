"""The catalog's types: a model entry (`ModelSpec`) and its parameter table (`ParamSpec`).

Imports nothing of the project. Loading checks the data and fails fast on a mistake.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from functools import cached_property
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ParamType = Literal["string", "integer", "boolean", "image_size", "image_list", "image"]
Capability = Literal["text-to-image", "image-to-image"]

#: what the parameter table shows in its Type column
DISPLAY_TYPES: dict[str, str] = {
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "image_size": "oneOf",
    "image_list": "string[]",
    "image": "string",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParamSpec(_Frozen):
    """One row of a model's parameter table."""

    name: str
    type: ParamType
    description: str
    required: bool = False
    default: Any = None
    values: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None

    @property
    def display_type(self) -> str:
        return DISPLAY_TYPES[self.type]

    @property
    def range_text(self) -> str:
        """The Values / Range column."""
        if self.values:
            return " ".join(self.values)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum} to {self.maximum}"
        if self.max_items is not None:
            return f"{self.min_items or 0} to {self.max_items} items"
        if self.type == "image_size":
            return "preset, auto or {width, height}"
        return ""


class ModelSpec(_Frozen):
    """One public model: its id, its parameter table and what it maps to upstream."""

    id: str
    name: str
    vendor: str
    capability: Capability
    #: models of one family share upstream behaviour (edit and text-to-image alike)
    family: str
    upstream_model: str
    description: str
    params: tuple[ParamSpec, ...]
    example: dict[str, Any]
    #: name of the output size table, for the Nano Banana family
    sizes: str | None = None
    #: parameters accepted but without effect, with the warning the task carries
    ignored: dict[str, str] = Field(default_factory=dict)

    def param(self, name: str) -> ParamSpec | None:
        return self.params_by_name.get(name)

    @cached_property
    def params_by_name(self) -> dict[str, ParamSpec]:
        """The parameter table by name (looked up several times per request)."""
        return {p.name: p for p in self.params}

    @property
    def is_edit(self) -> bool:
        return self.capability == "image-to-image"


class Catalog:
    """The immutable set of models, plus the size tables they share."""

    def __init__(
        self,
        models: list[ModelSpec],
        sizes: dict[str, dict[str, tuple[int, int]]],
        presets: dict[str, tuple[int, int]],
    ) -> None:
        self._models = {m.id: m for m in models}
        if len(self._models) != len(models):
            raise ValueError("duplicate model id in the catalog")
        self.sizes = sizes
        self.presets = presets
        for model in models:
            if model.sizes is not None and model.sizes not in sizes:
                raise ValueError(f"{model.id}: unknown size table {model.sizes!r}")

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, model_id: str) -> ModelSpec | None:
        return self._models.get(model_id)

    @classmethod
    def load(cls, text: str | None = None) -> Catalog:
        """Parse the TOML catalog (the packaged one by default)."""
        if text is None:
            text = resources.files("imagehub.catalog").joinpath("models.toml").read_text("utf-8")
        data = tomllib.loads(text)
        shared: dict[str, dict[str, Any]] = data["params"]
        models = [_model_from_toml(entry, shared) for entry in data["models"]]
        sizes = {
            name: {ratio: (int(w), int(h)) for ratio, (w, h) in table.items()}
            for name, table in data["sizes"].items()
        }
        presets = {name: (int(w), int(h)) for name, (w, h) in data["image_size_presets"].items()}
        catalog = cls(models, sizes, presets)
        check_defaults(catalog)
        return catalog


def _model_from_toml(entry: dict[str, Any], shared: dict[str, dict[str, Any]]) -> ModelSpec:
    entry = dict(entry)
    overrides: dict[str, dict[str, Any]] = entry.pop("overrides", {})
    params = []
    for name in entry.pop("params"):
        if name not in shared:
            raise ValueError(f"{entry['id']}: unknown parameter {name!r}")
        params.append(ParamSpec(name=name, **{**shared[name], **overrides.pop(name, {})}))
    if overrides:
        raise ValueError(f"{entry['id']}: overrides for parameters it lacks: {sorted(overrides)}")
    return ModelSpec(params=tuple(params), **entry)


class _DefaultsCheck(BaseModel):
    """Guards the data: a default must satisfy its own parameter's rule."""

    param: ParamSpec

    @model_validator(mode="after")
    def _default_fits(self) -> _DefaultsCheck:
        p, d = self.param, self.param.default
        if d is None:
            return self
        if p.values is not None and p.type != "image_size" and d not in p.values:
            raise ValueError(f"default {d!r} of {p.name} is not one of its values")
        if p.type == "integer" and not (
            (p.minimum is None or d >= p.minimum) and (p.maximum is None or d <= p.maximum)
        ):
            raise ValueError(f"default {d!r} of {p.name} is out of range")
        return self


def check_defaults(catalog: Catalog) -> None:
    for model in catalog:
        for param in model.params:
            _DefaultsCheck(param=param)


def nearest_ratio(width: int, height: int, ratios: list[str]) -> str:
    """The ratio in `ratios` closest to width:height, on a log scale."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ratios, key=distance)


def output_size(
    catalog: Catalog,
    model: ModelSpec,
    params: Mapping[str, Any],
    first_input: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The size an image of this model and input should have (CATALOG.md "Output sizes")."""
    if model.sizes is None:  # GPT Image: the requested size
        size = params.get("image_size", "auto")
        if isinstance(size, dict):
            return int(size["width"]), int(size["height"])
        if size == "auto":
            return _auto_gpt_size(first_input) if first_input else (1024, 1024)
        return catalog.presets[str(size)]
    table = catalog.sizes[model.sizes]
    ratio = str(params.get("aspect_ratio", "1:1"))
    if ratio == "auto":
        # only the ratios this model offers: the size table may hold more (Pro lacks 4:1, 8:1...)
        offered = model.param("aspect_ratio")
        values = offered.values if offered is not None and offered.values else tuple(table)
        ratios = [r for r in values if r in table]
        ratio = nearest_ratio(*first_input, ratios=ratios) if first_input else "1:1"
    width, height = table[ratio]
    scale = {"0.5K": 0.5, "1K": 1, "2K": 2, "4K": 4}[str(params.get("resolution", "1K"))]
    return int(width * scale), int(height * scale)


def _auto_gpt_size(first_input: tuple[int, int]) -> tuple[int, int]:
    """Follow the input's shape: about one megapixel, sides multiples of 16, ratio within 3:1."""
    w, h = first_input
    ratio = min(max(w / h, 1 / 3), 3)
    width = math.sqrt(1024 * 1024 * ratio)
    height = width / ratio
    return max(16, round(width / 16) * 16), max(16, round(height / 16) * 16)
