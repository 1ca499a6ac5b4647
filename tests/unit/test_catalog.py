"""The catalog and its validation, held to the catalog design contract, table by table."""

from __future__ import annotations

from typing import Any

import pytest

from imagehub.catalog import Catalog, ModelSpec, ParamSpec, Validator, output_size
from imagehub.catalog.spec import check_defaults
from imagehub.errors import InvalidInput

CATALOG = Catalog.load()
VALIDATOR = Validator(CATALOG)

TEXT_MODELS = ["nano-banana", "nano-banana-2", "nano-banana-pro", "gpt-image-2"]
EDIT_MODELS = [m + "/edit" for m in TEXT_MODELS]
ALL_MODELS = TEXT_MODELS + EDIT_MODELS
BANANAS = [m for m in ALL_MODELS if m.startswith("nano-banana")]
GPTS = ["gpt-image-2", "gpt-image-2/edit"]

URL = "https://example.com/photo.png"

TEN_RATIOS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16")
EXTREME_RATIOS = ("4:1", "1:4", "8:1", "1:8")

_BANANA = {"prompt", "seed", "num_images", "sync_mode", "output_format", "safety_tolerance"}
PARAMS: dict[str, set[str]] = {
    "nano-banana": _BANANA | {"limit_generations", "aspect_ratio"},
    "nano-banana-2": _BANANA
    | {
        "limit_generations",
        "aspect_ratio",
        "resolution",
        "system_prompt",
        "thinking_level",
        "enable_web_search",
    },
    "nano-banana-pro": _BANANA
    | {"limit_generations", "aspect_ratio", "resolution", "system_prompt", "enable_web_search"},
    "gpt-image-2": {"prompt", "quality", "image_size", "num_images", "output_format", "sync_mode"},
}
PARAMS.update({m + "/edit": PARAMS[m] | {"image_urls"} for m in TEXT_MODELS})
PARAMS["gpt-image-2/edit"] |= {"mask_url"}

_BANANA_DEFAULTS = {
    "num_images": 1,
    "sync_mode": False,
    "output_format": "png",
    "safety_tolerance": "4",
}
#: what a minimal valid input comes back as: every default applied, optional ones left out
DEFAULTS: dict[str, dict[str, Any]] = {
    "nano-banana": {**_BANANA_DEFAULTS, "aspect_ratio": "1:1", "limit_generations": False},
    "nano-banana-2": {
        **_BANANA_DEFAULTS,
        "aspect_ratio": "auto",
        "resolution": "1K",
        "system_prompt": "",
        "enable_web_search": False,
        "limit_generations": True,
    },
    "nano-banana-pro": {
        **_BANANA_DEFAULTS,
        "aspect_ratio": "1:1",
        "resolution": "1K",
        "system_prompt": "",
        "enable_web_search": False,
        "limit_generations": False,
    },
    "gpt-image-2": {
        "quality": "high",
        "image_size": "landscape_4_3",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
    },
}
DEFAULTS.update({m + "/edit": dict(DEFAULTS[m]) for m in TEXT_MODELS})
for _edit in ("nano-banana/edit", "nano-banana-pro/edit"):
    DEFAULTS[_edit]["aspect_ratio"] = "auto"
DEFAULTS["gpt-image-2/edit"]["image_size"] = "auto"

#: the closed value sets of the spec, per model
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "nano-banana": {"aspect_ratio": TEN_RATIOS},
    "nano-banana-2": {
        "aspect_ratio": ("auto", *TEN_RATIOS, *EXTREME_RATIOS),
        "resolution": ("0.5K", "1K", "2K", "4K"),
        "thinking_level": ("minimal", "high"),
    },
    "nano-banana-pro": {
        "aspect_ratio": ("auto", *TEN_RATIOS),
        "resolution": ("1K", "2K", "4K"),
    },
    "gpt-image-2": {"quality": ("auto", "low", "medium", "high")},
}
ENUMS.update({m + "/edit": dict(ENUMS[m]) for m in TEXT_MODELS})
ENUMS["nano-banana/edit"]["aspect_ratio"] = ("auto", *TEN_RATIOS)
for _model in ALL_MODELS:
    ENUMS[_model]["output_format"] = ("jpeg", "png", "webp")
for _model in BANANAS:
    ENUMS[_model]["safety_tolerance"] = ("1", "2", "3", "4", "5", "6")

