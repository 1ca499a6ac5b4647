"""A model's price per image on the routes that serve it: for `/hub/v1/models` and the page."""

from __future__ import annotations

from imagehub.catalog import ModelSpec
from imagehub.hub import Hub
from imagehub.schemas.models import RoutePriceOut, TokenRatesOut
from imagehub.tenancy.pricing import PriceCard


def usd(amount: float) -> str:
    """$0.039, $0.15, $0.30: cents always shown, no trailing zeros past them."""
    text = f"{amount:.4f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def describe(card: PriceCard) -> str:
    """The price in an English sentence (the page words it in the visitor's language)."""
    if card.max_usd == 0 and card.tokens is None:
        return "free"
    text = f"{usd(card.usd_per_image)} per image"
    if card.varies_by:
        text += (
            f" at the default {card.varies_by}; {usd(card.min_usd)} to {usd(card.max_usd)}"
            f" by {card.varies_by}"
        )
    if card.web_search_usd:
        text += f"; web search adds {usd(card.web_search_usd)} per image"
    if card.tokens is not None:
        text += (
            f"; charged by the tokens the upstream reports ({usd(card.tokens.image_out)} per"
            " million image output tokens), the per-image price is what a submit reserves"
        )
    return text


def route_prices(hub: Hub, spec: ModelSpec) -> list[RoutePriceOut]:
    """The model's price on each route that serves it, in the order they are tried."""
    prices = []
    for route in hub.router.serving(spec):
        card = hub.pricing.card(route.kind, spec)
        rates = card.tokens
        prices.append(
            RoutePriceOut(
                route=route.name,
                provider=route.kind or route.name,
                usd_per_image=card.usd_per_image,
                min_usd_per_image=card.min_usd,
                max_usd_per_image=card.max_usd,
                varies_by=card.varies_by,
                web_search_usd=card.web_search_usd,
                basis="tokens" if rates is not None else "per_image",
                token_rates=TokenRatesOut(**rates.model_dump()) if rates is not None else None,
                description=describe(card),
            )
        )
    return prices


def example_charge(hub: Hub, spec: ModelSpec) -> tuple[str, float]:
    """The first route serving the model, and what the model's example request costs there
    (each image at its price; a token-billed upstream would charge what it reports)."""
    route = hub.router.serving(spec)[0]
    params = hub.validator.validate(spec.id, spec.example).params
    images = int(params.get("num_images", 1))
    return route.name, hub.pricing.settle(route.kind, spec, params, images=images).usd
