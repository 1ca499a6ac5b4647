"""Turning an image reference (`image_urls`, `mask_url`) into bytes.

Hub file URLs are read from the media store directly, data URIs are decoded, anything else is
downloaded through the safe client (`outbound.client`): public addresses only, checked at connect
time, a byte cap, a total deadline, and the first bytes sniffed for an image signature.
"""

from __future__ import annotations

import re
from typing import Any

from imagehub.catalog import ModelSpec
from imagehub.errors import (
    ImageDownloadError,
    InvalidInput,
    InvalidInputImage,
    UpstreamError,
    UpstreamUnavailable,
)
from imagehub.imaging import DATA_URI, data_uri_payload, unb64
from imagehub.media import MediaStore
from imagehub.outbound.address import AddressPolicy
from imagehub.outbound.client import (
    BadStatus,
    FetchError,
    Refused,
    SafeClient,
    TooLarge,
    check_target,
    redact,
)

_HUB_FILE = re.compile(r"^https?://[^/]+(?:/[^?#]*)?/hub/v1/files/(f_[A-Za-z0-9]{22}\.\w+)\Z")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def sniff_image(head: bytes) -> None:
    """Refuse bytes that do not start like a PNG, JPEG, WebP or GIF, whatever the headers say."""
    if not head.startswith(_MAGIC) and not (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        raise NotAnImage("it is not a PNG, JPEG, WebP or GIF image")


def _missing(exc: FetchError) -> bool:
    """The download of a hub file URL failed as a missing file would: refused (this hub's own,
    private address) or answered 404 (a hub at a public address)."""
    return isinstance(exc, Refused) or (isinstance(exc, BadStatus) and exc.status == 404)


def check_refs(spec: ModelSpec, params: dict[str, Any], policy: AddressPolicy) -> None:
    """Refuse at submit an image reference that can never be fetched, as `webhook_url` is:
    every URL field checked by `check_target`; hub file URLs and data URIs pass."""
    details = []
    for param in spec.params:
        value = params.get(param.name)
        if param.type not in ("image", "image_list") or value is None:
            continue
        many = isinstance(value, list)
        for i, ref in enumerate(value if many else [value]):
            if _HUB_FILE.match(ref) or DATA_URI.match(ref):
                continue
            try:
                check_target(ref, policy)
            except Refused as exc:
                loc: list[str | int] = ["input", param.name, *([i] if many else [])]
                details.append({"loc": loc, "msg": str(exc), "type": "url"})
    if details:
        raise InvalidInput(details)


class NotAnImage(FetchError):
    """The body is not an image of an allowed format."""


class Fetcher:
    """Fetches input images through the safe client (one pooled client for all downloads)."""

    def __init__(
        self,
        media: MediaStore,
        *,
        max_bytes: int,
        timeout: float,
        client: SafeClient | None = None,
    ) -> None:
        self.media = media
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.client = client or SafeClient(AddressPolicy())

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(self, ref: str, label: str) -> bytes:
        """The bytes of one image reference; `label` names it in error messages."""
        own = _HUB_FILE.match(ref)
        if own:
            data = await self.media.get(own.group(1))
            if data is not None:
                return data
        if DATA_URI.match(ref):
            return self._decode_data_uri(ref, label)
        try:
            return await self.client.get(
                ref, max_bytes=self.max_bytes, deadline=self.timeout, sniff=sniff_image
            )
        except (TooLarge, NotAnImage) as exc:
            raise InvalidInputImage(f"{label} ({redact(ref)}): {exc}") from None
        except FetchError as exc:
            if own and _missing(exc):  # a hub file URL this hub has not: not a network matter
                raise ImageDownloadError(
                    f"{label}: no such file {own.group(1)} on this hub ({redact(ref)}); "
                    "upload the image again with POST /hub/v1/files"
                ) from None
            raise ImageDownloadError(
                f"{label} could not be downloaded from {redact(ref)}: {exc}"
            ) from None

    async def fetch_result(self, url: str, label: str, *, max_bytes: int) -> bytes:
        """An image an upstream linked to rather than sent, fetched as a client's URL is (public
        addresses only, a deadline, sniffed) and capped at `max_bytes`; `label` names the route.

        Failures are the upstream's: a link that breaks is retryable, a refused one is not.
        """
        try:
            return await self.client.get(
                url, max_bytes=max_bytes, deadline=self.timeout, sniff=sniff_image
            )
        except (TooLarge, Refused) as exc:
            raise UpstreamError(f"{label} linked a result image ({redact(url)}): {exc}") from None
        except FetchError as exc:
            raise UpstreamUnavailable(
                f"{label}'s result image could not be downloaded from {redact(url)}: {exc}"
            ) from None

    def _decode_data_uri(self, ref: str, label: str) -> bytes:
        payload = data_uri_payload(ref) or ""
        if len(payload) * 3 // 4 > self.max_bytes:
            raise InvalidInputImage(f"{label} is larger than {self.max_bytes:,} bytes")
        try:
            return unb64(payload)
        except ValueError:
            raise InvalidInputImage(f"{label} is a data URI with invalid base64") from None
