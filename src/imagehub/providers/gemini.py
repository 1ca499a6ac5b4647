"""Gemini `generateContent` (the Nano Banana family), on the Gemini API or on Vertex AI.

What the hub does that Gemini does not (CATALOG.md): one call per requested image
(`candidateCount` stays 1, the i-th call gets `seed + i`), `0.5K` sent as `"512"`, `auto` aspect
ratio left out, `thinking_level` as `thinkingConfig` with every `thought: true` part dropped,
web search as the `googleSearch` tool (what it found returned as the output's `grounding`),
`safety_tolerance` as `safetySettings`, and a 200 answer without a final image counted as a
failure, never as a success. Answers are read in `gemini_answer.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

from pydantic import SecretStr

from imagehub.catalog import ModelSpec
from imagehub.errors import (
    TaskError,
    UpstreamConfigError,
    UpstreamUnavailable,
)
from imagehub.imaging import b64
from imagehub.providers.base import GenerationRequest, GenerationResult
from imagehub.providers.fanout import fan_out
from imagehub.providers.gemini_answer import (
    CallAnswer,
    ErrorBody,
    GeminiError,
    merged,
    parse_answer,
)
from imagehub.providers.google import (
    HARM_CATEGORIES,
    IMAGE_SIZES,
    SEED_MODULUS,
    THRESHOLDS,
)
from imagehub.providers.http import Answer, HTTPProvider
from imagehub.providers.images import lift_base64
from imagehub.providers.inputs import GEMINI_API, VERTEX_AI, InlineLimits, fit


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
        config["seed"] = (int(params["seed"]) + index) % SEED_MODULUS
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


class TokenSource(Protocol):
    """An OAuth access token for Vertex AI, fresh enough to use now."""

    async def token(self) -> str: ...


class GeminiProvider(HTTPProvider):
    """The Gemini API: `POST {base}/models/{model}:generateContent`, key in `x-goog-api-key`."""

    kind: ClassVar[str] = "gemini"
    #: what the upstream documents for inline input images
    limits: ClassVar[InlineLimits] = GEMINI_API

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
        images, fitted = await fit(request.images, self.limits, self.name, request.work)
        request = dataclasses.replace(request, images=images)
        answers, warnings = await fan_out(
            [self._call(request, i, limit) for i in range(count)], self.name
        )
        return GenerationResult(
            images=tuple(image for answer in answers for image in answer.images),
            description="\n".join(a.text for a in answers if a.text),
            input_tokens=_total(a.input_tokens for a in answers),
            output_tokens=_total(a.output_tokens for a in answers),
            warnings=fitted + warnings,
            grounding=merged([a.grounding for a in answers]),
        )

    async def _call(self, request: GenerationRequest, index: int, limit: bool) -> CallAnswer:
        response = await self.http.request(
            "POST",
            self.url(request.upstream_model),
            headers=await self.headers(),
            json_body=request_body(request, index),
        )
        if response.status_code != 200:
            raise self._error(response)
        # the images' base64 (`inlineData.data`) is decoded from the bytes read, not parsed
        content, lifted = lift_base64(response.content, b"data")
        body = self.http.json(dataclasses.replace(response, content=content))
        return await parse_answer(body, limit=limit, label=self.name, lifted=lifted)

    def _error(self, response: Answer) -> TaskError:
        try:
            error = ErrorBody.model_validate(self.http.json(response)).error or GeminiError()
        except UpstreamUnavailable:
            error = GeminiError()
        detail = f"{error.status} {error.message}".strip()
        if error.status == "FAILED_PRECONDITION":  # billing or region, not the request
            return UpstreamConfigError(
                f"{self.name} refused the request ({self.http.redact(detail)}); check the "
                "account's billing and region"
            )
        return self.http.error(response, detail, retry_after=error.retry_after)

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
    limits: ClassVar[InlineLimits] = VERTEX_AI

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
