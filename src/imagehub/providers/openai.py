"""OpenAI Images API (GPT Image 2): generations as JSON, edits as multipart.

The hub sends `quality` explicitly (its default `high` is not OpenAI's `auto`), resolves
`image_size` presets to `size: "WxH"`, sends every input image as a repeated `image[]` part, and
turns the mask into the PNG with an alpha channel OpenAI expects, sized like the first image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any, ClassVar

from pydantic import SecretStr, StrictInt, StrictStr

from imagehub.catalog import Catalog, ModelSpec
from imagehub.errors import (
    ContentPolicyViolation,
    InvalidInputImage,
    NoImageGenerated,
    TaskError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamUnavailable,
)
from imagehub.imaging import EXTENSIONS
from imagehub.providers.base import (
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ResultFetcher,
)
from imagehub.providers.http import Answer, HTTPProvider, UpstreamHTTP
from imagehub.providers.images import (
    MAX_RESULT_BYTES,
    alpha_mask,
    decode_b64_image,
    fetch_linked,
    lift_base64,
    lifted_payload,
)
from imagehub.providers.inputs import OPENAI_EDITS, fit
from imagehub.providers.lenient import Lenient, VendorModel, present
from imagehub.providers.sse import Event

#: error codes OpenAI uses when its safety system refuses a prompt, an input or an output
MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
#: one streamed event holds one base64 image: as large as an image fetched by URL, in base64
MAX_STREAM_EVENT_BYTES = MAX_RESULT_BYTES * 4 // 3 + 4096
#: the Images API's edits documentation: "a PNG file, less than 4MB"
MAX_MASK_BYTES = 4 * 1024 * 1024


# -- answers, as the Images API documents them


class _Datum(VendorModel):
    b64_json: Lenient[StrictStr] = None
    #: look-alikes may link the image instead (`response_format: url`)
    url: Lenient[StrictStr] = None


class _InputDetails(VendorModel):
    image_tokens: Lenient[StrictInt] = None


class _OutputDetails(VendorModel):
    text_tokens: Lenient[StrictInt] = None


class _Usage(VendorModel):
    input_tokens: Lenient[StrictInt] = None
    output_tokens: Lenient[StrictInt] = None
    #: the split pricing needs (image and text tokens are priced apart)
    input_tokens_details: _InputDetails = _InputDetails()
    output_tokens_details: _OutputDetails = _OutputDetails()


class ImagesAnswer(VendorModel):
    data: Lenient[list[Lenient[_Datum]]] = None
    usage: Lenient[_Usage] = None

    def images(self, linked: bool) -> list[_Datum]:
        """The data items that carry an image; URLs only when they can be `linked` (fetched)."""
        return [d for d in present(self.data) if d.b64_json or (linked and d.url)]


class _Error(VendorModel):
    code: Any = None
    message: Any = None


class _ErrorBody(VendorModel):
    error: Lenient[_Error] = None


class _StreamEvent(VendorModel):
    """One event of a streamed answer (`stream: true`): a partial image, the image, or an error."""

    type: Lenient[StrictStr] = None
    b64_json: Lenient[StrictStr] = None
    partial_image_index: Lenient[StrictInt] = None
    usage: Lenient[_Usage] = None
    error: Lenient[_Error] = None


def size_value(catalog: Catalog, image_size: object) -> str:
    """`image_size` as OpenAI's `size`: "WxH", or "auto" to let the model choose."""
    if isinstance(image_size, dict):
        return f"{image_size['width']}x{image_size['height']}"
    if image_size in (None, "auto"):
        return "auto"
    width, height = catalog.presets[str(image_size)]
    return f"{width}x{height}"


def generation_body(request: GenerationRequest, catalog: Catalog) -> dict[str, Any]:
    params = request.params
    return {
        "model": request.upstream_model,
        "prompt": params["prompt"],
        "n": int(params.get("num_images", 1)),
        "size": size_value(catalog, params.get("image_size")),
        "quality": params.get("quality", "high"),
        "output_format": params.get("output_format", "png"),
    }


