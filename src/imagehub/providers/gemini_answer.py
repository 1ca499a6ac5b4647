"""Gemini `generateContent` answers, read with small pydantic models (Gemini's camelCase names).

Final images and text with every `thought: true` part dropped, token counts with the thoughts
billed as output, web search grounding, and a 200 answer without an image as a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, StrictInt, StrictStr

from imagehub.errors import ContentPolicyViolation, NoImageGenerated, TaskError
from imagehub.providers.base import GeneratedImage
from imagehub.providers.google import BLOCKED
from imagehub.providers.http import parse_duration
from imagehub.providers.images import decode_b64_image, lifted_payload
from imagehub.providers.lenient import Lenient, VendorModel, present
from imagehub.tasks import Grounding, Source

_RETRY_INFO = "RetryInfo"


@dataclass(frozen=True, slots=True)
class CallAnswer:
    images: tuple[GeneratedImage, ...]
    text: str
    input_tokens: int | None
    output_tokens: int | None
    grounding: Grounding | None = None


# -- the answer, as Gemini documents it (camelCase names are Gemini's own)


class _Blob(VendorModel):
    mimeType: Any = "image/"
    data: Lenient[StrictStr] = None


class _Part(VendorModel):
    text: Lenient[StrictStr] = None
    thought: Any = None
    inlineData: Lenient[_Blob] = None

    @property
    def image(self) -> str | None:
        """The base64 payload of an image part."""
        blob = self.inlineData
        if blob is None or not str(blob.mimeType).startswith("image/"):
            return None
        return blob.data


class _Content(VendorModel):
    parts: Lenient[list[Lenient[_Part]]] = None


class _Web(VendorModel):
    uri: Lenient[StrictStr] = None
    title: Lenient[StrictStr] = None


class _Chunk(VendorModel):
    web: Lenient[_Web] = None


class _EntryPoint(VendorModel):
    renderedContent: Lenient[StrictStr] = None


class _GroundingMetadata(VendorModel):
    webSearchQueries: Lenient[list[Lenient[StrictStr]]] = None
    searchEntryPoint: Lenient[_EntryPoint] = None
    groundingChunks: Lenient[list[Lenient[_Chunk]]] = None

    def grounding(self) -> Grounding:
        webs = [chunk.web for chunk in present(self.groundingChunks) if chunk.web]
        sources = tuple(Source(web.uri, web.title or "") for web in webs if web.uri)
        entry = self.searchEntryPoint.renderedContent if self.searchEntryPoint else None
        return Grounding(tuple(present(self.webSearchQueries)), entry or "", sources)


class _Candidate(VendorModel):
    content: Lenient[_Content] = None
    groundingMetadata: Lenient[_GroundingMetadata] = None
    finishReason: Any = None
    finishMessage: Any = None

    def final_parts(self) -> list[_Part]:
        """The parts that are not thoughts."""
        parts = present(self.content.parts) if self.content else []
        return [part for part in parts if not part.thought]


class _Feedback(VendorModel):
    blockReason: Any = None
    blockReasonMessage: Any = None


class _Usage(VendorModel):
    promptTokenCount: Lenient[StrictInt] = None
    candidatesTokenCount: Lenient[StrictInt] = None
    thoughtsTokenCount: Lenient[StrictInt] = None

    @property
    def output(self) -> int | None:
        """Output tokens, thoughts included (they are billed as output)."""
        if self.candidatesTokenCount is None or self.thoughtsTokenCount is None:
            return self.candidatesTokenCount
        return self.candidatesTokenCount + self.thoughtsTokenCount


class GeminiAnswer(VendorModel):
    promptFeedback: Lenient[_Feedback] = None
    candidates: Lenient[list[Lenient[_Candidate]]] = None
    usageMetadata: Lenient[_Usage] = None

    @property
    def candidate(self) -> _Candidate:
        """The first candidate (the hub asks for one), empty when there is none."""
        first = self.candidates[0] if self.candidates else None
        return first or _Candidate()


class _ErrorDetail(VendorModel):
    type: Any = Field("", alias="@type")
    retryDelay: Any = None


class GeminiError(VendorModel):
    status: Any = ""
    message: Any = ""
    details: Lenient[list[Lenient[_ErrorDetail]]] = None

    @property
    def retry_after(self) -> float | None:
        retry = (d for d in present(self.details) if str(d.type).endswith(_RETRY_INFO))
        return next((parse_duration(d.retryDelay) for d in retry), None)


class ErrorBody(VendorModel):
    error: Lenient[GeminiError] = None


async def parse_answer(
    body: dict[str, Any], *, limit: bool, label: str, lifted: Sequence[memoryview] = ()
) -> CallAnswer:
    """Final images and text of one answer; thought parts dropped; no image is an error.

    `lifted`: the base64 strings `lift_base64` cut out of the body, which stand-ins name."""
    answer = GeminiAnswer.model_validate(body)
    feedback = answer.promptFeedback
    if feedback is not None and feedback.blockReason:
        said = feedback.blockReasonMessage or ""
        why = f"{label} blocked the prompt ({feedback.blockReason})"
        raise ContentPolicyViolation(why + (f": {said}" if said else ""))
    candidate = answer.candidate
    final = candidate.final_parts()
    texts = [text for p in final if p.text is not None and (text := p.text.strip())]
    payloads = [p.image for p in final if p.image is not None]
    if not payloads:
        raise _no_image(candidate, texts, label)
    if limit:
        payloads = payloads[-1:]
    images = [await decode_b64_image(lifted_payload(data, lifted), label) for data in payloads]
    usage = answer.usageMetadata or _Usage()
    grounding = candidate.groundingMetadata.grounding() if candidate.groundingMetadata else None
    return CallAnswer(
        tuple(images), "\n".join(texts), usage.promptTokenCount, usage.output, grounding
    )


def _no_image(candidate: _Candidate, texts: list[str], label: str) -> TaskError:
    reason = str(candidate.finishReason or "")
    message = str(candidate.finishMessage or "")
    if reason in BLOCKED:
        why = f": {message}" if message else ""
        return ContentPolicyViolation(f"{label} withheld the image (finishReason {reason}){why}")
    said = texts[0][:200] if texts else message[:200]
    detail = f"finishReason {reason}" if reason else "no candidate"
    return NoImageGenerated(
        f"{label} answered without an image ({detail})" + (f"; it said: {said}" if said else "")
    )


def merged(groundings: list[Grounding | None]) -> Grounding | None:
    """The groundings of the calls of one task as one: queries and sources once each."""
    found = [g for g in groundings if g is not None]
    if not found:
        return None
    sources: dict[str, Source] = {}
    for grounding in found:
        for source in grounding.sources:
            sources.setdefault(source.uri, source)
    return Grounding(
        queries=tuple(dict.fromkeys(q for g in found for q in g.queries)),
        search_entry_point=next((g.search_entry_point for g in found if g.search_entry_point), ""),
        sources=tuple(sources.values()),
    )
