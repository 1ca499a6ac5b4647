"""Bodies written by orjson are the bytes `json.dumps` writes (api/responses.py), and request
bodies read by orjson are what `json.loads` reads (api/errors.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import RootModel

from imagehub.api.errors import parse_body
from imagehub.api.responses import json_bytes

VALUES = [
    {"cost_usd": 0.011, "tokens": 272, "ok": True, "none": None},
    {"tiny": 1e-05, "tinier": 4.2e-07, "ten": 10.00001, "huge": 1e16, "exp": 1e-10},
    {"text": "une île ✓ \u2028 \x00\x1f\x7f", "path": "image-0.png", "note": "e-5 0.0000"},
    {"big": 2**70, "negative": -3, "list": [1, 2.5, [], {}]},
    [{"b64_json": "iVBORw0KGgo" * 1000}],
]


@pytest.mark.parametrize("value", VALUES)
def test_a_body_is_what_json_dumps_writes(value):
    compact = {"indent": None, "separators": (",", ":")}
    assert json_bytes(value) == json.dumps(value, ensure_ascii=False, **compact).encode()
    assert json_bytes(value, ascii_only=True) == json.dumps(value, **compact).encode()


class AnyBody(RootModel[Any]):
    pass


BODIES = [
    b'{"seed": 12345678901234567890123, "n": 9223372036854775807, "m": -9223372036854775809}',
    b'{"seed": 123456789012345678, "x": 1e400, "y": -1e400, "z": 2.5e-7}',
    b'{"a": 1, "a": 2, "p": "\\u00e9\\n\\u2028", "q": [0.1, -0.0, 1E+2]}',
    b'{"f": 1e19, "g": -9.3e18, "h": 1' + b"0" * 300 + b"}",
    '\ufeff{"a": "é"}'.encode(),
    '{"a": "é"}'.encode("utf-16"),
    # an edit's inline input image, as large as a 12-megapixel JPEG's data URI
    b'{"image_urls": ["data:image/jpeg;base64,' + b"/9j/4AAQSkZJRgABAQ" * 400_000 + b'"]}',
]


@pytest.mark.parametrize("raw", BODIES)
def test_a_request_body_is_read_as_the_standard_library_reads_it(raw):
    # orjson reads the usual bodies; what it reads otherwise goes to the standard library
    assert repr(parse_body(raw, AnyBody).root) == repr(json.loads(raw))