async def edit_form(
    request: GenerationRequest, catalog: Catalog
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]:
    """The multipart fields and files of an edit (its images already fit OpenAI's limits)."""
    fields = {k: str(v) for k, v in generation_body(request, catalog).items()}
    files = [
        ("image[]", (f"image-{i}.{EXTENSIONS[image.content_type]}", image.data, image.content_type))
        for i, image in enumerate(request.images)
    ]
    if request.mask is not None and request.images:
        first = request.images[0]
        mask = await alpha_mask(request.mask, (first.width, first.height))
        if len(mask) >= MAX_MASK_BYTES:
            raise InvalidInputImage(
                f"mask_url becomes a {len(mask):,}-byte PNG at the first image's size; "
                f"OpenAI takes masks under {MAX_MASK_BYTES:,} bytes"
            )
        files.append(("mask", ("mask.png", mask, "image/png")))
    return fields, files


class OpenAIProvider(HTTPProvider):
    """`POST {base}/images/generations` and `/images/edits`, `Authorization: Bearer`."""

    kind: ClassVar[str] = "openai"

    def __init__(
        self,
        *,
        name: str = "openai",
        api_key: SecretStr,
        base_url: str,
        catalog: Catalog,
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
        self.catalog = catalog

    @staticmethod
    def default_upstream(model: ModelSpec) -> str | None:
        return model.upstream_model if model.family.startswith("gpt-image") else None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if request.partial_images:
            return await self._streamed(request)
        fitted: tuple[str, ...] = ()
        if request.model.is_edit:
            images, fitted = await fit(request.images, OPENAI_EDITS, self.name, request.work)
            request = dataclasses.replace(request, images=images)
            fields, files = await edit_form(request, self.catalog)
            response = await self.http.request(
                "POST",
                f"{self.base_url}/images/edits",
                headers=self._headers(),
                data=fields,
                files=files,
            )
        else:
            response = await self.http.request(
                "POST",
                f"{self.base_url}/images/generations",
                headers=self._headers(),
                json_body=generation_body(request, self.catalog),
            )
        if response.status_code != 200:
            raise self._error(response)
        wanted = int(request.params.get("num_images", 1))
        # the images' base64 is decoded from the bytes read, never parsed into a str first
        content, lifted = lift_base64(response.content, b"b64_json")
        body = self.http.json(dataclasses.replace(response, content=content))
        result = await self._result(body, wanted, request.fetcher, lifted)
        return dataclasses.replace(result, warnings=fitted + result.warnings) if fitted else result

    async def _streamed(self, request: GenerationRequest) -> GenerationResult:
        """The call with `stream: true` and `partial_images`: each partial image goes to
        `request.on_partial` as it arrives, the `completed` events make the result."""
        fitted: tuple[str, ...] = ()
        n = request.partial_images
        call: dict[str, Any]
        if request.model.is_edit:
            images, fitted = await fit(request.images, OPENAI_EDITS, self.name, request.work)
            request = dataclasses.replace(request, images=images)
            fields, files = await edit_form(request, self.catalog)
            fields.update({"stream": "true", "partial_images": str(n)})
            call, kind = {"data": fields, "files": files}, "image_edit"
        else:
            body = {**generation_body(request, self.catalog), "stream": True, "partial_images": n}
            call, kind = {"json_body": body}, "image_generation"
        path = "edits" if request.model.is_edit else "generations"
        events = self.http.events(
            "POST",
            f"{self.base_url}/images/{path}",
            refused=self._refused_stream,
            max_event_bytes=MAX_STREAM_EVENT_BYTES,
            headers=self._headers(),
            **call,
        )
        images_out: list[GeneratedImage] = []
        usage = _Usage()
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if event.data.strip() == "[DONE]":
                    break
                found = self._stream_event(event)
                if found.type == f"{kind}.partial_image":
                    partial = await decode_b64_image(found.b64_json or "", self.name)
                    if request.on_partial is not None:
                        index = found.partial_image_index
                        await request.on_partial(index if index is not None else -1, partial)
                elif found.type == f"{kind}.completed":
                    images_out.append(await decode_b64_image(found.b64_json or "", self.name))
                    usage = found.usage or usage
        if not images_out:
            raise UpstreamUnavailable(
                f"{self.name}'s event stream ended before the image was completed"
            )
        wanted = int(request.params.get("num_images", 1))
        warnings = fitted
        if len(images_out) < wanted:
            got = len(images_out)
            warnings += (f"{self.name} returned {got} of the {wanted} images requested",)
        return GenerationResult(
            images=tuple(images_out),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            input_image_tokens=usage.input_tokens_details.image_tokens,
            output_text_tokens=usage.output_tokens_details.text_tokens,
            warnings=warnings,
        )

    def _stream_event(self, event: Event) -> _StreamEvent:
        """An event's JSON; an `error` event (or one carrying an error) raised as its task error."""
        try:
            found = _StreamEvent.model_validate(json.loads(event.data))
        except ValueError:
            raise UpstreamUnavailable(f"{self.name} streamed an event that is not JSON") from None
        if found.error is None and event.name != "error" and found.type != "error":
            return found
        error = found.error or _Error()
        code, message = str(error.code or ""), self.http.redact(str(error.message or ""))
        if code in MODERATION_CODES:
            raise ContentPolicyViolation(
                f"{self.name}'s safety system rejected the request: {message}"
            )
        if code in ("server_error", "rate_limit_exceeded") or not code:  # worth another attempt
            raise UpstreamUnavailable(f"{self.name} failed while streaming: {message}")
        raise UpstreamError(f"{self.name} stopped streaming: {code} {message}")

    def _refused_stream(self, response: Answer) -> TaskError:
        if response.status_code == 200:  # a look-alike that ignores `stream`
            return UpstreamConfigError(
                f"{self.name} answered without an event stream although asked to stream; set "
                "supports.partial_images = false on this route in the routes file"
            )
        return self._error(response)

    async def _result(
        self,
        body: dict[str, Any],
        wanted: int,
        fetcher: ResultFetcher | None,
        lifted: list[memoryview] | None = None,
    ) -> GenerationResult:
        answer = ImagesAnswer.model_validate(body)
        data = answer.images(linked=fetcher is not None)
        if not data:
            raise NoImageGenerated(f"{self.name} answered without an image")
        images = tuple([await self._image(d, fetcher, lifted or []) for d in data])
        usage = answer.usage or _Usage()
        warnings: tuple[str, ...] = ()
        if len(images) < wanted:
            warnings = (f"{self.name} returned {len(images)} of the {wanted} images requested",)
        return GenerationResult(
            images=images,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            input_image_tokens=usage.input_tokens_details.image_tokens,
            output_text_tokens=usage.output_tokens_details.text_tokens,
            warnings=warnings,
        )

    async def _image(
        self, datum: _Datum, fetcher: ResultFetcher | None, lifted: list[memoryview]
    ) -> GeneratedImage:
        if datum.b64_json or fetcher is None or datum.url is None:
            payload = lifted_payload(datum.b64_json or "", lifted)
            return await decode_b64_image(payload, self.name)
        return await fetch_linked(datum.url, fetcher, self.name)

    def _error(self, response: Answer) -> TaskError:
        error = _error_object(self.http, response)
        code = str(error.code or "")
        message = str(error.message or "")
        if code in MODERATION_CODES:
            return ContentPolicyViolation(
                f"{self.name}'s safety system rejected the request: {self.http.redact(message)}"
            )
        if code == "insufficient_quota":  # a 429 that waiting does not cure
            return UpstreamConfigError(
                f"{self.name} refused the request: the account's quota is used up "
                f"({self.http.redact(message)})"
            )
        return self.http.error(response, " ".join(filter(None, (code, message))))

    async def check(self, upstream_model: str) -> str:
        """A live, free call: read the model's entry with this route's key."""
        response = await self.http.request(
            "GET", f"{self.base_url}/models/{upstream_model}", headers=self._headers()
        )
        if response.status_code != 200:
            raise self._error(response)
        return f"{upstream_model}: ok"


def _error_object(http: UpstreamHTTP, response: Answer) -> _Error:
    try:
        return _ErrorBody.model_validate(http.json(response)).error or _Error()
    except TaskError:
        return _Error()
