"""Route capabilities: a parameter is honoured exactly or refused; a model without a route is
refused at submit. The routers here are built from settings and routes files, as in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from imagehub.catalog import Catalog, Validator
from imagehub.errors import InvalidInput, ModelUnavailable
from imagehub.routing.capabilities import Honours, honours_of, refusal
from imagehub.routing.config import RoutesConfigError, build_router
from imagehub.routing.router import Router
from imagehub.settings import Settings

CATALOG = Catalog.load()
VALIDATOR = Validator(CATALOG)
KEY = SecretStr("k")
IMAGE = "https://example.com/a.png"

GEMINI = {"gemini_api_key": KEY}
OPENROUTER = {"openrouter_api_key": KEY}
OPENAI = {"openai_api_key": KEY}
FAL = {"fal_key": KEY}

#: a relay that takes "512" for 0.5K (its routes file says so) but has no web search
RELAY_512 = """
[[routes]]
name = "relay"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
priority = 2
[routes.supports]
resolutions = ["0.5K", "1K", "2K", "4K"]
"""


def _router(tmp_path: Path, routes_file: str | None = None, **settings: Any) -> Router:
    path = None
    if routes_file is not None:
        path = tmp_path / "routes.toml"
        path.write_text(routes_file)
    return build_router(Settings(routes_file=path, **settings), CATALOG)


def _check(router: Router, model: str, input: dict[str, Any]) -> None:
    params = VALIDATOR.validate(model, input).params
    spec = CATALOG.get(model)
    assert spec is not None
    router.check(spec, params)


REFUSALS_422 = [
    (
        OPENROUTER,
        None,
        "nano-banana-2",
        {"resolution": "0.5K"},
        "resolution",
        "no configured route for nano-banana-2 supports resolution 0.5K",
    ),
    (
        OPENROUTER,
        None,
        "nano-banana-2/edit",
        {"image_urls": [IMAGE], "enable_web_search": True},
        "enable_web_search",
        "no configured route for nano-banana-2/edit supports enable_web_search",
    ),
    (
        OPENROUTER,
        None,
        "nano-banana",
        {"safety_tolerance": "6"},
        "safety_tolerance",
        "no configured route for nano-banana supports safety_tolerance 6",
    ),
    (
        GEMINI,
        None,
        "nano-banana/edit",
        {"image_urls": [IMAGE] * 4},
        "image_urls",
        "no configured route for nano-banana/edit supports 4 input images in image_urls "
        "(at most 3)",
    ),
    (
        {**GEMINI, **OPENROUTER},
        None,
        "nano-banana/edit",
        {"image_urls": [IMAGE] * 5},
        "image_urls",
        "no configured route for nano-banana/edit supports 5 input images in image_urls "
        "(at most 3)",
    ),
    (
        OPENROUTER,
        RELAY_512,
        "nano-banana-2",
        {"resolution": "0.5K", "enable_web_search": True},
        "resolution",
        "no configured route for nano-banana-2 can honour this request: openrouter does not "
        "support resolution 0.5K; relay does not support enable_web_search",
    ),
]


@pytest.mark.parametrize(
    ("settings", "routes_file", "model", "input", "param", "message"), REFUSALS_422
)
def test_a_request_no_route_can_honour_is_refused_naming_the_parameter(
    tmp_path, settings, routes_file, model, input, param, message
):
    router = _router(tmp_path, routes_file, **settings)
    with pytest.raises(InvalidInput) as caught:
        _check(router, model, {"prompt": "p", **input})
    assert caught.value.status == 422
    assert caught.value.message == message
    assert caught.value.details == [
        {"loc": ["input", param], "msg": message, "type": "unsupported_by_routes"}
    ]


UNAVAILABLE = [
    (
        GEMINI,
        "gpt-image-2",
        "no route serves gpt-image-2: set IMAGEHUB_OPENAI_API_KEY or IMAGEHUB_FAL_KEY, "
        "or add a route in IMAGEHUB_ROUTES_FILE",
    ),
    (
        OPENAI,
        "nano-banana-pro/edit",
        "no route serves nano-banana-pro/edit: set IMAGEHUB_GEMINI_API_KEY or "
        "IMAGEHUB_OPENROUTER_API_KEY or IMAGEHUB_FAL_KEY, or add a route in "
        "IMAGEHUB_ROUTES_FILE",
    ),
    (
        {"demo": False},
        "nano-banana",
        "no route serves nano-banana: set IMAGEHUB_GEMINI_API_KEY or "
        "IMAGEHUB_OPENROUTER_API_KEY or IMAGEHUB_FAL_KEY, or add a route in "
        "IMAGEHUB_ROUTES_FILE",
    ),
]


@pytest.mark.parametrize(("settings", "model", "message"), UNAVAILABLE)
def test_a_model_no_route_serves_is_unavailable(tmp_path, settings, model, message):
    router = _router(tmp_path, **settings)
    input: dict[str, Any] = {"prompt": "p"}
    if model.endswith("/edit"):
        input["image_urls"] = [IMAGE]
    with pytest.raises(ModelUnavailable) as caught:
        _check(router, model, input)
    assert (caught.value.status, caught.value.code) == (503, "model_unavailable")
    assert caught.value.message == message


ACCEPTED = [
    # a route that can, next to one that cannot: the request goes to the one that can
    ({**GEMINI, **FAL}, None, "nano-banana/edit", {"image_urls": [IMAGE] * 4}, ["fal"]),
    (GEMINI, None, "nano-banana/edit", {"image_urls": [IMAGE] * 3}, ["gemini"]),
    (
        {**GEMINI, **OPENROUTER},
        None,
        "nano-banana-2",
        {"resolution": "0.5K", "safety_tolerance": "2"},
        ["gemini"],
    ),
    (OPENROUTER, RELAY_512, "nano-banana-2", {"resolution": "0.5K"}, ["relay"]),
    (OPENROUTER, None, "nano-banana-2", {"resolution": "4K", "aspect_ratio": "8:1"}, None),
    # Nano Banana Pro ignores web search by the catalog's own rule: nothing for a route to do
    (OPENROUTER, None, "nano-banana-pro", {"enable_web_search": True}, None),
    (OPENAI, None, "gpt-image-2/edit", {"image_urls": [IMAGE] * 16, "mask_url": IMAGE}, None),
    ({**OPENROUTER, "demo": True}, None, "gpt-image-2", {}, ["demo"]),
    ({}, None, "nano-banana-2", {"resolution": "0.5K", "enable_web_search": True}, ["demo"]),
]


@pytest.mark.parametrize(("settings", "routes_file", "model", "input", "eligible"), ACCEPTED)
def test_routing_keeps_only_the_routes_that_honour_the_request(
    tmp_path, settings, routes_file, model, input, eligible
):
    router = _router(tmp_path, routes_file, **settings)
    _check(router, model, {"prompt": "p", **input})
    spec = CATALOG.get(model)
    assert spec is not None
    params = VALIDATOR.validate(model, {"prompt": "p", **input}).params
    names = [r.name for r in router.routes(spec, params)]
    assert names == (eligible or [r.name for r in router.routes(spec)])
    assert names


@pytest.mark.parametrize(
    ("settings", "demo_serves"),
    [
        ({}, True),  # unset and nothing configured: the keyless quickstart
        ({"demo": False}, False),
        (GEMINI, False),  # unset with an upstream: no placeholder stands in for gpt-image-2
        ({**GEMINI, "demo": True}, True),
    ],
)
def test_the_demo_serves_only_when_on_or_when_nothing_is_configured(
    tmp_path, settings, demo_serves
):
    router = _router(tmp_path, **settings)
    gpt = CATALOG.get("gpt-image-2")
    assert gpt is not None
    routes = router.serving(gpt)
    assert [(r.name, r.kind, r.is_demo) for r in routes] == (
        [("demo", "demo", True)] if demo_serves else []
    )


def test_every_route_has_its_provider_kind(tmp_path):
    router = _router(tmp_path, RELAY_512, **GEMINI, **OPENAI, **OPENROUTER, **FAL)
    kinds = {(r.name, r.kind) for routes in router.configured().values() for r in routes}
    assert kinds == {
        ("gemini", "gemini"),
        ("openai", "openai"),
        ("openrouter", "openrouter"),
        ("fal", "fal"),
        ("relay", "openai_compatible"),
    }


def test_documented_limits_are_in_the_table():
    def of(kind: str, model: str) -> Honours:
        spec = CATALOG.get(model)
        assert spec is not None
        return honours_of(kind, spec)

    for kind in ("gemini", "vertex"):
        assert of(kind, "nano-banana/edit").max_input_images == 3
        assert of(kind, "nano-banana-2/edit").max_input_images == 14
        assert of(kind, "nano-banana-pro/edit").max_input_images == 14
    assert of("openai", "gpt-image-2/edit").max_input_images == 16
    assert of("openrouter", "nano-banana-2").resolutions == {"1K", "2K", "4K"}
    assert not of("openrouter", "nano-banana-2").web_search
    assert of("fal", "nano-banana/edit") == Honours()


def test_a_seed_of_zero_is_a_seed():
    spec = CATALOG.get("nano-banana-2")
    assert spec is not None
    found = refusal(Honours(seed=False), spec, {"seed": 0})
    assert found is not None and found.param == "seed"
    assert refusal(Honours(seed=False), spec, {"seed": None}) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[routes]]\nname = "demo"\nprovider = "fal"\napi_key = "k"\n', "'demo' is the offline"),
        (
            '[[routes]]\nprovider = "fal"\napi_key = "k"\n[routes.supports]\nsize = ["x"]\n',
            "supports.size: unknown field",
        ),
        (
            '[[routes]]\nprovider = "fal"\napi_key = "k"\n[routes.supports]\n'
            'resolutions = ["0.5k"]\n',
            "supports.resolutions.0: Input should be '0.5K', '1K', '2K' or '4K'",
        ),
    ],
)
def test_routes_file_supports_and_names_are_checked(tmp_path, text, words):
    with pytest.raises(RoutesConfigError) as caught:
        _router(tmp_path, text)
    assert words in str(caught.value).replace("Extra inputs are not permitted", "unknown field")