MAX_PROMPT = {m: 32_000 if m in GPTS else 50_000 for m in ALL_MODELS}
MAX_IMAGES = {
    "nano-banana/edit": 10,
    "nano-banana-2/edit": 14,
    "nano-banana-pro/edit": 14,
    "gpt-image-2/edit": 16,
}


def minimal(model: str) -> dict[str, Any]:
    raw: dict[str, Any] = {"prompt": "a red fox in the snow"}
    if model.endswith("/edit"):
        raw["image_urls"] = [URL]
    return raw


def ok(model: str, **fields: Any) -> dict[str, Any]:
    return VALIDATOR.validate(model, {**minimal(model), **fields}).params


def refused(model: str, **fields: Any) -> list[dict[str, Any]]:
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.validate(model, {**minimal(model), **fields})
    assert caught.value.status == 422
    assert caught.value.details, "an InvalidInput must name the failing fields"
    return caught.value.details


def locs(details: list[dict[str, Any]]) -> list[list[Any]]:
    return [d["loc"] for d in details]


# ---------------------------------------------------------------- the models and their tables


def test_the_catalog_has_exactly_the_eight_models():
    assert [m.id for m in CATALOG] == ALL_MODELS
    assert len(CATALOG) == 8


@pytest.mark.parametrize("model", ALL_MODELS)
def test_capability_follows_the_model_id(model):
    spec = CATALOG.get(model)
    assert spec is not None
    assert spec.capability == ("image-to-image" if model.endswith("/edit") else "text-to-image")
    assert spec.family == model.removesuffix("/edit")


@pytest.mark.parametrize("model", ALL_MODELS)
def test_each_model_takes_exactly_its_parameters(model):
    spec = CATALOG.get(model)
    assert spec is not None
    assert {p.name for p in spec.params} == PARAMS[model]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_a_minimal_input_gets_every_default_and_nothing_else(model):
    assert ok(model) == {**minimal(model), **DEFAULTS[model]}


@pytest.mark.parametrize(
    ("model", "param", "values"),
    [(m, p, v) for m in ALL_MODELS for p, v in ENUMS[m].items()],
)
def test_enum_parameters_offer_exactly_the_spec_values(model, param, values):
    spec = CATALOG.get(model)
    assert spec is not None
    row = spec.param(param)
    assert row is not None
    assert set(row.values or ()) == set(values)
    for value in values:
        assert ok(model, **{param: value})[param] == value


@pytest.mark.parametrize(("model", "param"), [(m, p) for m in ALL_MODELS for p in ENUMS[m]])
def test_a_value_outside_an_enum_is_refused_as_enum(model, param):
    details = refused(model, **{param: "7:1"})
    assert details == [{"loc": ["input", param], "msg": details[0]["msg"], "type": "enum"}]
    assert details[0]["msg"]


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("count", [1, 4])
def test_num_images_accepts_one_to_four(model, count):
    assert ok(model, num_images=count)["num_images"] == count


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("count", [0, 5, -1])
def test_num_images_outside_one_to_four_is_refused(model, count):
    assert locs(refused(model, num_images=count)) == [["input", "num_images"]]


@pytest.mark.parametrize("model", BANANAS)
@pytest.mark.parametrize("seed", [0, 42, 2_147_483_647])
def test_seed_accepts_zero_to_int32_max(model, seed):
    assert ok(model, seed=seed)["seed"] == seed


@pytest.mark.parametrize("model", BANANAS)
@pytest.mark.parametrize("seed", [-1, 2_147_483_648])
def test_seed_outside_its_range_is_refused(model, seed):
    assert locs(refused(model, seed=seed)) == [["input", "seed"]]


