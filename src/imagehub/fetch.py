"""Turning an image reference (`image_urls`, `mask_url`) into bytes.

Hub file URLs are read from the media store directly, data URIs are decoded, anything else is
downloaded with a byte cap and a total deadline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re

import httpx

from imagehub.errors import ImageDownloadError, InvalidInputImage
from imagehub.media import MediaStore

_HUB_FILE = re.compile(r"^https?://[^/]+(?:/[^?#]*)?/hub/v1/files/(f_[A-Za-z0-9]{22}\.\w+)$")
_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


class Fetcher:
    """Fetches input images; one pooled HTTP client for all downloads."""

    def __init__(self, media: MediaStore, *, max_bytes: int, timeout: float) -> None:
        self.media = media
        self.max_bytes = max_bytes
        self.timeout = timeout
        # environment proxies are never used: the hub decides where it connects
        self._client = httpx.AsyncClient(
            trust_env=False, follow_redirects=True, max_redirects=3, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, ref: str, label: str) -> bytes:
        """The bytes of one image reference; `label` names it in error messages."""
        own = _HUB_FILE.match(ref)
        if own:
            data = await self.media.get(own.group(1))
            if data is not None:
                return data
        if _DATA_URI.match(ref):
            return self._decode_data_uri(ref, label)
        try:
            return await asyncio.wait_for(self._download(ref, label), self.timeout)
        except TimeoutError:
            raise ImageDownloadError(
                f"{label} could not be downloaded within {self.timeout:g} s: {ref[:200]}"
            ) from None

    def _decode_data_uri(self, ref: str, label: str) -> bytes:
        payload = ref.split(",", 1)[1]
        if len(payload) * 3 // 4 > self.max_bytes:
            raise InvalidInputImage(f"{label} is larger than {self.max_bytes:,} bytes")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInputImage(f"{label} is a data URI with invalid base64") from None

    async def _download(self, url: str, label: str) -> bytes:
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ImageDownloadError(
                        f"{label} could not be downloaded: {url[:200]} answered "
                        f"HTTP {response.status_code}"
                    )
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise InvalidInputImage(f"{label} is larger than {self.max_bytes:,} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise ImageDownloadError(
                f"{label} could not be downloaded from {url[:200]}: {type(exc).__name__}"
            ) from None
