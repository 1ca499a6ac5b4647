"""What a task costs: one price book, by the kind of route that serves it.

A submit reserves `reserve()`: the most any of the model's routes could charge for what the task
asks (every image at its requested size). The finish settles `settle()`: what the route that
served it charges for the images it made, or for the tokens it reports where its upstream bills
tokens (OpenAI). The prices themselves are data (`catalog/prices.toml`), each with its source.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imagehub.catalog import Catalog, ModelSpec, output_size
from imagehub.tasks import Basis

#: a table entry for every family the table does not list
ANY_FAMILY = "*"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenRates(_Frozen):
    """USD per million tokens."""

    text_in: float
    image_in: float
    text_out: float
    image_out: float


class FamilyPrice(_Frozen):
    """The price of one model family on one kind of route (see `prices.toml` for the fields)."""

    per_image: float
    resolution: dict[str, float] = Field(default_factory=dict)
    sizes: dict[str, dict[str, float]] = Field(default_factory=dict)
    web_search: float = 0.0
    thinking: dict[str, float] = Field(default_factory=dict)
    tokens: TokenRates | None = None

    def image(self, params: Mapping[str, Any], width: int, height: int) -> float:
        """The price of one output image of the requested size."""
        price = self.resolution.get(str(params.get("resolution", "")), self.per_image)
        if self.sizes:
            by_quality = self.sizes[nearest_size(list(self.sizes), width, height)]
            price = by_quality.get(str(params.get("quality", "")), max(by_quality.values()))
        if params.get("enable_web_search"):
            price += self.web_search
        return price + self.thinking.get(str(params.get("thinking_level", "")), 0.0)


class _Book(_Frozen):
    kinds: dict[str, str]
    default: dict[str, str]
    tables: dict[str, dict[str, FamilyPrice]]


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts an upstream reported; a split it did not report is None."""

    input: int
    output: int
    #: of `input`, the image tokens; of `output`, the text tokens
    input_image: int | None = None
    output_text: int | None = None


@dataclass(frozen=True, slots=True)
class Cost:
    micros: int
    basis: Basis

    @property
    def usd(self) -> float:
        return self.micros / 1_000_000


@dataclass(frozen=True, slots=True)
class PriceCard:
    """What a model costs per image on a kind of route, as a model page shows it."""

    #: each image at the model's default parameters
    usd_per_image: float
    #: the cheapest and dearest image over the sizes or resolutions the price book lists
    min_usd: float
    max_usd: float
    #: what the price varies by: "resolution", "size" (and quality), or "" (one price)
    varies_by: Literal["", "resolution", "size"]
    #: added per image when web search is on (0: nothing, or not listed)
    web_search_usd: float
    #: the upstream's token rates where a task settles on the tokens it reports
    tokens: TokenRates | None