@pytest.mark.parametrize("model", GPTS)
@pytest.mark.parametrize("field", ["seed", "safety_tolerance", "aspect_ratio", "resolution"])
def test_gpt_image_refuses_the_nano_banana_parameters(model, field):
    details = refused(model, **{field: 1})
    assert locs(details) == [["input", field]]
    assert details[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("model", ["nano-banana", "nano-banana-pro", "nano-banana-pro/edit"])
def test_thinking_level_exists_only_on_nano_banana_2(model):
    assert locs(refused(model, thinking_level="high")) == [["input", "thinking_level"]]


@pytest.mark.parametrize("model", BANANAS + GPTS)
@pytest.mark.parametrize("value", [True, False])
def test_sync_mode_is_a_boolean(model, value):
    assert ok(model, sync_mode=value)["sync_mode"] is value


@pytest.mark.parametrize("model", ["nano-banana-2", "nano-banana-2/edit", "nano-banana-pro"])
def test_system_prompt_is_a_free_string(model):
    assert ok(model, system_prompt="Draw in ink.")["system_prompt"] == "Draw in ink."


# ---------------------------------------------------------------- types: refused, not coerced


WRONG_TYPES = [
    ("num_images", True),
    ("num_images", "2"),
    ("num_images", 2.0),
    ("prompt", 1),
    ("prompt", None),
    ("sync_mode", "yes"),
    ("sync_mode", 1),
    ("seed", 1.5),
    ("seed", "7"),
    ("output_format", 1),
    ("limit_generations", "true"),
    ("safety_tolerance", True),
    ("safety_tolerance", 3.0),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES, ids=repr)
def test_a_wrong_type_is_refused_not_coerced(field, value):
    assert locs(refused("nano-banana", **{field: value})) == [["input", field]]


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        ("nano-banana-2", "enable_web_search", "false"),
        ("nano-banana-2", "system_prompt", 0),
        ("gpt-image-2", "quality", 1),
        ("gpt-image-2", "image_size", 1024),
        ("gpt-image-2", "image_size", {"width": "1024", "height": 1024}),
        ("gpt-image-2", "image_size", {"width": True, "height": 1024}),
        ("gpt-image-2", "image_size", {"width": 1024}),
        ("nano-banana/edit", "image_urls", URL),
        ("nano-banana/edit", "image_urls", [1]),
        ("gpt-image-2/edit", "mask_url", ["https://example.com/m.png"]),
    ],
    ids=repr,
)
def test_a_wrong_type_is_refused_on_every_family(model, field, value):
    found = locs(refused(model, **{field: value}))
    assert found
    assert all(loc[:2] == ["input", field] for loc in found)


@pytest.mark.parametrize("model", BANANAS)
@pytest.mark.parametrize("level", range(1, 7))
def test_safety_tolerance_integers_come_back_as_strings(model, level):
    assert ok(model, safety_tolerance=level)["safety_tolerance"] == str(level)


@pytest.mark.parametrize("model", BANANAS)
@pytest.mark.parametrize("level", [0, 7, "7", "0"])
def test_safety_tolerance_outside_one_to_six_is_refused(model, level):
    details = refused(model, safety_tolerance=level)
    assert locs(details) == [["input", "safety_tolerance"]]
    assert details[0]["type"] == "enum"


# ---------------------------------------------------------------- prompt


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("prompt", ["", " ", "   \n\t "])
def test_a_blank_prompt_is_refused(model, prompt):
    assert locs(refused(model, prompt=prompt)) == [["input", "prompt"]]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_a_missing_prompt_is_refused(model):
    raw = minimal(model)
    del raw["prompt"]
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.validate(model, raw)
    assert locs(caught.value.details) == [["input", "prompt"]]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_a_prompt_of_the_maximum_length_is_accepted(model):
    prompt = "x" * MAX_PROMPT[model]
    assert ok(model, prompt=prompt)["prompt"] == prompt


@pytest.mark.parametrize("model", ALL_MODELS)
def test_a_prompt_one_character_over_the_family_maximum_is_refused(model):
    details = refused(model, prompt="x" * (MAX_PROMPT[model] + 1))
    assert locs(details) == [["input", "prompt"]]
    assert str(MAX_PROMPT[model]) in details[0]["msg"]


def test_prompt_length_counts_characters_not_bytes():
    prompt = "é" * 32_000  # 64,000 bytes in UTF-8
    assert ok("gpt-image-2", prompt=prompt)["prompt"] == prompt


# ---------------------------------------------------------------- unknown fields, many errors


@pytest.mark.parametrize("model", ALL_MODELS)
def test_an_unknown_field_is_refused_and_named(model):
    details = refused(model, style="anime")
    assert locs(details) == [["input", "style"]]
    assert details[0]["type"] == "extra_forbidden"


def test_every_unknown_field_is_named():
    details = refused("nano-banana", style="anime", steps=30)
    assert sorted(locs(details)) == [["input", "steps"], ["input", "style"]]


def test_every_failing_field_is_reported_in_one_error():
    details = refused("nano-banana", num_images=9, aspect_ratio="7:1", sync_mode="yes")
    assert sorted(locs(details)) == [
        ["input", "aspect_ratio"],
        ["input", "num_images"],
        ["input", "sync_mode"],
    ]
    for detail in details:
        assert set(detail) == {"loc", "msg", "type"}
        assert detail["msg"]


