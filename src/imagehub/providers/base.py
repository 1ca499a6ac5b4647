"""The provider protocol: one adapter per upstream wire protocol, plus the shared request types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from imagehub.catalog import ModelSpec


@dataclass(frozen=True, slots=True)
class InputImage:
    """A fetched, decoded and checked input image (EXIF orientation applied)."""

    #: the image re-encoded losslessly as PNG after orientation was applied
    data: bytes
    content_type: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    model: ModelSpec
    #: the validated input, defaults applied
    params: dict[str, Any]
    #: the decoded `image_urls`, in order (edit models)
    images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None
    #: the upstream model id of the route
    upstream_model: str = ""


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """Bytes as the provider returned them; the worker transcodes and measures them."""

    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class GenerationResult:
    images: tuple[GeneratedImage, ...]
    description: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: of the input tokens, the image ones; of the output tokens, the text ones (where the
    #: upstream splits them: OpenAI bills each at its own rate)
    input_image_tokens: int | None = None
    output_text_tokens: int | None = None
    warnings: tuple[str, ...] = field(default=())


class Provider(Protocol):
    """Runs one generation on an upstream. Raises `TaskError` subclasses, never raw HTTP errors."""

    #: the name the task reports in `provider`
    name: str

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def aclose(self) -> None: ...
