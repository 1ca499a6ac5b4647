"""Reading vendor JSON with pydantic, leniently: a field of the wrong shape reads as absent.

Upstream answers are parsed into small models per protocol; a vendor that adds, drops or
mistypes a field must not turn an answer whose image is fine into a hub error, so each field
is `Lenient[...]`: its value when it validates, else None. Unknown fields are ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidatorFunctionWrapHandler
from pydantic.functional_validators import WrapValidator

T = TypeVar("T")


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


#: the field's value if it validates as T, else None
Lenient = Annotated[T | None, WrapValidator(_or_none)]


class VendorModel(BaseModel):
    """A piece of a vendor's answer: unknown fields ignored, names as the vendor spells them."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def present(items: list[T | None] | None) -> list[T]:
    """The items of a lenient list that validated."""
    return [item for item in items or () if item is not None]
