"""The provider protocol: one adapter per upstream wire protocol, plus the shared request types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from imagehub.catalog import ModelSpec

# the image value types live with the image helpers; re-exported here for compatibility
from imagehub.imagework import ImageWork
from imagehub.imaging import GeneratedImage, InputImage
from imagehub.tasks import Grounding

__all__ = [
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "InputImage",
    "PartialSink",
    "Provider",
    "ResultFetcher",
]


class ResultFetcher(Protocol):
    """Downloads an image an upstream linked to instead of sending it (the hub's safe fetcher)."""

    async def fetch_result(self, url: str, label: str, *, max_bytes: int) -> bytes: ...


#: takes each partial image an upstream streams while it draws: its index (from 0) and the image
PartialSink = Callable[[int, GeneratedImage], Awaitable[None]]


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
    #: fetches result images linked by URL; without it such answers are refused
    fetcher: ResultFetcher | None = None
    #: where CPU-heavy image work (shrinking inputs to an upstream's limits) runs: the
    #: worker's image processes; None: a thread
    work: ImageWork | None = None
    #: partial images to ask the upstream to stream (0: none; only routes that honour it get > 0)
    partial_images: int = 0
    #: where the partial images go, as they arrive
    on_partial: PartialSink | None = None


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
    #: what a web search behind the answer found, when the upstream says
    grounding: Grounding | None = None


class Provider(Protocol):
    """Runs one generation on an upstream. Raises `TaskError` subclasses, never raw HTTP errors."""

    #: the name the task reports in `provider`
    name: str

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def aclose(self) -> None: ...
