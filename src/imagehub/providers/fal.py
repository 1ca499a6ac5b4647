"""The fal queue as an upstream: submit, poll the status, fetch the result, cancel when abandoned.

The hub's public parameters follow fal's schemas, so the validated input goes through nearly as
is. The differences: input images and the mask go as `data:` URIs of the checked images (fal
cannot reach the hub's own files), `sync_mode` is always on so results come back inline (a
result that still comes as a URL on fal's media host is downloaded, capped in bytes),
GPT `image_size` presets are sent as the hub's own sizes (fal's `square`, `portrait_16_9` and
`landscape_16_9` differ), and parameters the hub ignores are left out.

Status, result and cancel URLs are taken from the submit answer when they point at the route's
own host; otherwise they are built without the endpoint's sub-path, as fal documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import SecretStr, StrictStr, TypeAdapter

from imagehub.catalog import Catalog, ModelSpec
from imagehub.errors import (
    ContentPolicyViolation,
    NoImageGenerated,
    TaskError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from imagehub.imaging import DATA_URI, data_uri
from imagehub.providers.base import GeneratedImage, GenerationRequest, GenerationResult
from imagehub.providers.http import Answer, HTTPProvider
from imagehub.providers.images import MAX_RESULT_BYTES, check_image, decode_data_uri
from imagehub.providers.inputs import DATA_URIS, fit
from imagehub.providers.lenient import Lenient, VendorModel, present

DONE = frozenset({"COMPLETED", "FAILED", "ERROR", "CANCELED", "CANCELLED"})
#: fal error `type`s, beyond HTTP statuses, that say what went wrong
_TIMEOUT_TYPES = frozenset({"generation_timeout", "request_timeout", "startup_timeout"})
_UNAVAILABLE_TYPES = frozenset(
    {"internal_server_error", "downstream_service_error", "downstream_service_unavailable"}
)
_CANCEL_SECONDS = 5.0
_NO_REQUEST = "00000000-0000-0000-0000-000000000000"


# -- answers, as fal documents them


class _File(VendorModel):
    url: Any = None


class _Output(VendorModel):
    """A finished request's result: the model's output schema (images, maybe a description)."""

    images: Lenient[list[Lenient[_File]]] = None
    description: Lenient[StrictStr] = None

    def urls(self) -> list[str]:
        return [str(image.url) for image in present(self.images) if image.url]


class _ErrorItem(VendorModel):
    type: Any = ""
    msg: Any = ""


class _ErrorBody(VendorModel):
    """fal's error: `detail` is a message or a list of typed items; `error_type` may name it."""

    detail: Any = None
    error_type: Any = None

    def items(self) -> list[_ErrorItem]:
        return present(_ERROR_ITEMS.validate_python(self.detail))

    def kinds(self) -> set[str]:
        return {str(d.type) for d in self.items()} | {str(self.error_type or "")}

    def message(self) -> str:
        return "; ".join(str(d.msg) for d in self.items()) or str(self.detail or "")


#: `detail` when it is a list of items
_ERROR_ITEMS: TypeAdapter[list[_ErrorItem | None] | None] = TypeAdapter(
    Lenient[list[Lenient[_ErrorItem]]]
)


def request_body(request: GenerationRequest, catalog: Catalog) -> dict[str, Any]:
    """fal's input: the hub's validated parameters, adjusted as the module docstring says."""
    body = {k: v for k, v in request.params.items() if k not in request.model.ignored}
    body["sync_mode"] = True
    if request.images:
        body["image_urls"] = [data_uri(image.content_type, image.data) for image in request.images]
    if request.mask is not None:
        body["mask_url"] = data_uri(request.mask.content_type, request.mask.data)
    size = body.get("image_size")
    if isinstance(size, str) and size in catalog.presets:
        width, height = catalog.presets[size]
        body["image_size"] = {"width": width, "height": height}
    return body


@dataclass(frozen=True, slots=True)
class _Job:
    status_url: str
    response_url: str
    cancel_url: str