def test_a_missing_prompt_and_a_bad_field_are_reported_together():
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.validate("nano-banana/edit", {"image_urls": [], "seed": -5})
    assert sorted(locs(caught.value.details)) == [
        ["input", "image_urls"],
        ["input", "prompt"],
        ["input", "seed"],
    ]


def test_the_enum_detail_has_the_documented_shape():
    [detail] = refused("nano-banana", aspect_ratio="2:1")
    assert detail["loc"] == ["input", "aspect_ratio"]
    assert detail["type"] == "enum"
    assert "16:9" in detail["msg"]


def test_an_unknown_model_is_refused_with_loc_model():
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.validate("dall-e-3", {"prompt": "x"})
    assert locs(caught.value.details) == [["model"]]
    assert caught.value.status == 422


@pytest.mark.parametrize("raw", [[], "prompt", None, 3])
def test_an_input_that_is_not_an_object_is_refused(raw):
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.validate("nano-banana", raw)
    assert locs(caught.value.details) == [["input"]]


# ---------------------------------------------------------------- warnings


@pytest.mark.parametrize("model", ["nano-banana-pro", "nano-banana-pro/edit"])
def test_web_search_on_nano_banana_pro_is_accepted_with_a_warning(model):
    result = VALIDATOR.validate(model, {**minimal(model), "enable_web_search": True})
    assert len(result.warnings) == 1
    assert "disabled on this platform" in result.warnings[0]


@pytest.mark.parametrize("model", ["nano-banana-pro", "nano-banana-pro/edit"])
def test_web_search_off_on_nano_banana_pro_gives_no_warning(model):
    result = VALIDATOR.validate(model, {**minimal(model), "enable_web_search": False})
    assert result.warnings == ()


@pytest.mark.parametrize("model", ["nano-banana-2", "nano-banana-2/edit"])
def test_web_search_on_nano_banana_2_is_used_without_a_warning(model):
    result = VALIDATOR.validate(model, {**minimal(model), "enable_web_search": True})
    assert result.warnings == ()
    assert result.params["enable_web_search"] is True


@pytest.mark.parametrize("model", ALL_MODELS)
def test_a_plain_input_gives_no_warnings(model):
    assert VALIDATOR.validate(model, minimal(model)).warnings == ()


# ---------------------------------------------------------------- image_urls and mask_url


@pytest.mark.parametrize(("model", "most"), list(MAX_IMAGES.items()))
def test_image_urls_accepts_one_to_the_model_maximum(model, most):
    assert ok(model, image_urls=[URL]) is not None
    assert len(ok(model, image_urls=[URL] * most)["image_urls"]) == most


@pytest.mark.parametrize(("model", "most"), list(MAX_IMAGES.items()))
def test_image_urls_outside_the_model_bounds_is_refused(model, most):
    assert locs(refused(model, image_urls=[])) == [["input", "image_urls"]]
    assert locs(refused(model, image_urls=[URL] * (most + 1))) == [["input", "image_urls"]]


@pytest.mark.parametrize("model", EDIT_MODELS)
def test_image_urls_is_required_on_edit_models(model):
    with pytest.raises(InvalidInput) as caught:
        VALIDATOR.validate(model, {"prompt": "x"})
    assert locs(caught.value.details) == [["input", "image_urls"]]


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_text_to_image_models_take_no_image_urls(model):
    assert locs(refused(model, image_urls=[URL])) == [["input", "image_urls"]]


GOOD_REFS = [
    "https://example.com/a.png",
    "http://example.com/a.jpg?size=large",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:image/jpeg;base64,/9j/4AAQ",
    "https://hub.example.com/hub/v1/files/f_" + "a" * 22 + ".png",
]
BAD_REFS = [
    "ftp://example.com/a.png",
    "file:///etc/passwd",
    "example.com/a.png",
    "/hub/v1/files/f_" + "a" * 22 + ".png",
    "data:text/plain;base64,aGVsbG8=",
    "data:image/png,not-base64",
    "",
]


@pytest.mark.parametrize("model", EDIT_MODELS)
@pytest.mark.parametrize("ref", GOOD_REFS)
def test_image_urls_accepts_urls_base64_data_uris_and_hub_files(model, ref):
    assert ok(model, image_urls=[ref])["image_urls"] == [ref]


