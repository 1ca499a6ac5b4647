"""Gemini `generateContent` (the Nano Banana family), on the Gemini API or on Vertex AI.

What the hub does that Gemini does not (CATALOG.md): one call per requested image
(`candidateCount` stays 1, the i-th call gets `seed + i`), `0.5K` sent as `"512"`, `auto` aspect
ratio left out, `thinking_level` as `thinkingConfig` with every `thought: true` part dropped,
web search as the `googleSearch` tool, `safety_tolerance` as `safetySettings`, and a 200 answer
without a final image counted as a failure, never as a success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import SecretStr

from imagehub.catalog import ModelSpec
from imagehub.errors import (
    ContentPolicyViolation,
    NoImageGenerated,
    TaskError,
    UpstreamConfigError,
    UpstreamUnavailable,
)
from imagehub.providers.base import GeneratedImage, GenerationRequest, GenerationResult
from imagehub.providers.fanout import fan_out
from imagehub.providers.http import Answer, HTTPProvider, parse_duration
from imagehub.providers.images import b64, decode_b64_image

IMAGE_SIZES = {"0.5K": "512", "1K": "1K", "2K": "2K", "4K": "4K"}
HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
#: safety_tolerance -> threshold on the four harm categories (hub-defined; 1 blocks the most)
THRESHOLDS = {
    "1": "BLOCK_LOW_AND_ABOVE",
    "2": "BLOCK_MEDIUM_AND_ABOVE",
    "3": "BLOCK_ONLY_HIGH",
    "4": "BLOCK_ONLY_HIGH",
    "5": "BLOCK_NONE",
    "6": "OFF",
}
#: finish reasons that mean the answer was withheld by a content filter
BLOCKED = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
_SEED_MODULUS = 2**31  # Gemini's seed is an int32: seed + i wraps


def request_body(request: GenerationRequest, index: int = 0) -> dict[str, Any]:
    """The `generateContent` body for the `index`-th image of a request."""
    params = request.params
    parts: list[dict[str, Any]] = [{"text": params["prompt"]}]
    parts += [
        {"inlineData": {"mimeType": image.content_type, "data": b64(image.data)}}
        for image in request.images
    ]
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": _generation_config(params, index),
    }
    tolerance = params.get("safety_tolerance")
    if tolerance is not None:
        threshold = THRESHOLDS[str(tolerance)]
        body["safetySettings"] = [{"category": c, "threshold": threshold} for c in HARM_CATEGORIES]
    if params.get("system_prompt"):
        body["systemInstruction"] = {"parts": [{"text": params["system_prompt"]}]}
    if params.get("enable_web_search") and "enable_web_search" not in request.model.ignored:
        body["tools"] = [{"googleSearch": {}}]
    return body


def _generation_config(params: dict[str, Any], index: int) -> dict[str, Any]:
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"], "candidateCount": 1}
    if params.get("seed") is not None:
        config["seed"] = (int(params["seed"]) + index) % _SEED_MODULUS
    image_config: dict[str, str] = {}
    ratio = params.get("aspect_ratio")
    if ratio and ratio != "auto":
        image_config["aspectRatio"] = ratio
    if params.get("resolution"):
        image_config["imageSize"] = IMAGE_SIZES[params["resolution"]]
    if image_config:
        config["imageConfig"] = image_config
    if params.get("thinking_level"):
        config["thinkingConfig"] = {
            "thinkingLevel": str(params["thinking_level"]).upper(),
            "includeThoughts": True,
        }
    return config


@dataclass(frozen=True, slots=True)
class _Answer:
    images: tuple[GeneratedImage, ...]
    text: str
    input_tokens: int | None
    output_tokens: int | None


async def parse_answer(body: dict[str, Any], *, limit: bool, label: str) -> _Answer:
    """Final images and text of one answer; thought parts dropped; no image is an error."""
    feedback = body.get("promptFeedback") or {}
    if feedback.get("blockReason"):
        said = feedback.get("blockReasonMessage") or ""
        why = f"{label} blocked the prompt ({feedback['blockReason']})"
        raise ContentPolicyViolation(why + (f": {said}" if said else ""))
    candidates = body.get("candidates") or []
    candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    parts = [p for p in (candidate.get("content") or {}).get("parts") or [] if isinstance(p, dict)]
    final = [p for p in parts if not p.get("thought")]
    texts = [p["text"].strip() for p in final if isinstance(p.get("text"), str)]
    texts = [text for text in texts if text]
    payloads = [
        p["inlineData"]["data"]
        for p in final
        if isinstance(p.get("inlineData"), dict)
        and str(p["inlineData"].get("mimeType", "image/")).startswith("image/")
        and isinstance(p["inlineData"].get("data"), str)
    ]
    if not payloads:
        raise _no_image(candidate, texts, label)
    if limit:
        payloads = payloads[-1:]
    images = [await decode_b64_image(data, label) for data in payloads]
    usage = body.get("usageMetadata") or {}
    thoughts = usage.get("thoughtsTokenCount")
    output = usage.get("candidatesTokenCount")
    if isinstance(output, int) and isinstance(thoughts, int):
        output += thoughts
    prompt = usage.get("promptTokenCount")
    return _Answer(
        tuple(images),
        "\n".join(texts),
        prompt if isinstance(prompt, int) else None,
        output if isinstance(output, int) else None,
    )


def _no_image(candidate: dict[str, Any], texts: list[str], label: str) -> TaskError:
    reason = str(candidate.get("finishReason") or "")
    message = str(candidate.get("finishMessage") or "")
    if reason in BLOCKED:
        why = f": {message}" if message else ""
        return ContentPolicyViolation(f"{label} withheld the image (finishReason {reason}){why}")
    said = texts[0][:200] if texts else message[:200]
    detail = f"finishReason {reason}" if reason else "no candidate"
    return NoImageGenerated(
        f"{label} answered without an image ({detail})" + (f"; it said: {said}" if said else "")
    )


class TokenSource(Protocol):
    """An OAuth access token for Vertex AI, fresh enough to use now."""

    async def token(self) -> str: ...


class GeminiProvider(HTTPProvider):
    """The Gemini API: `POST {base}/models/{model}:generateContent`, key in `x-goog-api-key`."""

    kind: ClassVar[str] = "gemini"

    def __init__(
        self,
        *,
        name: str = "gemini",
        api_key: SecretStr | None,
        base_url: str,
        timeout: float,
        max_connections: int | None = None,
    ) -> None:
        super().__init__(
            name=name,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_connections=max_connections,
        )

    @staticmethod
    def default_upstream(model: ModelSpec) -> str | None:
        return model.upstream_model if model.family.startswith("nano-banana") else None

    def url(self, upstream_model: str, method: str = "generateContent") -> str:
        return f"{self.base_url}/models/{upstream_model}:{method}"

    async def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.secret}

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        count = int(request.params.get("num_images", 1))
        limit = bool(request.params.get("limit_generations"))
        answers, warnings = await fan_out(
            [self._call(request, i, limit) for i in range(count)], self.name
        )
        return GenerationResult(
            images=tuple(image for answer in answers for image in answer.images),
            description="\n".join(a.text for a in answers if a.text),
            input_tokens=_total(a.input_tokens for a in answers),
            output_tokens=_total(a.output_tokens for a in answers),
            warnings=warnings,
        )

    async def _call(self, request: GenerationRequest, index: int, limit: bool) -> _Answer:
        response = await self.http.request(
            "POST",
            self.url(request.upstream_model),
            headers=await self.headers(),
            json_body=request_body(request, index),
        )
        if response.status_code != 200:
            raise self._error(response)
        return await parse_answer(self.http.json(response), limit=limit, label=self.name)

    def _error(self, response: Answer) -> TaskError:
        try:
            error = self.http.json(response).get("error") or {}
        except UpstreamUnavailable:
            error = {}
        detail = " ".join(str(error.get(k, "")) for k in ("status", "message")).strip()
        retry_after = next(
            (
                parse_duration(d.get("retryDelay"))
                for d in error.get("details") or []
                if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo")
            ),
            None,
        )
        if error.get("status") == "FAILED_PRECONDITION":  # billing or region, not the request
            return UpstreamConfigError(
                f"{self.name} refused the request ({self.http.redact(detail)}); check the "
                "account's billing and region"
            )
        return self.http.error(response, detail, retry_after=retry_after)

    async def check(self, upstream_model: str) -> str:
        """A live, free call: count the tokens of a word with this route's key and model id."""
        body = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}]}
        response = await self.http.request(
            "POST",
            self.url(upstream_model, "countTokens"),
            headers=await self.headers(),
            json_body=body,
        )
        if response.status_code != 200:
            raise self._error(response)
        return f"{upstream_model}: ok ({self.http.json(response).get('totalTokens')} tokens)"


class VertexProvider(GeminiProvider):
    """Vertex AI: the same body, a project/location URL and an OAuth bearer token."""

    kind: ClassVar[str] = "vertex"

    def __init__(
        self,
        *,
        name: str = "vertex",
        project: str,
        location: str = "global",
        tokens: TokenSource,
        base_url: str | None = None,
        timeout: float,
        max_connections: int | None = None,
    ) -> None:
        host = "aiplatform.googleapis.com"
        if location != "global":
            host = f"{location}-{host}"
        super().__init__(
            name=name,
            api_key=None,
            base_url=base_url or f"https://{host}/v1",
            timeout=timeout,
            max_connections=max_connections,
        )
        self.project = project
        self.location = location
        self.tokens = tokens

    def url(self, upstream_model: str, method: str = "generateContent") -> str:
        return (
            f"{self.base_url}/projects/{self.project}/locations/{self.location}"
            f"/publishers/google/models/{upstream_model}:{method}"
        )

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.tokens.token()}"}


def _total(values: Any) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
