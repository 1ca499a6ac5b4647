"""The Model Reference page at `/`, with its playground and history, and the assets it needs.

The page is rendered from the catalog on every request, so it shows exactly what validation
enforces. Every asset is served by the hub itself: the page works with no internet access.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from imagehub.api import examples, i18n
from imagehub.api.deps import BaseUrlDep, HubDep
from imagehub.api.i18n import N_
from imagehub.api.prices import example_charge, route_prices, usd
from imagehub.catalog import Catalog, ModelSpec, ParamSpec, Validator
from imagehub.errors import NotFound
from imagehub.schemas.models import RoutePriceOut

endpoints = APIRouter(include_in_schema=False)

#: capability -> tab label (English; translated when the page is drawn), in tab order
TABS = {"text-to-image": N_("Text to image"), "image-to-image": N_("Image to image / Edit")}
#: the language switch: code, HTML lang tag, the language's own name
LANGUAGE_NAMES = (("en", "en", "English"), ("zh", "zh-CN", "中文"))
#: what the page may load: its own assets, any image (task outputs may live on another host)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src * data: blob:; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_TYPES = {
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str


@functools.cache
def _assets() -> dict[str, Asset]:
    """Every file of the static folder and its vendor/ folder (third-party libraries, each with
    its licence), read once; its version is a hash of its bytes."""
    assets = {}
    static = resources.files("imagehub.api").joinpath("static")
    for entry in [*static.iterdir(), *static.joinpath("vendor").iterdir()]:
        extension = entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and extension in _TYPES:
            body = entry.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:12]
            assets[entry.name] = Asset(body, _TYPES[extension], version)
    return assets


def asset_url(name: str) -> str:
    """A versioned URL: it changes whenever the file does, so browsers may cache it for good."""
    return f"/static/{name}?v={_assets()[name].version}"


@functools.cache
def _environment(language: str) -> Environment:
    """The templates in one language: `{% trans %}` and `_()` read that language's catalog."""
    env = Environment(
        loader=PackageLoader("imagehub.api", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # whitespace inside {% trans %} is layout, not message: the catalog's ids are trimmed too
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["asset"] = asset_url
    return env


Gettext = Callable[[str], str]


def _english(message: str) -> str:
    return message


def default_text(param: ParamSpec) -> str:
    """The Default column: values as a user would type them; an empty string shows as ""."""
    if param.default is None:
        return ""
    if isinstance(param.default, bool):
        return "true" if param.default else "false"
    if param.default == "":
        return '""'
    return str(param.default)


def range_text(param: ParamSpec, gettext: Gettext) -> str:
    """The Values / Range column: `ParamSpec.range_text` in the page's language (values as is)."""
    if param.values:
        return " ".join(param.values)
    if param.minimum is not None and param.maximum is not None:
        return gettext("%(minimum)s to %(maximum)s") % {
            "minimum": param.minimum,
            "maximum": param.maximum,
        }
    if param.max_items is not None:
        return gettext("%(minimum)s to %(maximum)s items") % {
            "minimum": param.min_items or 0,
            "maximum": param.max_items,
        }
    if param.type == "image_size":
        return gettext("preset, auto or {width, height}")
    return ""


def _param_row(param: ParamSpec, gettext: Gettext) -> dict[str, Any]:
    return {
        "name": param.name,
        "type": param.display_type,
        "required": param.required,
        "default": default_text(param),
        "range": range_text(param, gettext),
        "choices": param.values,
        # translated here, not in the template: Jinja's `_()` would %-format a catalog's text
        "description": gettext(param.description),
    }


def html_id(model_id: str) -> str:
    """`nano-banana/edit` -> `model-nano-banana--edit`: unique, and valid in a URL fragment."""
    return "model-" + model_id.replace("/", "--")


def _served(serving: Mapping[str, Sequence[str]] | None, model_id: str) -> Sequence[str] | None:
    return None if serving is None else serving.get(model_id, ())


def price_row(price: RoutePriceOut, gettext: Gettext) -> dict[str, str]:
    """One route's price as the page's price table shows it, in the page's language."""
    free = price.max_usd_per_image == 0 and price.basis == "per_image"
    span = {"low": usd(price.min_usd_per_image), "high": usd(price.max_usd_per_image)}
    if free:
        spread = gettext("free (offline placeholder)")
    elif price.varies_by == "resolution":
        spread = gettext("%(low)s to %(high)s by resolution") % span
    elif price.varies_by == "size":
        spread = gettext("%(low)s to %(high)s by size and quality") % span
    else:
        spread = gettext("one price")
    notes = []
    if price.web_search_usd:
        notes.append(
            gettext("web search adds %(usd)s per image") % {"usd": usd(price.web_search_usd)}
        )
    if price.token_rates is not None:
        notes.append(
            gettext(
                "charged by the tokens the upstream reports: %(usd)s per million image "
                "output tokens; the price per image is what a submit reserves"
            )
            % {"usd": usd(price.token_rates.image_out)}
        )
    return {
        "route": price.route,
        "provider": price.provider,
        "per_image": usd(price.usd_per_image),
        "spread": spread,
        "notes": gettext("; ").join(notes),
    }


def _card(
    spec: ModelSpec,
    validator: Validator,
    base_url: str,
    providers: Sequence[str] | None,
    gettext: Gettext,
    prices: Sequence[RoutePriceOut] = (),
    response: str = "",
) -> dict[str, Any]:
    return {
        #: None: not known (the page rendered without a hub's routes)
        "providers": None if providers is None else list(providers),
        "prices": [price_row(p, gettext) for p in prices],
        "price_from": usd(min(p.usd_per_image for p in prices)) if prices else "",
        #: a finished task of this model, as `GET /hub/v1/tasks/{id}` answers (JSON)
        "response": response,
        "spec": spec,
        "description": gettext(spec.description),
        "anchor": html_id(spec.id),
        "rows": [_param_row(p, gettext) for p in spec.params],
        "examples": examples.examples(base_url, spec.id, spec.example),
        "schema": json.dumps(validator.json_schema(spec.id), indent=2),
        "has_image_size": spec.param("image_size") is not None,
    }


def _param_json(param: ParamSpec, gettext: Gettext) -> dict[str, Any]:
    """What the playground needs to draw a field: the table row plus the raw kind."""
    return {
        **param.model_dump(exclude={"type"}),
        "description": gettext(param.description),
        "kind": param.type,
        "type": param.display_type,
    }


def playground_catalog(catalog: Catalog, gettext: Gettext = _english) -> dict[str, Any]:
    """The catalog as the playground's script reads it (embedded in the page as JSON)."""
    return {
        "models": [
            {
                "id": m.id,
                "name": m.name,
                "vendor": m.vendor,
                "capability": m.capability,
                "description": gettext(m.description),
                "example": m.example,
                "params": [_param_json(p, gettext) for p in m.params],
            }
            for m in catalog
        ],
        "presets": {name: list(size) for name, size in catalog.presets.items()},
    }


def page_context(
    catalog: Catalog,
    validator: Validator,
    base_url: str,
    serving: Mapping[str, Sequence[str]] | None = None,
    language: str = i18n.DEFAULT,
    prices: Mapping[str, Sequence[RoutePriceOut]] | None = None,
    charged: Mapping[str, tuple[str, float]] | None = None,
) -> dict[str, Any]:
    """The page's template context; `serving`: by model id, the names of its routes in order,
    `prices` what an image costs on each, and `charged` the route and cost of the model's
    example request (for its example response)."""
    gettext = i18n.translations(language).gettext
    prices = prices or {}
    charged = charged or {}
    tabs = []
    for capability, label in TABS.items():
        cards = [
            _card(
                m,
                validator,
                base_url,
                None if serving is None else serving.get(m.id, ()),
                gettext,
                prices.get(m.id, ()),
                examples.example_response(base_url, catalog, validator, m, charged.get(m.id)),
            )
            for m in catalog
            if m.capability == capability
        ]
        tabs.append({"id": capability, "label": gettext(label), "cards": cards})
    first = next(iter(catalog))
    return {
        "lang": language,
        "html_lang": i18n.LANGUAGES[language],
        "languages": LANGUAGE_NAMES,
        "script_messages": i18n.script_catalog(language),
        "version": metadata.version("imagehub"),
        "base_url": base_url,
        "tabs": tabs,
        "model_count": len(catalog),
        "presets": catalog.presets,
        "polling": {
            "shell": examples.polling_loop(base_url, first.id, first.example),
            "python": examples.python_polling_example(base_url, first.id, first.example),
            "javascript": examples.javascript_example(base_url, first.id, first.example),
        },
        "upload": examples.upload_example(base_url),
        "catalog_json": playground_catalog(catalog, gettext),
    }


@endpoints.get("/", response_class=HTMLResponse)
async def reference_page(request: Request, hub: HubDep, base_url: BaseUrlDep) -> HTMLResponse:
    """The Model Reference page, the playground and the history, in the visitor's language."""
    language = i18n.negotiate(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
    )
    serving = {m.id: [r.name for r in hub.router.serving(m)] for m in hub.catalog}
    prices = {m.id: route_prices(hub, m) for m in hub.catalog}
    charged = {m.id: example_charge(hub, m) for m in hub.catalog if hub.router.serving(m)}
    context = page_context(hub.catalog, hub.validator, base_url, serving, language, prices, charged)
    html = _environment(language).get_template("index.html").render(context)
    headers = {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-cache",
        "Content-Language": i18n.LANGUAGES[language],
        "Vary": "Accept-Language, Cookie",
    }
    return HTMLResponse(html, headers=headers)


@endpoints.get("/static/{name}")
async def static_asset(name: str, request: Request) -> Response:
    """One of the page's own assets; a versioned URL may be cached for good."""
    asset = _assets().get(name)
    if asset is None:
        raise NotFound("no such asset")
    etag = f'"{asset.version}"'
    if request.query_params.get("v") == asset.version:
        cache = "public, max-age=31536000, immutable"
    else:
        cache = "no-cache"
    headers = {"ETag": etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