@pytest.mark.parametrize("model", EDIT_MODELS)
@pytest.mark.parametrize("ref", BAD_REFS)
def test_image_urls_refuses_other_schemes_with_the_item_index(model, ref):
    details = refused(model, image_urls=[URL, ref])
    assert locs(details) == [["input", "image_urls", 1]]


@pytest.mark.parametrize("ref", GOOD_REFS)
def test_mask_url_accepts_what_image_urls_accepts(ref):
    assert ok("gpt-image-2/edit", mask_url=ref)["mask_url"] == ref


@pytest.mark.parametrize("ref", BAD_REFS)
def test_mask_url_refuses_other_schemes(ref):
    assert locs(refused("gpt-image-2/edit", mask_url=ref)) == [["input", "mask_url"]]


def test_mask_url_is_optional_and_absent_by_default():
    assert "mask_url" not in ok("gpt-image-2/edit")


# ---------------------------------------------------------------- GPT Image sizes

PRESETS = {
    "square_hd": (1024, 1024),
    "square": (832, 832),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (720, 1280),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1280, 720),
}


def test_the_image_size_presets_are_the_spec_table():
    assert CATALOG.presets == PRESETS


@pytest.mark.parametrize("model", GPTS)
@pytest.mark.parametrize("size", [*PRESETS, "auto"])
def test_image_size_accepts_every_preset_and_auto(model, size):
    assert ok(model, image_size=size)["image_size"] == size


@pytest.mark.parametrize("model", GPTS)
def test_image_size_refuses_an_unknown_preset(model):
    details = refused(model, image_size="huge")
    assert locs(details) == [["input", "image_size"]]
    assert details[0]["type"] == "enum"


@pytest.mark.parametrize("model", GPTS)
@pytest.mark.parametrize(
    "size",
    [
        (1024, 1024),
        (3840, 2160),  # exactly the most pixels
        (1024, 640),  # exactly the fewest pixels
        (3840, 1280),  # exactly 3:1
        (1280, 3840),
    ],
)
def test_a_custom_size_within_every_rule_is_accepted(model, size):
    width, height = size
    custom = {"width": width, "height": height}
    assert ok(model, image_size=custom)["image_size"] == custom


#: one broken rule each, every other rule kept
SIZE_RULES = [
    ((1000, 1000), "multiple_of"),
    ((3856, 1312), "max_side"),
    ((3200, 1056), "ratio"),
    ((784, 784), "pixels"),
    ((3840, 2176), "pixels"),
]


@pytest.mark.parametrize("model", GPTS)
@pytest.mark.parametrize(("size", "rule"), SIZE_RULES)
def test_each_broken_size_rule_is_one_detail(model, size, rule):
    width, height = size
    details = refused(model, image_size={"width": width, "height": height})
    assert [(d["loc"], d["type"]) for d in details] == [(["input", "image_size"], rule)]


@pytest.mark.parametrize("model", GPTS)
def test_a_size_breaking_every_rule_gets_one_detail_per_rule(model):
    details = refused(model, image_size={"width": 4001, "height": 100})
    assert locs(details) == [["input", "image_size"]] * 4
    assert sorted(d["type"] for d in details) == ["max_side", "multiple_of", "pixels", "ratio"]
    assert len({d["msg"] for d in details}) == 4


def test_size_rules_do_not_apply_to_models_without_image_size():
    details = refused("nano-banana", image_size={"width": 1000, "height": 5000})
    assert details == [
        {"loc": ["input", "image_size"], "msg": details[0]["msg"], "type": "extra_forbidden"}
    ]


# ---------------------------------------------------------------- output sizes

GEMINI_25 = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
GEMINI_3 = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "4:1": (2048, 512),
    "1:4": (512, 2048),
    "8:1": (2944, 368),
    "1:8": (368, 2944),
}
SCALE = {"0.5K": 0.5, "1K": 1, "2K": 2, "4K": 4}


def size_of(
    model: str, first_input: tuple[int, int] | None = None, **params: Any
) -> tuple[int, int]:
    spec = CATALOG.get(model)
    assert spec is not None
    return output_size(CATALOG, spec, params, first_input)


@pytest.mark.parametrize("model", ["nano-banana", "nano-banana/edit"])
@pytest.mark.parametrize(("ratio", "size"), list(GEMINI_25.items()))
def test_nano_banana_output_size_is_fixed_at_about_1k(model, ratio, size):
    assert size_of(model, aspect_ratio=ratio) == size


