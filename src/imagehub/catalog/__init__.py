"""The model catalog as data: eight models and their parameter tables."""

from __future__ import annotations

from imagehub.catalog.spec import Catalog, ModelSpec, ParamSpec, output_size
from imagehub.catalog.validation import Validator, ValidInput

__all__ = ["Catalog", "ModelSpec", "ParamSpec", "ValidInput", "Validator", "output_size"]