class FalProvider(HTTPProvider):
    """`POST {base}/{endpoint}` with `Authorization: Key`, then the request's queue URLs."""

    kind: ClassVar[str] = "fal"
    #: the most bytes a result image fetched from fal's media host may have
    max_result_bytes: int = MAX_RESULT_BYTES

    def __init__(
        self,
        *,
        name: str = "fal",
        api_key: SecretStr,
        base_url: str,
        catalog: Catalog,
        timeout: float,
        max_connections: int | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        super().__init__(
            name=name,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_connections=max_connections,
        )
        self.catalog = catalog
        self.poll_seconds = poll_seconds

    @staticmethod
    def default_upstream(model: ModelSpec) -> str:
        owner = "openai" if model.family.startswith("gpt-image") else "fal-ai"
        return f"{owner}/{model.id}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.secret}"}

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        images, fitted = await fit(request.images, DATA_URIS, self.name, request.work)
        job = await self._submit(dataclasses.replace(request, images=images))
        try:
            await self._wait(job)
        except BaseException:
            # abandoned (timeout, task canceled) or status unreadable: stop fal's work
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._cancel(job), _CANCEL_SECONDS)
            raise
        body = await self._result(job)
        result = await self._output(body, int(request.params.get("num_images", 1)))
        return dataclasses.replace(result, warnings=fitted + result.warnings)

    async def _submit(self, request: GenerationRequest) -> _Job:
        endpoint = request.upstream_model.strip("/")
        response = await self.http.request(
            "POST",
            f"{self.base_url}/{endpoint}",
            headers=self._headers(),
            json_body=request_body(request, self.catalog),
        )
        if response.status_code not in (200, 201, 202):
            raise self._error(response)
        body = self.http.json(response)
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise UpstreamUnavailable(f"{self.name} accepted the request without a request id")
        app = "/".join(endpoint.split("/")[:2])  # the sub-path is used on submit only
        built = f"{self.base_url}/{app}/requests/{request_id}"
        return _Job(
            status_url=self._own(body.get("status_url"), f"{built}/status"),
            response_url=self._own(body.get("response_url"), built),
            cancel_url=self._own(body.get("cancel_url"), f"{built}/cancel"),
        )

    def _own(self, url: object, fallback: str) -> str:
        """A URL from fal's answer, if it points at this route's host (the key goes with it)."""
        if isinstance(url, str) and urlsplit(url)[:2] == urlsplit(self.base_url)[:2]:
            return url
        return fallback

    async def _wait(self, job: _Job) -> None:
        delay = self.poll_seconds / 4
        while True:
            response = await self.http.request("GET", job.status_url, headers=self._headers())
            if response.status_code not in (200, 202):
                raise self._error(response)
            if str(self.http.json(response).get("status", "")).upper() in DONE:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll_seconds)

    async def _result(self, job: _Job) -> dict[str, Any]:
        response = await self.http.request("GET", job.response_url, headers=self._headers())
        if response.status_code != 200:
            raise self._error(response)
        return self.http.json(response)

    async def _cancel(self, job: _Job) -> None:
        await self.http.request("PUT", job.cancel_url, headers=self._headers())

    async def _output(self, body: dict[str, Any], wanted: int) -> GenerationResult:
        output = _Output.model_validate(body)
        urls = output.urls()
        if not urls:
            raise NoImageGenerated(f"{self.name} answered without an image")
        images = tuple([await self._image(url) for url in urls])
        warnings: tuple[str, ...] = ()
        if len(images) < wanted:
            warnings = (f"{self.name} returned {len(images)} of the {wanted} images requested",)
        return GenerationResult(
            images=images,
            description=output.description or "",
            warnings=warnings,
        )

    async def _image(self, url: str) -> GeneratedImage:
        if DATA_URI.match(url):
            return await decode_data_uri(url, self.name)
        # a stored result on fal's media host: fetched without the key
        response = await self.http.request("GET", url, max_bytes=self.max_result_bytes)
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"{self.name}'s result image could not be downloaded (HTTP {response.status_code})"
            )
        data = response.content
        ctype = await asyncio.to_thread(check_image, data, self.name)
        return GeneratedImage(data=data, content_type=ctype)

    async def check(self, upstream_model: str) -> str:
        """A live, free call: ask for the status of a request that does not exist."""
        app = "/".join(upstream_model.split("/")[:2])
        response = await self.http.request(
            "GET", f"{self.base_url}/{app}/requests/{_NO_REQUEST}/status", headers=self._headers()
        )
        if response.status_code in (401, 403) or response.status_code >= 500:
            raise self._error(response)
        return f"{upstream_model}: key accepted (HTTP {response.status_code} for a dummy request)"

    def _error(self, response: Answer) -> TaskError:
        try:
            body = _ErrorBody.model_validate(self.http.json(response))
        except TaskError:
            body = _ErrorBody()
        kinds, message = body.kinds(), body.message()
        said = self.http.redact(message)
        if "content_policy_violation" in kinds:
            return ContentPolicyViolation(f"{self.name}'s content checker flagged it: {said}")
        if kinds & _TIMEOUT_TYPES:
            return UpstreamTimeout(f"{self.name} timed out: {said}")
        if kinds & _UNAVAILABLE_TYPES:
            return UpstreamUnavailable(f"{self.name} failed: {said}")
        final = response.headers.get("x-fal-retryable", "").lower() == "false"
        if final and response.status_code >= 500:
            return UpstreamError(f"{self.name} failed and says a retry will not help: {said}")
        return self.http.error(response, message)