class Pricing:
    """Reserves at submit and settles at finish, from one price book."""

    def __init__(self, catalog: Catalog, book: _Book) -> None:
        self.catalog = catalog
        self._book = book
        fallback = book.tables.get(book.default.get("table", ""))
        if fallback is None:
            raise ValueError("the price book's [default] table must be one of its tables")
        unpriced = sorted({m.family for m in catalog} - fallback.keys())
        if unpriced and ANY_FAMILY not in fallback:
            raise ValueError(f"the default price table lacks {', '.join(unpriced)}")
        for kind, table in book.kinds.items():
            if table not in book.tables:
                raise ValueError(f"route kind {kind!r} names no price table ({table!r})")
        self._fallback = fallback

    @classmethod
    def load(cls, catalog: Catalog, text: str | None = None) -> Pricing:
        """The price book shipped with the package, or one given as TOML text."""
        if text is None:
            text = resources.files("imagehub.catalog").joinpath("prices.toml").read_text("utf-8")
        return cls(catalog, _Book.model_validate(tomllib.loads(text)))

    def price(self, kind: str, spec: ModelSpec) -> FamilyPrice:
        """The price of a model on a kind of route; a kind the book lacks is priced as default."""
        table = self._book.tables.get(self._book.kinds.get(kind, ""), {})
        found = table.get(spec.family) or table.get(ANY_FAMILY)
        return found or self._fallback.get(spec.family) or self._fallback[ANY_FAMILY]

    def card(self, kind: str, spec: ModelSpec) -> PriceCard:
        """The model's price per image on a kind of route: at its defaults, and its range."""
        price = self.price(kind, spec)
        defaults = {p.name: p.default for p in spec.params if p.default is not None}
        each = price.image(defaults, *output_size(self.catalog, spec, defaults))
        varies_by: Literal["", "resolution", "size"] = ""
        values = [each]
        if price.sizes:
            varies_by = "size"
            values = [usd for by_quality in price.sizes.values() for usd in by_quality.values()]
        elif price.resolution:
            offered = spec.param("resolution")
            names = offered.values if offered is not None and offered.values else ()
            listed = [usd for name, usd in price.resolution.items() if name in names]
            if len(set(listed)) > 1:
                varies_by, values = "resolution", listed
        return PriceCard(
            usd_per_image=each,
            min_usd=min(values),
            max_usd=max(values),
            varies_by=varies_by,
            web_search_usd=price.web_search if spec.param("enable_web_search") else 0.0,
            tokens=price.tokens,
        )

    def quote(self, kind: str, spec: ModelSpec, params: Mapping[str, Any]) -> int:
        """The most a route of this kind can charge for the task, in micro-USD."""
        price = self.price(kind, spec)
        each = price.image(params, *output_size(self.catalog, spec, params))
        usd = each * int(params.get("num_images", 1))
        if price.tokens is not None:  # the prompt is billed too: a token is at least a byte
            usd += len(str(params.get("prompt", "")).encode()) * price.tokens.text_in / 1e6
        return _micros(usd)

    def reserve(self, spec: ModelSpec, params: Mapping[str, Any], kinds: Iterable[str]) -> int:
        """What a submit reserves: the dearest of the routes that may serve it (0 with none)."""
        return max((self.quote(kind, spec, params) for kind in kinds), default=0)

    def settle(
        self,
        kind: str,
        spec: ModelSpec,
        params: Mapping[str, Any],
        *,
        images: int,
        tokens: Tokens | None = None,
    ) -> Cost:
        """What a finished task costs on the route that served it: its tokens where that
        upstream bills tokens and reported them, else each image it made."""
        price = self.price(kind, spec)
        if price.tokens is not None and tokens is not None:
            return Cost(_micros(_token_usd(price.tokens, tokens)), "tokens")
        each = price.image(params, *output_size(self.catalog, spec, params))
        return Cost(_micros(each * images), "per_image")


def _token_usd(rates: TokenRates, tokens: Tokens) -> float:
    """The tokens at their rates; an unreported split is billed at the dearer rate."""
    if tokens.input_image is None:
        input_usd = tokens.input * max(rates.text_in, rates.image_in)
    else:
        image_in = min(tokens.input_image, tokens.input)
        input_usd = image_in * rates.image_in + (tokens.input - image_in) * rates.text_in
    if tokens.output_text is None:
        output_usd = tokens.output * max(rates.text_out, rates.image_out)
    else:
        text_out = min(tokens.output_text, tokens.output)
        output_usd = text_out * rates.text_out + (tokens.output - text_out) * rates.image_out
    return (input_usd + output_usd) / 1e6


def _micros(usd: float) -> int:
    return round(usd * 1_000_000)


def nearest_size(sizes: list[str], width: int, height: int) -> str:
    """The "WxH" closest in pixel count and in shape; a tie goes to the larger size."""
    # asked on every submit and finish, of a few price tables and output sizes: remembered
    return _nearest_size(tuple(sizes), width, height)


@functools.lru_cache(maxsize=4096)
def _nearest_size(sizes: tuple[str, ...], width: int, height: int) -> str:

    def key(size: str) -> tuple[float, int]:
        w, h = (int(side) for side in size.split("x"))
        pixels = abs(math.log((w * h) / (width * height)))
        shape = abs(
            math.log(max(w, h) / min(w, h)) - math.log(max(width, height) / min(width, height))
        )
        return round(pixels + shape, 9), -(w * h)

    return min(sizes, key=key)
