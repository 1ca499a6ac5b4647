"""Input validation driven by the catalog: one pydantic model per catalog entry.

Every failing field is reported at once, unknown fields are refused, wrong types are refused
rather than coerced (safety_tolerance integers excepted), and defaults are applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from imagehub.catalog.spec import Catalog, ModelSpec, ParamSpec
from imagehub.errors import InvalidInput

Detail = dict[str, Any]

_IMAGE_URL_PREFIXES = ("https://", "http://")
#: what the fetcher can decode: base64 data URIs only
# imaging.DATA_URI's pattern: the catalog is loaded by the SDK's CLI, which must not import Pillow
_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
MAX_SIDE = 3840
MIN_PIXELS = 655_360
MAX_PIXELS = 8_294_400


@dataclass(frozen=True, slots=True)
class ValidInput:
    """A validated input: every parameter with defaults applied, and what the hub will ignore."""

    params: dict[str, Any]
    warnings: tuple[str, ...]


class Validator:
    """Validates task input for every model of a catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._models = {spec.id: _input_model(spec, catalog) for spec in catalog}

    def validate(self, model_id: str, raw: object) -> ValidInput:
        """Check `raw` against the model's table; raise InvalidInput with every failing field."""
        spec = self.catalog.get(model_id)
        if spec is None:
            known = ", ".join(m.id for m in self.catalog)
            raise InvalidInput.one(["model"], f"unknown model {model_id!r}; one of {known}", "enum")
        if not isinstance(raw, dict):
            raise InvalidInput.one(["input"], "must be an object", "dict_type")
        details: list[Detail] = []
        params: dict[str, Any] = {}
        try:
            validated = self._models[model_id].model_validate(raw)
            params = validated.model_dump(exclude_none=True)
        except ValidationError as exc:
            details = [_detail(error) for error in exc.errors()]
        if spec.param("image_size") is not None:
            details += _size_rules(raw.get("image_size"))
        if details:
            raise InvalidInput(details)
        warnings = tuple(msg for name, msg in spec.ignored.items() if params.get(name))
        return ValidInput(params=params, warnings=warnings)

    def json_schema(self, model_id: str) -> dict[str, Any]:
        schema = self._models[model_id].model_json_schema()
        for prop in schema["properties"].values():
            if prop.get("default", ...) is None:  # "no default", not a null default
                del prop["default"]
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _input_model(spec: ModelSpec, catalog: Catalog) -> type[BaseModel]:
    fields: dict[str, Any] = {p.name: _field(p, catalog) for p in spec.params}
    model: type[BaseModel] = create_model(
        "Input_" + spec.id.replace("-", "_").replace("/", "__"),
        __config__=ConfigDict(strict=True, extra="forbid"),
        **fields,
    )
    return model


def _field(p: ParamSpec, catalog: Catalog) -> tuple[Any, Any]:
    field_kw: dict[str, Any] = {"description": p.description}
    annotation = _annotation(p, catalog)
    if p.required:
        return annotation, Field(..., **field_kw)
    # an optional field without a default stays absent when omitted; an explicit null is
    # refused like any other wrong type (defaults are not validated, so None is safe here)
    return annotation, Field(p.default, **field_kw)


def _annotation(p: ParamSpec, catalog: Catalog) -> Any:
    if p.type == "image_size":
        return _image_size_type(catalog)
    if p.type == "image_list":
        return Annotated[list[_IMAGE_REF], Field(min_length=p.min_items, max_length=p.max_items)]
    if p.type == "image":
        return _IMAGE_REF
    if p.type == "boolean":
        return bool
    if p.type == "integer":
        return Annotated[int, Field(ge=p.minimum, le=p.maximum)]
    if p.values:
        literal: Any = Literal[tuple(p.values)]
        if p.name == "safety_tolerance":
            accepted = {
                "anyOf": [
                    {"type": "string", "enum": list(p.values)},
                    {"type": "integer", "minimum": 1, "maximum": len(p.values)},
                ]
            }
            return Annotated[literal, BeforeValidator(_int_to_str), WithJsonSchema(accepted)]
        return literal
    text = Annotated[str, Field(min_length=p.min_length, max_length=p.max_length)]
    if p.required:
        return Annotated[text, AfterValidator(_not_blank)]
    return text


