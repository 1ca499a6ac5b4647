"""Media in S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Ceph, ...).

boto3 runs its blocking calls on worker threads: it speaks every S3 dialect, signs URLs, and
retries the store's own transient errors (never an upstream model call, so no double charge).
Objects live at `<prefix>/<file id>` with their content type; with a TTL, an object older than
it reads as missing (a bucket lifecycle rule should delete it too).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from imagehub.media import EXTENSIONS, FILE_ID
from imagehub.tasks import new_id

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from imagehub.settings import Settings

_MISSING = ("NoSuchKey", "404", "NotFound")


def parse_media_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"a media URL must look like s3://bucket/prefix, not {url!r}")
    return parts.netloc, parts.path.strip("/")


class S3Media:
    """Files as objects in one bucket, under one prefix."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        ttl_seconds: float | None = None,
        presign_seconds: int = 3600,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.ttl_seconds = ttl_seconds
        self.presign_seconds = presign_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Media:
        bucket, prefix = parse_media_url(settings.media_url or "")
        style = settings.s3_addressing_style
        if style == "auto" and settings.s3_endpoint_url:
            style = "path"  # what MinIO and most self-hosted stores expect
        secret = settings.s3_secret_access_key
        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                s3={"addressing_style": style},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=30,
                max_pool_connections=32,
            ),
        )
        return cls(
            client,
            bucket,
            prefix,
            ttl_seconds=settings.file_ttl_seconds,
            presign_seconds=settings.s3_presign_seconds,
        )

    def _key(self, file_id: str) -> str:
        return f"{self.prefix}/{file_id}" if self.prefix else file_id

    async def put(self, data: bytes, content_type: str) -> str:
        file_id = f"{new_id('f_')}.{EXTENSIONS[content_type]}"
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(file_id),
            Body=data,
            ContentType=content_type,
        )
        return file_id

    async def get(self, file_id: str) -> bytes | None:
        if not FILE_ID.match(file_id):
            return None
        return await asyncio.to_thread(self._read, self._key(file_id))

    def _read(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        with answer["Body"] as body:
            if self._expired(answer["LastModified"]):
                return None
            return body.read()

    async def delete(self, file_id: str) -> None:
        if FILE_ID.match(file_id):
            await asyncio.to_thread(
                self.client.delete_object, Bucket=self.bucket, Key=self._key(file_id)
            )

    async def aclose(self) -> None:
        await asyncio.to_thread(self.client.close)  # its pool of connections

    async def presigned_url(self, file_id: str) -> str | None:
        if not FILE_ID.match(file_id):
            return None
        return await asyncio.to_thread(self._presign, self._key(file_id))

    def _presign(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        if self._expired(head["LastModified"]):
            return None
        seconds = self.presign_seconds
        if self.ttl_seconds is not None:
            age = (datetime.now(UTC) - head["LastModified"]).total_seconds()
            seconds = max(1, min(seconds, int(self.ttl_seconds - age)))
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
        )

    def _expired(self, last_modified: datetime) -> bool:
        if self.ttl_seconds is None:
            return False
        return (datetime.now(UTC) - last_modified).total_seconds() > self.ttl_seconds


def _code(exc: ClientError) -> str:
    error: Any = exc.response.get("Error", {})
    return str(error.get("Code", ""))