def _gemini_3_rows(model: str) -> list[tuple[str, str, tuple[int, int]]]:
    spec = CATALOG.get(model)
    assert spec is not None
    ratios = [r for r in ENUMS[model]["aspect_ratio"] if r != "auto"]
    return [
        (ratio, res, (int(GEMINI_3[ratio][0] * SCALE[res]), int(GEMINI_3[ratio][1] * SCALE[res])))
        for ratio in ratios
        for res in ENUMS[model]["resolution"]
    ]


@pytest.mark.parametrize(
    ("model", "ratio", "resolution", "size"),
    [
        (m, *row)
        for m in ("nano-banana-2", "nano-banana-2/edit", "nano-banana-pro", "nano-banana-pro/edit")
        for row in _gemini_3_rows(m)
    ],
)
def test_gemini_3_output_size_per_ratio_and_resolution(model, ratio, resolution, size):
    assert size_of(model, aspect_ratio=ratio, resolution=resolution) == size


def test_gemini_3_resolutions_scale_the_1k_size():
    assert size_of("nano-banana-2", aspect_ratio="16:9", resolution="0.5K") == (688, 384)
    assert size_of("nano-banana-2", aspect_ratio="16:9", resolution="2K") == (2752, 1536)
    assert size_of("nano-banana-2", aspect_ratio="16:9", resolution="4K") == (5504, 3072)


@pytest.mark.parametrize("model", ["nano-banana-2", "nano-banana-pro"])
@pytest.mark.parametrize("resolution", ["1K", "2K"])
def test_auto_on_text_to_image_is_square(model, resolution):
    side = 1024 * SCALE[resolution]
    assert size_of(model, aspect_ratio="auto", resolution=resolution) == (side, side)


@pytest.mark.parametrize(
    ("model", "first_input", "size"),
    [
        ("nano-banana/edit", (1000, 1500), GEMINI_25["2:3"]),
        ("nano-banana/edit", (1920, 1080), GEMINI_25["16:9"]),
        ("nano-banana/edit", (4000, 1000), GEMINI_25["21:9"]),
        ("nano-banana-2/edit", (1920, 1080), GEMINI_3["16:9"]),
        ("nano-banana-2/edit", (4000, 1000), GEMINI_3["4:1"]),
        ("nano-banana-2/edit", (500, 4000), GEMINI_3["1:8"]),
        ("nano-banana-pro/edit", (1080, 1350), GEMINI_3["4:5"]),
        # Pro offers no 4:1 or 1:8: the nearest ratio it supports
        ("nano-banana-pro/edit", (4000, 1000), GEMINI_3["21:9"]),
        ("nano-banana-pro/edit", (500, 4000), GEMINI_3["9:16"]),
    ],
)
def test_auto_on_edit_follows_the_nearest_supported_ratio_of_the_first_image(
    model, first_input, size
):
    assert size_of(model, first_input, aspect_ratio="auto", resolution="1K") == size


@pytest.mark.parametrize("model", ["nano-banana-2/edit", "nano-banana-pro/edit"])
def test_auto_on_edit_is_always_a_ratio_the_model_offers(model):
    offered = {GEMINI_3[r] for r in ENUMS[model]["aspect_ratio"] if r != "auto"}
    for width, height in [(w, h) for w in (100, 700, 3000, 9000) for h in (100, 700, 3000, 9000)]:
        assert size_of(model, (width, height), aspect_ratio="auto", resolution="1K") in offered


@pytest.mark.parametrize("model", GPTS)
@pytest.mark.parametrize(("preset", "size"), list(PRESETS.items()))
def test_gpt_image_output_is_the_preset_size(model, preset, size):
    assert size_of(model, image_size=preset) == size


@pytest.mark.parametrize("model", GPTS)
@pytest.mark.parametrize("size", [(1536, 1024), (3840, 2160), (1024, 640)])
def test_gpt_image_output_is_exactly_the_requested_custom_size(model, size):
    width, height = size
    assert size_of(model, image_size={"width": width, "height": height}) == size


# ---------------------------------------------------------------- JSON Schema


