"""`--param NAME=VALUE` against a model's parameter table, without a hub."""

from __future__ import annotations

import pytest

from imagehub.cli.params import UsageError, catalog_help, parse_params
from imagehub.schemas import ModelOut, ParameterOut


def param(name: str, type_: str, **fields) -> ParameterOut:
    return ParameterOut(name=name, type=type_, required=False, description="d", **fields)


MODEL = ModelOut(
    id="m",
    name="M",
    vendor="V",
    capability="text-to-image",
    description="",
    parameters=[
        param("prompt", "string"),
        param("seed", "integer", minimum=0, maximum=10),
        param("sync_mode", "boolean"),
        param("aspect_ratio", "string", values=["1:1", "16:9"]),
        param("image_size", "oneOf"),
        param("image_urls", "string[]"),
        param("system_prompt", "string"),
    ],
    input_schema={},
    example={},
)


def test_values_are_converted_to_the_parameter_types():
    params = parse_params(
        [
            "seed=7",
            "sync_mode=yes",
            "aspect_ratio=16:9",
            "image_size=1024x768",
            "system_prompt=a=b",
        ],
        MODEL,
    )
    assert params == {
        "seed": 7,
        "sync_mode": True,
        "aspect_ratio": "16:9",
        "image_size": {"width": 1024, "height": 768},
        "system_prompt": "a=b",
    }
    assert parse_params(["image_size=square_hd"], MODEL) == {"image_size": "square_hd"}
    assert parse_params(['image_size={"width": 16, "height": 32}'], MODEL) == {
        "image_size": {"width": 16, "height": 32}
    }


def test_every_problem_is_reported_at_once():
    with pytest.raises(UsageError) as caught:
        parse_params(
            [
                "seed=11",
                "seed=x",
                "sync_mode=maybe",
                "aspect_ratio=7:3",
                "colour=red",
                "noequals",
                "prompt=hi",
            ],
            MODEL,
        )
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid --param:" and len(lines) == 8
    text = str(caught.value)
    assert "seed: must be from 0 to 10, not 11" in text
    assert "seed: must be an integer, not 'x'" in text
    assert "sync_mode: must be true or false" in text
    assert "aspect_ratio: must be one of 1:1 16:9" in text
    assert "colour: m has no such parameter" in text
    assert "'noequals': write it as NAME=VALUE" in text
    assert "prompt: give it as the prompt argument" in text


def test_a_parameter_given_twice_is_refused_unless_it_is_a_list():
    with pytest.raises(UsageError, match="given more than once"):
        parse_params(["seed=1", "seed=2"], MODEL)
    with pytest.raises(UsageError, match="--image"):
        parse_params(["image_urls=https://a/1.png"], MODEL)


def test_help_lists_the_packaged_models_of_one_capability():
    text = catalog_help("image-to-image")
    assert "  nano-banana-2/edit\n" in text and "  nano-banana-2\n" not in text
    assert "    mask_url" not in text, "options of their own are not listed as --param"
