"""The shape of a JSON body, bounded before it is decoded.

A body within the byte cap can still cost far more than its size: a million keys make a
million validation errors, and nesting a few hundred levels deep is stored fine but cannot be
rendered back (pydantic's serializer stops at a fixed depth). The check below refuses such a
body before anything decodes it, and its own work is bounded: a count of brackets and commas
in C settles most bodies; otherwise one pass steps over the structure (strings skipped with
`bytes.find`) and stops at the first bound crossed.
"""

from __future__ import annotations

import json
import re

from imagehub.errors import InvalidInput

#: levels of nesting, the body's own object being the first; far more than any field needs,
#: and a task nested this deep still renders back (alone, in a list of tasks, as an event)
MAX_DEPTH = 32
#: keys of one object, items of one array
MAX_MEMBERS = 1_000
#: values in the whole body (every object, array and member after the first of each)
MAX_VALUES = 10_000

#: the next structural character or string
_NEXT = re.compile(rb'[\[\]{},:"]')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE = ord('"')
_COMMA = ord(",")
_COLON = ord(":")
#: a top-level key longer than this is not quoted back in an error
_MAX_NAME = 64


class _Shape:
    """Where the pass is: open containers (their comma count), values seen, the current field."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.commas: list[int] = []
        self.values = 0
        self.steps = 0
        self.field = "body"
        self.last_string = (0, 0)  # the span of the last top-level string

    def refuse(self, msg: str, type_: str, field: str | None = None) -> InvalidInput:
        return InvalidInput.one([field or self.field], msg, type_)

    def string(self, start: int, end: int) -> None:
        self._tick()
        if len(self.commas) == 1:  # only a top-level key names a field
            self.last_string = (start, end)

    def _tick(self) -> None:
        self.steps += 1
        if self.steps > 4 * MAX_VALUES:  # strings, closing brackets and colons count here
            raise self._too_many()

    def step(self, char: int) -> None:
        self._tick()
        if char in _OPEN:
            self.commas.append(0)
            self._value()
            if len(self.commas) > MAX_DEPTH:
                raise self.refuse(f"must not nest more than {MAX_DEPTH} levels deep", "depth")
        elif char in _CLOSE:
            if self.commas:
                self.commas.pop()
        elif char == _COMMA:
            self._value()
            if self.commas:
                self.commas[-1] += 1
                if self.commas[-1] >= MAX_MEMBERS:
                    raise self.refuse(
                        f"must have at most {MAX_MEMBERS:,} keys per object or items per array",
                        "too_many_members",
                    )
        elif char == _COLON and len(self.commas) == 1:
            start, end = self.last_string
            self.field = _name(self.raw[start:end]) if end - start <= _MAX_NAME + 2 else "body"

    def _value(self) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._too_many()

    def _too_many(self) -> InvalidInput:
        msg = f"must hold at most {MAX_VALUES:,} values in all"
        return self.refuse(msg, "too_many_values", "body")


def _name(token: bytes) -> str:
    try:
        name = json.loads(token)
    except ValueError:
        return "body"
    return name if isinstance(name, str) and name.isprintable() else "body"


def _surely_within(raw: bytes) -> bool:
    """True when counting brackets and commas, in strings or not, already shows no bound
    can be crossed: no deeper than the brackets, no more members than the commas."""
    opens = raw.count(b"[") + raw.count(b"{")
    return opens <= MAX_DEPTH and raw.count(b",") < MAX_MEMBERS


def check_shape(raw: bytes) -> None:
    """Raise InvalidInput (naming the top-level field) when `raw` crosses a bound above.

    Malformed JSON passes, and so does a body that is no object (no field to name, and no
    route takes one): the decoder and the schema that follow refuse it.
    """
    if not raw.lstrip().startswith(b"{") or _surely_within(raw):
        return
    # with escaped backslashes and quotes blanked (same length), every quote left is one
    # that opens or closes a string
    clean = raw.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    shape = _Shape(raw)
    pos = 0
    while (found := _NEXT.search(clean, pos)) is not None:
        start = found.start()
        if clean[start] != _QUOTE:
            shape.step(clean[start])
            pos = start + 1
            continue
        end = clean.find(b'"', start + 1)
        if end < 0:
            return  # an unterminated string: not JSON
        shape.string(start, end + 1)
        pos = end + 1
