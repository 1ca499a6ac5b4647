"""`--param NAME=VALUE`: parsed to the right type and checked against a model's parameter table.

The table is the one the hub serves (`GET /hub/v1/models/{id}`), so the CLI never drifts from
what the hub validates; `--help` lists the packaged catalog, which needs no connection.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from imagehub.catalog import Catalog
from imagehub.schemas import ModelOut, ParameterOut

#: parameters with their own option or argument, never given with --param
OWN_OPTIONS = {"prompt": "the prompt argument", "image_urls": "--image", "mask_url": "--mask"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_HELP_VALUES = {"boolean": "true false"}
_SIZE = re.compile(r"^(\d+)x(\d+)$")


class UsageError(Exception):
    """The command line is wrong; the message says how (exit code 2)."""


def parse_params(pairs: Iterable[str], model: ModelOut) -> dict[str, Any]:
    """`NAME=VALUE` pairs as the model's input; UsageError listing every problem at once."""
    table = {p.name: p for p in model.parameters}
    params: dict[str, Any] = {}
    problems: list[str] = []
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError(f"{pair!r}: write it as NAME=VALUE")
            if name in OWN_OPTIONS:
                raise ValueError(f"{name}: give it as {OWN_OPTIONS[name]}")
            spec = table.get(name)
            if spec is None:
                known = ", ".join(n for n in table if n not in OWN_OPTIONS)
                raise ValueError(f"{name}: {model.id} has no such parameter; it takes {known}")
            _store(params, spec, convert(spec, raw))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("invalid --param:\n  " + "\n  ".join(problems))
    return params


def _store(params: dict[str, Any], spec: ParameterOut, value: Any) -> None:
    if spec.type == "string[]":
        params.setdefault(spec.name, []).extend(value)
    elif spec.name in params:
        raise ValueError(f"{spec.name}: given more than once")
    else:
        params[spec.name] = value


def convert(spec: ParameterOut, raw: str) -> Any:
    """One value, typed as the parameter's table says; ValueError naming the rule broken."""
    kind = spec.type
    if kind == "integer":
        return _integer(spec, raw)
    if kind == "boolean":
        word = raw.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise ValueError(f"{spec.name}: must be true or false, not {raw!r}")
    if kind == "oneOf":
        return _image_size(spec, raw)
    if kind == "string[]":
        return [raw]
    if spec.values and raw not in spec.values:
        raise ValueError(f"{spec.name}: must be one of {' '.join(spec.values)}, not {raw!r}")
    return raw


def _integer(spec: ParameterOut, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{spec.name}: must be an integer, not {raw!r}") from None
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{spec.name}: must be from {low} to {high}, not {value}")
    return value


def _image_size(spec: ParameterOut, raw: str) -> str | dict[str, int]:
    """A preset name or `auto` as is; `WxH` or a JSON object as {width, height}."""
    size = _SIZE.match(raw.strip())
    if size:
        return {"width": int(size.group(1)), "height": int(size.group(2))}
    if raw.strip().startswith("{"):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"{spec.name}: not valid JSON: {raw!r}") from None
        if isinstance(value, dict):
            return value
    return raw


def range_text(spec: ParameterOut) -> str:
    """The Values / Range column."""
    if spec.values:
        return " ".join(spec.values)
    if spec.type == "oneOf":
        return "a preset, auto, or WxH"
    if spec.minimum is not None and spec.maximum is not None:
        unit = " items" if spec.type == "string[]" else ""
        return f"{spec.minimum} to {spec.maximum}{unit}"
    return ""


def catalog_help(capability: str) -> str:
    """The --help epilog: each packaged model of `capability` and the --param it takes."""
    lines = [
        "parameters (--param NAME=VALUE, default in brackets; 'imagehub models ID' explains each):"
    ]
    catalog = Catalog.load()
    sizes = f"a preset ({', '.join(catalog.presets)}), auto, or WxH"
    for model in catalog:
        if model.capability != capability:
            continue
        lines.append(f"  {model.id}")
        for p in model.params:
            if p.name in OWN_OPTIONS:
                continue
            default = f" [{show(p.default)}]" if p.default not in (None, "") else ""
            values = sizes if p.type == "image_size" else _HELP_VALUES.get(p.type, p.range_text)
            values = values or "text"
            lines.append(f"    {p.name:<18} {p.display_type:<8} {values}{default}")
    return "\n".join(lines)


def show(value: Any) -> str:
    """A parameter value as the command line writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
