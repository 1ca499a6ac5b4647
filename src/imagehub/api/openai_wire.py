"""OpenAI Images API requests as hub task inputs, and hub answers back in OpenAI's shapes.

Pure translation, no I/O: `openai_images.py` holds the routes.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imagehub.catalog import Catalog, ModelSpec
from imagehub.catalog.spec import nearest_ratio
from imagehub.errors import (
    HubError,
    InvalidInput,
    InvalidJSON,
    ModelUnavailable,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)
from imagehub.tasks import Task

#: the model used when a request names none (OpenAI's own default is a DALL-E model)
DEFAULT_MODEL = "gpt-image-2"
#: other OpenAI image model names, all served by GPT Image 2, the GPT model the hub has
GPT_ALIASES = (
    "gpt-image-2-2026-04-21",
    "gpt-image-1.5",
    "gpt-image-1",
    "gpt-image-1-mini",
    "chatgpt-image-latest",
    "dall-e-3",
    "dall-e-2",
)
#: vendor prefixes some OpenAI-compatible gateways put before model names
_PREFIXES = ("openai/", "google/")
#: OpenAI request fields the hub accepts and has no use for
IGNORED = frozenset(
    {"moderation", "output_compression", "user", "style", "input_fidelity"} | {"safety_identifier"}
)
#: hub parameters with an OpenAI field of their own, or no meaning here
_NOT_PASSED = frozenset({"prompt", "image_urls", "mask_url", "sync_mode"})
_QUALITY = {"standard": "medium", "hd": "high"}
_TIERS = {"0.5K": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
#: hub parameter names to the OpenAI field a client sent
_PARAMS = {"num_images": "n", "image_size": "size", "image_urls": "image", "mask_url": "mask"}


class ImagesRequest(BaseModel):
    """The fields of POST /v1/images/generations and /v1/images/edits the hub reads.

    Catalog parameters of the chosen model (`aspect_ratio`, `resolution`, `seed`...) may be
    sent too (the OpenAI SDK's `extra_body`) and are passed to the task as they are.
    """

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, pattern=r"\S", description="What to draw; not blank.")
    model: str | None = None
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    response_format: Literal["b64_json", "url"] | None = None
    output_format: str | None = None
    background: str | None = None
    stream: bool | None = None
    #: partial images to stream before the image (`stream: true` only)
    partial_images: int | None = Field(None, ge=0, le=3)


def validated(data: Any) -> ImagesRequest:
    try:
        return ImagesRequest.model_validate(data)
    except ValidationError as exc:
        details = [
            {"loc": [str(p) for p in e["loc"]] or ["body"], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise InvalidInput(details) from None


@functools.lru_cache(maxsize=16)
def aliases(catalog: Catalog) -> Mapping[str, str]:
    """Every accepted `model` name, to the text-to-image hub model it runs on (a catalog is
    never changed once loaded: built once per catalog)."""
    names: dict[str, str] = {}
    for spec in catalog:
        if not spec.is_edit:
            names[spec.id] = spec.id
            names.setdefault(spec.upstream_model, spec.id)
            if spec.vendor == "Google":  # the Gemini preview ids some code still uses
                names.setdefault(f"{spec.upstream_model}-preview", spec.id)
    for name in GPT_ALIASES:
        names.setdefault(name, DEFAULT_MODEL)
    return names


def resolve_model(catalog: Catalog, name: str | None, *, edit: bool) -> ModelSpec:
    """The hub model a request's `model` names; edits run on the family's edit model."""
    wanted = name or DEFAULT_MODEL
    bare = next((wanted[len(p) :] for p in _PREFIXES if wanted.startswith(p)), wanted)
    bare = bare.removesuffix("/edit") if edit else bare
    hub_id = aliases(catalog).get(bare)
    spec = catalog.get(f"{hub_id}/edit" if edit else hub_id) if hub_id else None
    if spec is None:
        known = ", ".join(m.id for m in catalog if not m.is_edit)
        raise InvalidInput.one(
            ["model"], f"the hub has no model {wanted!r}; use one of {known}", "model_not_found"
        )
    return spec


def to_input(catalog: Catalog, spec: ModelSpec, request: ImagesRequest) -> dict[str, Any]:
    """The task input for `spec`; the catalog validation checks the values afterwards."""
    if request.partial_images and not request.stream:
        raise InvalidInput.one(["partial_images"], "needs stream: true", "unsupported")
    if request.background == "transparent":
        raise InvalidInput.one(["background"], "transparent is not supported", "unsupported")
    params: dict[str, Any] = {"prompt": request.prompt}
    if request.n is not None:
        params["num_images"] = request.n
    if (fmt := request.output_format) is not None:
        params["output_format"] = "jpeg" if fmt == "jpg" else fmt
    if request.quality is not None and spec.param("quality") is not None:
        params["quality"] = _QUALITY.get(request.quality, request.quality)
    params.update(size_params(catalog, spec, request.size))
    params.update(_passed_through(spec, request.model_extra or {}))
    return params


def _passed_through(spec: ModelSpec, extra: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in extra.items():
        param = spec.param(name)
        if name in IGNORED or value is None:
            continue
        if param is None or name in _NOT_PASSED:
            raise InvalidInput.one([name], "unknown parameter", "unknown_parameter")
        params[name] = _typed(param.type, value)
    return params


def _typed(kind: str, value: Any) -> Any:
    """Form fields arrive as text: integers and booleans of the catalog are converted."""
    if not isinstance(value, str):
        return value
    if kind == "integer" and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if kind == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def size_params(catalog: Catalog, spec: ModelSpec, size: str | None) -> dict[str, Any]:
    """`size` as the model's own parameters (README, "OpenAI-compatible endpoints")."""
    wanted = None if size in (None, "auto") else size
    if spec.param("image_size") is not None:  # GPT Image: the size itself
        return {"image_size": _image_size(catalog, wanted)}
    aspect = spec.param("aspect_ratio")
    offered = list(aspect.values or ()) if aspect is not None else []
    if wanted is None:
        return {"aspect_ratio": "auto"} if "auto" in offered else {}
    return _ratio_and_tier(catalog, spec, _dimensions(wanted), offered)


def _image_size(catalog: Catalog, size: str | None) -> str | dict[str, int]:
    """A preset name or "auto" as it is; "WxH" as GPT Image's width and height."""
    if size is None or size in catalog.presets:
        return size or "auto"
    width, height = _dimensions(size)
    return {"width": width, "height": height}


def _ratio_and_tier(
    catalog: Catalog, spec: ModelSpec, dimensions: tuple[int, int], offered: list[str]
) -> dict[str, Any]:
    """The nearest aspect ratio the model offers, and the resolution tier nearest the size."""
    width, height = dimensions
    table = catalog.sizes[spec.sizes or ""]
    ratio = nearest_ratio(width, height, [r for r in offered if r in table])
    params: dict[str, Any] = {"aspect_ratio": ratio}
    resolution = spec.param("resolution")
    if resolution is not None and resolution.values:
        params["resolution"] = _tier(max(table[ratio]), max(width, height), resolution.values)
    return params


def _dimensions(size: str) -> tuple[int, int]:
    match = _SIZE.match(size.strip())
    if not match or 0 in (int(match.group(1)), int(match.group(2))):
        raise InvalidInput.one(
            ["size"], f"must be auto or WIDTHxHEIGHT such as 1024x1024, not {size!r}", "enum"
        )
    return int(match.group(1)), int(match.group(2))


def _tier(long_side_1k: int, wanted: int, tiers: tuple[str, ...]) -> str:
    """The resolution tier whose output's long side is nearest the wanted one (log scale)."""
    usable = [t for t in tiers if t in _TIERS]
    return min(usable, key=lambda t: abs(math.log(wanted / (long_side_1k * _TIERS[t]))))


# -- answers


def images_response(task: Task, data: list[dict[str, str]]) -> dict[str, Any]:
    """The body of a successful answer: OpenAI's ImagesResponse."""
    images = task.output.images if task.output else ()
    body: dict[str, Any] = {
        "created": int(task.created_at.timestamp()),
        "data": data,
        "output_format": task.input.get("output_format", "png"),
        "usage": _usage(task),
    }
    if images:
        body["size"] = f"{images[0].width}x{images[0].height}"
    if "quality" in task.input:
        body["quality"] = task.input["quality"]
    return body


def url_answer(task: Task, urls: list[str]) -> bytes:
    """The JSON body of a successful answer with `response_format: url`."""
    return orjson.dumps(images_response(task, [{"url": url} for url in urls]))


#: where the images go in the JSON orjson writes for the rest of a `b64_json` answer
_DATA = b'"data":[]'


def b64_answer(task: Task, images: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """The JSON body of a successful `b64_json` answer, in parts to send one after the other:
    each image's base64 goes into the JSON as it is (base64 needs no escaping), never copied
    into a str, scanned by a JSON encoder or joined with the rest; orjson writes the rest."""
    head, data, tail = orjson.dumps(images_response(task, [])).partition(_DATA)
    if not data:
        raise AssertionError("images_response lost its data field")
    parts: list[bytes | memoryview] = [head + b'"data":[']
    for i, image in enumerate(images):
        parts += [b',{"b64_json":"' if i else b'{"b64_json":"', image, b'"}']
    parts.append(b"]" + tail)
    return parts


def stream_event(
    task: Task,
    request: ImagesRequest,
    b64_json: str,
    *,
    edit: bool,
    partial_index: int | None = None,
    size: tuple[int, int] | None = None,
) -> str:
    """One server-sent event of a streamed answer, as OpenAI sends them: the event named by its
    `type`, a `partial_image` with its index or a `completed` image with the usage."""
    kind = "image_edit" if edit else "image_generation"
    partial = partial_index is not None
    body: dict[str, Any] = {
        "type": f"{kind}.partial_image" if partial else f"{kind}.completed",
        "b64_json": b64_json,
        "background": request.background or "auto",
        "created_at": int(time.time()),
        "output_format": task.input.get("output_format", "png"),
        "quality": task.input.get("quality", "auto"),
        "size": f"{size[0]}x{size[1]}" if size else "auto",
    }
    if partial:
        body["partial_image_index"] = partial_index
    else:
        body["usage"] = _usage(task)
    return f"event: {body['type']}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"


def stream_error(status_body: dict[str, Any]) -> str:
    """The event that ends a stream whose task failed: its error in OpenAI's shape (the SDK
    raises an `APIError` on an event whose data has an `error`)."""
    body = {"type": "error", **status_body}
    return f"event: error\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"


def _usage(task: Task) -> dict[str, Any]:
    """Token counts as the upstream reported them (0 when it did not, as the demo provider)."""
    tokens_in = (task.usage.input_tokens if task.usage else None) or 0
    tokens_out = (task.usage.output_tokens if task.usage else None) or 0
    # the hub does not see the split of input tokens: a generation's input is all text
    edit = bool(task.input.get("image_urls"))
    return {
        "input_tokens": tokens_in,
        "input_tokens_details": {
            "text_tokens": 0 if edit else tokens_in,
            "image_tokens": tokens_in if edit else 0,
        },
        "output_tokens": tokens_out,
        "output_tokens_details": {"text_tokens": 0, "image_tokens": tokens_out},
        "total_tokens": tokens_in + tokens_out,
    }


def error_body(
    message: str, kind: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


#: hub request errors: status, OpenAI error type, OpenAI error code
_REQUEST_ERRORS: list[tuple[type[HubError], int, str, str | None]] = [
    (Unauthorized, 401, "invalid_request_error", "invalid_api_key"),
    (RateLimited, 429, "requests", "rate_limit_exceeded"),
    (InvalidJSON, 400, "invalid_request_error", None),
    (PayloadTooLarge, 413, "invalid_request_error", "payload_too_large"),
    (NotFound, 404, "invalid_request_error", "not_found"),
    (Overloaded, 503, "server_error", "overloaded"),
    (ModelUnavailable, 503, "server_error", "model_unavailable"),
]


def request_error(exc: HubError) -> tuple[int, dict[str, Any]]:
    """A hub error raised while handling a request, as OpenAI would answer it."""
    if isinstance(exc, InvalidInput):
        return 400, _invalid(exc)
    for cls, status, kind, code in _REQUEST_ERRORS:
        if isinstance(exc, cls):
            return status, error_body(exc.message, kind, code)
    return 500, error_body(exc.message, "server_error", exc.code)


def _invalid(exc: InvalidInput) -> dict[str, Any]:
    if not exc.details:
        return error_body(exc.message, "invalid_request_error", exc.code)
    parts, params = [], []
    for detail in exc.details:
        loc = [str(p) for p in detail["loc"]]
        name = loc[1] if loc[0] in ("input", "header", "query") and len(loc) > 1 else loc[0]
        param = "image" if name == "body" else _PARAMS.get(name, name)
        params.append(param)
        parts.append(f"{param}: {detail['msg']}")
    first = exc.details[0]["type"]
    code = "unknown_parameter" if first in ("unknown_parameter", "extra_forbidden") else first
    message = "Invalid request: " + "; ".join(parts)
    return error_body(message, "invalid_request_error", code, params[0])


#: task error codes: status, OpenAI error type, OpenAI error code
_FAILURES: dict[str, tuple[int, str, str]] = {
    "content_policy_violation": (400, "image_generation_user_error", "moderation_blocked"),
    "invalid_input_image": (400, "invalid_request_error", "invalid_image"),
    "image_download_error": (400, "invalid_request_error", "invalid_image_url"),
    "upstream_rate_limited": (429, "requests", "rate_limit_exceeded"),
    "upstream_unavailable": (503, "server_error", "upstream_unavailable"),
    "upstream_timeout": (504, "server_error", "upstream_timeout"),
    "canceled": (409, "invalid_request_error", "canceled"),
}


def task_error(task: Task) -> tuple[int, dict[str, Any]]:
    """A task that ended without images, as OpenAI would answer the request."""
    code = task.error.code if task.error else "internal_error"
    message = task.error.message if task.error else "The task failed."
    status, kind, openai_code = _FAILURES.get(code, (500, "server_error", code))
    return status, error_body(f"{message} (task {task.id})", kind, openai_code)
