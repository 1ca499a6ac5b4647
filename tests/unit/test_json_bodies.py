"""Bodies written by orjson are the bytes `json.dumps` writes (api/responses.py)."""

from __future__ import annotations

import json

import pytest

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