def _int_to_str(value: object) -> object:
    # the one coercion the catalog allows: safety_tolerance 1..6 as integers
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


def _check_image_ref(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not (value.startswith(_IMAGE_URL_PREFIXES) or _DATA_URI.match(value)):
        raise PydanticCustomError(
            "url_scheme", "must be an http(s) URL, a base64 data:image URI or a hub file URL"
        )
    return value


_IMAGE_REF = Annotated[
    str,
    PlainValidator(_check_image_ref),
    WithJsonSchema({"type": "string", "format": "uri"}),
]


def _image_size_type(catalog: Catalog) -> Any:
    names = [*catalog.presets, "auto"]

    def check(value: object) -> str | dict[str, int]:
        if isinstance(value, str):
            if value in names:
                return value
            raise PydanticCustomError(
                "enum",
                "must be one of {expected}, or an object with width and height",
                {"expected": ", ".join(names)},
            )
        if isinstance(value, dict):
            if set(value) != {"width", "height"}:
                raise PydanticCustomError("dict_keys", "must have exactly width and height")
            if not all(_is_int(v) and v > 0 for v in value.values()):
                raise PydanticCustomError("int_type", "width and height must be positive integers")
            return {"width": value["width"], "height": value["height"]}
        raise PydanticCustomError("image_size_type", "must be a preset name or {width, height}")

    schema = {
        "oneOf": [
            {"type": "string", "enum": names},
            {
                "type": "object",
                "properties": {
                    "width": {"type": "integer", "multipleOf": 16, "maximum": MAX_SIDE},
                    "height": {"type": "integer", "multipleOf": 16, "maximum": MAX_SIDE},
                },
                "required": ["width", "height"],
                "additionalProperties": False,
            },
        ]
    }
    return Annotated[str | dict[str, int], PlainValidator(check), WithJsonSchema(schema)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _size_rules(size: object) -> list[Detail]:
    """GPT Image custom-size rules; each broken rule is its own detail."""
    if not isinstance(size, dict) or set(size) != {"width", "height"}:
        return []
    w, h = size["width"], size["height"]
    if not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
        return []
    loc = ["input", "image_size"]
    rules = [
        (w % 16 == 0 and h % 16 == 0, "both sides must be multiples of 16", "multiple_of"),
        (max(w, h) <= MAX_SIDE, f"the longest side must be <= {MAX_SIDE}", "max_side"),
        (max(w, h) / min(w, h) <= 3, "the long side must be at most 3 times the short", "ratio"),
        (
            MIN_PIXELS <= w * h <= MAX_PIXELS,
            f"width x height must be between {MIN_PIXELS:,} and {MAX_PIXELS:,}",
            "pixels",
        ),
    ]
    return [{"loc": loc, "msg": msg, "type": kind} for ok, msg, kind in rules if not ok]


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "list_type": "must be a list",
}


def _detail(error: Any) -> Detail:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    msg = _MESSAGES.get(kind, error["msg"])
    if kind == "literal_error":
        expected = ctx["expected"].replace("'", "").replace(" or ", ", ")
        kind, msg = "enum", f"must be one of {expected}"
    elif kind == "less_than_equal":
        msg = f"must be <= {ctx['le']}"
    elif kind == "greater_than_equal":
        msg = f"must be >= {ctx['ge']}"
    elif kind == "string_too_long":
        msg = f"must be at most {ctx['max_length']} characters"
    elif kind == "string_too_short":
        msg = "must not be empty"
    elif kind == "too_short":
        msg = f"must have at least {ctx['min_length']} item(s)"
    elif kind == "too_long":
        msg = f"must have at most {ctx['max_length']} items"
    return {"loc": ["input", *error["loc"]], "msg": msg, "type": kind}
