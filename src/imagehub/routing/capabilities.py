"""What each route can honour, per provider kind and model: a parameter is honoured or refused.

A route that cannot honour a request exactly (a resolution its upstream does not take, more
input images than the upstream model reads, web search it cannot do with Google Search, a
safety setting its protocol cannot express...) is skipped; when no route can, the submit is
refused with the parameter and why. Nothing is dropped silently.

`HONOURS` is the table, one entry per provider kind; each entry maps a catalog model family to
what that kind honours for it. `None` in a field means "whatever the catalog allows". A routes
file may widen or narrow a route with its `[routes.supports]` table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagehub.catalog import ModelSpec


@dataclass(frozen=True, slots=True)
class Honours:
    """What one route honours for one model; `None`: every value the catalog allows."""

    resolutions: frozenset[str] | None = None
    #: `auto` is always honoured: the hub leaves the ratio out and the model follows its input
    aspect_ratios: frozenset[str] | None = None
    max_input_images: int | None = None
    mask: bool = True
    web_search: bool = True
    thinking: bool = True
    system_prompt: bool = True
    seed: bool = True
    #: a `safety_tolerance` other than the catalog default can be expressed upstream
    safety_tolerance: bool = True
    #: the upstream streams partial images while it draws (the submit option `partial_images`); off
    #: unless the provider's adapter streams them: only OpenAI's Images API does
    partial_images: bool = False

    def with_changes(self, changes: Mapping[str, Any]) -> Honours:
        """These honours with some fields replaced (a routes file's `supports`)."""
        values: dict[str, Any] = {
            name: frozenset(value) if isinstance(value, list | tuple | set) else value
            for name, value in changes.items()
            if value is not None
        }
        return dataclasses.replace(self, **values)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a route cannot honour a request: the parameter, and what of it is not supported."""

    param: str
    #: what is refused, as in "no configured route for M supports <what>"
    what: str


EVERYTHING = Honours()

#: The ten aspect ratios of Gemini 2.5 Flash Image and 3 Pro Image (python-genai ImageConfig;
#: OpenRouter image generation guide).
_TEN_RATIOS = frozenset({"21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"})
#: Gemini 3.1 Flash Image adds 4:1, 1:4, 8:1 and 1:8 (Vertex model page; OpenRouter lists them
#: for google/gemini-3.1-flash-image, upstream audit "Verified OK").
_FOURTEEN_RATIOS = _TEN_RATIOS | {"4:1", "1:4", "8:1", "1:8"}

#: Google's own APIs (Gemini API and Vertex AI). Gemini 2.5 Flash Image takes at most 3 input
#: images (Vertex model page gemini-2.5-flash-image), the 3.x image models 14 (Vertex model
#: pages gemini-3-pro-image, gemini-3.1-flash-image); no mask input. Resolutions, ratios,
#: `googleSearch`, `thinkingConfig`, `systemInstruction`, `seed` and `safetySettings` are
#: all expressed (upstream audit "Verified OK").
_GOOGLE: dict[str, Honours] = {
    "nano-banana": Honours(max_input_images=3, mask=False),
    "nano-banana-2": Honours(max_input_images=14, mask=False),
    "nano-banana-pro": Honours(max_input_images=14, mask=False),
}

#: OpenRouter's chat completions for Google's image models (OpenRouter image generation guide):
#: - `image_config.image_size` is documented as 1K, 2K and 4K only: "0.5K" (or "512") is not
#:   sent unless the route's `supports.resolutions` says the route takes it (upstream audit #3).
#: - web search: the `web` plugin is deprecated and runs on Exa, not Google Search, for Google
#:   models; the `openrouter:web_search` server tool's `native` engine is documented for
#:   Anthropic, OpenAI, Perplexity and xAI, not Google (OpenRouter web search guide; upstream
#:   audit #5): no Google-grounded search, so `enable_web_search` is refused.
#: - `safety_tolerance` has no field in the protocol.
#: - the input-image limits are the Google model's own (the same Vertex model pages).
_OPENAI_CHAT: dict[str, Honours] = {
    "nano-banana": Honours(
        max_input_images=3, mask=False, web_search=False, safety_tolerance=False
    ),
    "nano-banana-2": Honours(
        resolutions=frozenset({"1K", "2K", "4K"}),
        aspect_ratios=_FOURTEEN_RATIOS,
        max_input_images=14,
        mask=False,
        web_search=False,
        safety_tolerance=False,
    ),
    "nano-banana-pro": Honours(
        resolutions=frozenset({"1K", "2K", "4K"}),
        aspect_ratios=_TEN_RATIOS,
        max_input_images=14,
        mask=False,
        web_search=False,
        safety_tolerance=False,
    ),
}

#: OpenAI Images: edits take at most 16 images and a mask (OpenAI API reference, images/edits;
#: upstream audit "Verified OK"); no seed.
#: Streams partial images with `stream: true` and `partial_images` 0-3 (openai-python
#: image_generate_params.py, image_gen_partial_image_event.py).
_OPENAI: dict[str, Honours] = {
    "gpt-image-2": Honours(max_input_images=16, seed=False, partial_images=True)
}

#: By provider kind, then model family. fal's schemas are the catalog's own (the hub's public
#: parameters follow them), so fal honours whatever the catalog allows; so does the offline demo.
HONOURS: dict[str, dict[str, Honours]] = {
    "demo": {},
    "fal": {},
    "gemini": _GOOGLE,
    "vertex": _GOOGLE,
    "openai": _OPENAI,
    "openrouter": _OPENAI_CHAT,
    #: an OpenAI-compatible relay follows OpenRouter's conventions unless its route says more
    "openai_compatible": _OPENAI_CHAT,
}


def honours_of(kind: str, model: ModelSpec) -> Honours:
    """What a route of this provider kind honours for this model."""
    return HONOURS.get(kind, {}).get(model.family, EVERYTHING)


#: submit options a route may refuse: they sit beside `model` and `input`, not in `input`
SUBMIT_OPTIONS = frozenset({"partial_images"})


def refusal(
    honours: Honours, model: ModelSpec, params: Mapping[str, Any], partial_images: int = 0
) -> Refusal | None:
    """The first parameter of a validated request these honours cannot honour, if any.

    `partial_images` is the submit option of that name (partial images streamed while drawing).
    """
    if partial_images and not honours.partial_images:
        return Refusal(
            "partial_images",
            "partial_images (streamed while drawing: gpt-image-2 on OpenAI routes)",
        )
    for check in _CHECKS:
        found = check(honours, model, params)
        if found is not None:
            return found
    return None


def _resolution(h: Honours, model: ModelSpec, params: Mapping[str, Any]) -> Refusal | None:
    value = params.get("resolution")
    if value is None or h.resolutions is None or value in h.resolutions:
        return None
    return Refusal("resolution", f"resolution {value}")


def _aspect_ratio(h: Honours, model: ModelSpec, params: Mapping[str, Any]) -> Refusal | None:
    value = params.get("aspect_ratio")
    if value in (None, "auto") or h.aspect_ratios is None or value in h.aspect_ratios:
        return None
    return Refusal("aspect_ratio", f"aspect_ratio {value}")


def _images(h: Honours, model: ModelSpec, params: Mapping[str, Any]) -> Refusal | None:
    count = len(params.get("image_urls") or ())
    if h.max_input_images is None or count <= h.max_input_images:
        return None
    return Refusal(
        "image_urls", f"{count} input images in image_urls (at most {h.max_input_images})"
    )


def _mask(h: Honours, model: ModelSpec, params: Mapping[str, Any]) -> Refusal | None:
    return Refusal("mask_url", "mask_url") if params.get("mask_url") and not h.mask else None


def _flag(name: str, field: str) -> Any:
    """A check for a parameter that, when set, needs the route to support `field`."""

    def check(h: Honours, model: ModelSpec, params: Mapping[str, Any]) -> Refusal | None:
        if getattr(h, field) or name in model.ignored:  # ignored by the catalog: nothing to do
            return None
        value = params.get(name)
        unset = value is None or value is False or value == ""  # a seed of 0 is set
        return None if unset else Refusal(name, name)

    return check


def _safety(h: Honours, model: ModelSpec, params: Mapping[str, Any]) -> Refusal | None:
    value = params.get("safety_tolerance")
    spec = model.param("safety_tolerance")
    if h.safety_tolerance or value is None or spec is None or str(value) == str(spec.default):
        return None
    return Refusal("safety_tolerance", f"safety_tolerance {value}")


_CHECKS = (
    _resolution,
    _aspect_ratio,
    _images,
    _mask,
    _flag("enable_web_search", "web_search"),
    _flag("thinking_level", "thinking"),
    _flag("system_prompt", "system_prompt"),
    _flag("seed", "seed"),
    _safety,
)