@pytest.mark.parametrize("model", ALL_MODELS)
def test_the_json_schema_forbids_extra_fields_and_lists_the_required(model):
    schema = VALIDATOR.json_schema(model)
    assert schema["additionalProperties"] is False
    expected = {"prompt", "image_urls"} if model.endswith("/edit") else {"prompt"}
    assert set(schema["required"]) == expected
    assert set(schema["properties"]) == PARAMS[model]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_the_json_schema_carries_the_defaults(model):
    properties = VALIDATOR.json_schema(model)["properties"]
    for name, default in DEFAULTS[model].items():
        assert properties[name]["default"] == default, name


# ---------------------------------------------------------------- loading

BASE_TOML = """
[params.prompt]
type = "string"
required = true
description = "p"

[params.aspect_ratio]
type = "string"
default = "1:1"
values = ["1:1", "16:9"]
description = "a"

[params.num_images]
type = "integer"
default = 1
minimum = 1
maximum = 4
description = "n"

[image_size_presets]
square = [832, 832]

[sizes.small]
"1:1" = [512, 512]
"16:9" = [640, 360]

[[models]]
id = "one"
name = "One"
vendor = "V"
capability = "text-to-image"
family = "one"
sizes = "small"
upstream_model = "up-1"
description = "d"
params = ["prompt", "aspect_ratio", "num_images"]
example = { prompt = "x" }
"""

SECOND_MODEL = """
[[models]]
id = "{id}"
name = "Two"
vendor = "V"
capability = "text-to-image"
family = "two"
upstream_model = "up-2"
description = "d"
params = {params}
example = {{ prompt = "x" }}
"""


def test_a_small_valid_catalog_loads():
    catalog = Catalog.load(BASE_TOML + SECOND_MODEL.format(id="two", params='["prompt"]'))
    assert [m.id for m in catalog] == ["one", "two"]
    check_defaults(catalog)


def test_load_fails_on_a_duplicate_model_id():
    text = BASE_TOML + SECOND_MODEL.format(id="one", params='["prompt"]')
    with pytest.raises(ValueError, match="duplicate"):
        Catalog.load(text)


def test_load_fails_on_an_unknown_parameter_name():
    text = BASE_TOML + SECOND_MODEL.format(id="two", params='["prompt", "steps"]')
    with pytest.raises(ValueError, match="steps"):
        Catalog.load(text)


def test_load_fails_on_an_override_of_a_parameter_the_model_lacks():
    text = BASE_TOML + "[models.overrides.num_images]\ndefault = 2\n"
    text = text.replace('params = ["prompt", "aspect_ratio", "num_images"]', 'params = ["prompt"]')
    with pytest.raises(ValueError, match="num_images"):
        Catalog.load(text)


def test_load_fails_on_a_default_outside_its_values():
    text = BASE_TOML + '[models.overrides.aspect_ratio]\ndefault = "4:3"\n'
    with pytest.raises(ValueError, match="4:3"):
        Catalog.load(text)


def _catalog_with(param: ParamSpec) -> Catalog:
    model = ModelSpec(
        id="m",
        name="M",
        vendor="V",
        capability="text-to-image",
        family="m",
        upstream_model="up",
        description="d",
        params=(ParamSpec(name="prompt", type="string", description="p", required=True), param),
        example={"prompt": "x"},
    )
    return Catalog([model], sizes={}, presets={})


def test_check_defaults_refuses_a_default_outside_its_values():
    bad = ParamSpec(
        name="aspect_ratio", type="string", description="a", default="4:3", values=("1:1",)
    )
    with pytest.raises(ValueError, match="not one of its values"):
        check_defaults(_catalog_with(bad))


@pytest.mark.parametrize("default", [0, 5])
def test_check_defaults_refuses_an_integer_default_out_of_range(default):
    bad = ParamSpec(
        name="num_images", type="integer", description="n", default=default, minimum=1, maximum=4
    )
    with pytest.raises(ValueError, match="out of range"):
        check_defaults(_catalog_with(bad))


def test_check_defaults_accepts_defaults_within_their_rules():
    good = ParamSpec(
        name="num_images", type="integer", description="n", default=4, minimum=1, maximum=4
    )
    check_defaults(_catalog_with(good))
    check_defaults(CATALOG)


def test_the_packaged_catalog_references_only_known_size_tables():
    for model in CATALOG:
        if model.family.startswith("gpt"):
            assert model.sizes is None
        else:
            assert model.sizes in CATALOG.sizes
    assert CATALOG.sizes["gemini-2_5"] == GEMINI_25
    assert CATALOG.sizes["gemini-3"] == GEMINI_3
