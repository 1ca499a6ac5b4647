"""Chat completions that return images (OpenRouter style), for any compatible base URL.

Request: `modalities: ["image", "text"]`, `image_config` (aspect ratio and size), the system
prompt as a `system` message, input images as `image_url` content parts with data URIs.
Answer: images in `choices[0].message.images[]` (checked first), else `data:image/` URIs found
in the text content, as some relays send them. An image linked by http(s) URL rather than sent
is fetched through the hub's safe fetcher (public addresses only, capped in bytes), without the
route's key. One call per requested image.

`OpenAICompatibleProvider` is the base; a look-alike vendor is a routes-file entry with
`provider = "openai_compatible"` and its `base_url`, or a small subclass like `OpenRouterProvider`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import SecretStr, StrictInt, StrictStr

from imagehub.catalog import ModelSpec
from imagehub.errors import ContentPolicyViolation, NoImageGenerated, TaskError
from imagehub.imaging import DATA_URI, DATA_URI_IN_TEXT, data_uri
from imagehub.providers.base import (
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ResultFetcher,
)
from imagehub.providers.fanout import fan_out
from imagehub.providers.google import BLOCKED, IMAGE_SIZES, SEED_MODULUS
from imagehub.providers.http import Answer, HTTPProvider
from imagehub.providers.images import decode_data_uri, fetch_linked
from imagehub.providers.inputs import DATA_URIS, fit
from imagehub.providers.lenient import Lenient, VendorModel, present

# -- the answer, as chat completions carry it


class _ImageURL(VendorModel):
    url: Lenient[StrictStr] = None


class _ImageItem(VendorModel):
    image_url: Lenient[_ImageURL] = None


class _Message(VendorModel):
    content: Lenient[StrictStr] = None
    images: Lenient[list[Lenient[_ImageItem]]] = None

    @property
    def text(self) -> str:
        return self.content or ""

    def image_uris(self) -> list[str]:
        """Images of `images[]`, else the data URIs found in the text."""
        listed = [i.image_url.url for i in present(self.images) if i.image_url and i.image_url.url]
        return listed or [m.group(0) for m in DATA_URI_IN_TEXT.finditer(self.text)]


class _Choice(VendorModel):
    message: Lenient[_Message] = None
    finish_reason: Any = None
    native_finish_reason: Any = None


class _Usage(VendorModel):
    prompt_tokens: Lenient[StrictInt] = None
    completion_tokens: Lenient[StrictInt] = None


class ChatAnswer(VendorModel):
    choices: Lenient[list[Lenient[_Choice]]] = None
    usage: Lenient[_Usage] = None
    error: Lenient[dict[str, Any]] = None

    @property
    def choice(self) -> _Choice:
        first = self.choices[0] if self.choices else None
        return first or _Choice()


class _Error(VendorModel):
    message: Any = ""
    code: Any = None


class _ErrorBody(VendorModel):
    error: Lenient[_Error] = None


class OpenAICompatibleProvider(HTTPProvider):
    """`POST {base}/chat/completions` with `Authorization: Bearer` and image modalities."""

    kind: ClassVar[str] = "openai_compatible"
    #: upstream model ids are the catalog's, with this prefix (OpenRouter: "google/")
    model_prefix: ClassVar[str] = ""

    def __init__(
        self,
        *,
        name: str = "openai_compatible",
        api_key: SecretStr | None,
        base_url: str,
        timeout: float,
        max_connections: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            name=name,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_connections=max_connections,
        )
        self._extra_headers = dict(headers or {})

    @classmethod
    def default_upstream(cls, model: ModelSpec) -> str | None:
        if not model.family.startswith("nano-banana"):
            return None
        return cls.model_prefix + model.upstream_model

    def headers(self) -> dict[str, str]:
        headers = dict(self._extra_headers)
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        return headers

    def request_body(self, request: GenerationRequest, index: int = 0) -> dict[str, Any]:
        params = request.params
        content: list[dict[str, Any]] = [{"type": "text", "text": params["prompt"]}]
        content += [
            {"type": "image_url", "image_url": {"url": data_uri(image.content_type, image.data)}}
            for image in request.images
        ]
        messages: list[dict[str, Any]] = []
        if params.get("system_prompt"):
            messages.append({"role": "system", "content": params["system_prompt"]})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {
            "model": request.upstream_model,
            "modalities": ["image", "text"],
            "messages": messages,
        }
        image_config: dict[str, str] = {}
        if params.get("aspect_ratio") not in (None, "auto"):
            image_config["aspect_ratio"] = params["aspect_ratio"]
        if params.get("resolution"):
            # "0.5K" is passed through to Google and refused there; Google's own name is "512"
            image_config["image_size"] = IMAGE_SIZES[params["resolution"]]
        if image_config:
            body["image_config"] = image_config
        if params.get("seed") is not None:
            body["seed"] = (int(params["seed"]) + index) % SEED_MODULUS
        if params.get("thinking_level"):
            body["reasoning"] = {"effort": params["thinking_level"]}
        if params.get("enable_web_search") and "enable_web_search" not in request.model.ignored:
            # OpenRouter's server tool, pinned to the model's own search: its deprecated `web`
            # plugin searched with Exa instead. Reached only on a route whose routes file says it
            # supports web search (`routing/capabilities.py`).
            body["tools"] = [{"type": "openrouter:web_search", "parameters": {"engine": "native"}}]
        return body

    def ignored(self, request: GenerationRequest) -> tuple[str, ...]:
        """What this protocol cannot express, as task warnings."""
        tolerance = request.params.get("safety_tolerance")
        if tolerance is not None and str(tolerance) != "4":
            return (f"safety_tolerance is not adjustable on route {self.name} and was ignored",)
        return ()

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        count = int(request.params.get("num_images", 1))
        limit = bool(request.params.get("limit_generations"))
        images, fitted = await fit(request.images, DATA_URIS, self.name, request.work)
        request = dataclasses.replace(request, images=images)
        answers, warnings = await fan_out(
            [self._call(request, i, limit) for i in range(count)], self.name
        )
        return GenerationResult(
            images=tuple(image for images, _, _ in answers for image in images),
            description="\n".join(text for _, text, _ in answers if text),
            input_tokens=_sum(usage.prompt_tokens for _, _, usage in answers),
            output_tokens=_sum(usage.completion_tokens for _, _, usage in answers),
            warnings=self.ignored(request) + fitted + warnings,
        )

    async def _call(
        self, request: GenerationRequest, index: int, limit: bool
    ) -> tuple[list[GeneratedImage], str, _Usage]:
        response = await self.http.request(
            "POST",
            f"{self.base_url}/chat/completions",
            headers=self.headers(),
            json_body=self.request_body(request, index),
        )
        if response.status_code != 200:
            raise self._error(response)
        answer = ChatAnswer.model_validate(self.http.json(response))
        if answer.error is not None:  # some relays answer 200 with an error object
            raise self._error(response)
        choice = answer.choice
        message = choice.message or _Message()
        uris = message.image_uris()
        if not uris:
            raise self._no_image(choice, message.text)
        if limit:
            uris = uris[-1:]
        images = [await self._image(uri, request.fetcher) for uri in uris]
        return images, DATA_URI_IN_TEXT.sub("", message.text).strip(), answer.usage or _Usage()

    async def _image(self, uri: str, fetcher: ResultFetcher | None) -> GeneratedImage:
        """A data URI decoded, or an http(s) link fetched through the hub's safe fetcher."""
        linked = uri.startswith(("https://", "http://")) and not DATA_URI.match(uri)
        if not linked or fetcher is None:
            return await decode_data_uri(uri, self.name)
        return await fetch_linked(uri, fetcher, self.name)

    def _no_image(self, choice: _Choice, text: str) -> TaskError:
        native = str(choice.native_finish_reason or "").upper()
        if choice.finish_reason == "content_filter" or native in BLOCKED:
            return ContentPolicyViolation(
                f"{self.name} withheld the image ({native or 'content_filter'})"
            )
        said = f"; it said: {text.strip()[:200]}" if text.strip() else ""
        return NoImageGenerated(f"{self.name} answered without an image{said}")

    def _error(self, response: Answer) -> TaskError:
        try:
            error = _ErrorBody.model_validate(self.http.json(response)).error or _Error()
        except TaskError:
            error = _Error()
        message = str(error.message or "")
        if response.status_code == 200:  # the error object of a 200 answer carries the status
            code = error.code
            status = code if isinstance(code, int) and code >= 400 else 502
            response = Answer(status, response.headers, response.content)
        if str(error.code) in ("moderation_blocked", "content_policy_violation"):
            return ContentPolicyViolation(
                f"{self.name}'s safety system rejected the request: {self.http.redact(message)}"
            )
        return self.http.error(response, message)

    async def check(self, upstream_model: str) -> str:
        """A live, free call: list the models with this route's key, and look for this one."""
        response = await self.http.request("GET", f"{self.base_url}/models", headers=self.headers())
        if response.status_code != 200:
            raise self._error(response)
        listed = {m.get("id") for m in self.http.json(response).get("data") or []}
        found = "listed" if upstream_model in listed else "NOT listed"
        return f"{upstream_model}: key accepted, model {found}"


class OpenRouterProvider(OpenAICompatibleProvider):
    """OpenRouter: Google's image models under the `google/` prefix."""

    kind: ClassVar[str] = "openrouter"
    model_prefix: ClassVar[str] = "google/"


def _sum(values: Any) -> int | None:
    known = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return sum(known) if known else None
