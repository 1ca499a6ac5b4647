"""The media contract over the memory, local-folder and S3 backends.

S3 is a real S3-compatible server (moto in server mode, its own process on 127.0.0.1) spoken
to over HTTP by the same boto3 client production uses: no mocked client.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from imagehub.api import create_app
from imagehub.media import FILE_ID, LocalMedia, MediaStore, MemoryMedia, Presigning, open_media
from imagehub.media.s3 import S3Media, parse_media_url
from imagehub.routing import Router
from imagehub.settings import Settings
from imagehub.tenancy.keys import make_key
from imagehub.testing import ScriptedProvider, tiny_png
from imagehub.wiring import build_hub
from tests.services import S3Server


def s3_settings(server: S3Server, **changes: object) -> Settings:
    return Settings(
        media_url=f"s3://{server.bucket}/hub/media",
        s3_endpoint_url=server.endpoint_url,
        s3_region=server.region,
        s3_access_key_id=server.access_key_id,
        s3_secret_access_key=SecretStr(server.secret_access_key),
        **changes,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["memory", "local", "s3"])
def media(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStore:
    if request.param == "memory":
        return MemoryMedia()
    if request.param == "local":
        return LocalMedia(tmp_path / "media")
    return open_media(s3_settings(request.getfixturevalue("s3_server")))


async def test_put_then_get_returns_the_same_bytes_under_a_capability_id(media: MediaStore):
    png = tiny_png()
    file_id = await media.put(png, "image/png")
    assert FILE_ID.match(file_id) and file_id.endswith(".png")
    assert await media.get(file_id) == png
    jpeg_id = await media.put(b"\xff\xd8 not really", "image/jpeg")
    assert jpeg_id.endswith(".jpg") and jpeg_id != file_id
    assert await media.get(jpeg_id) == b"\xff\xd8 not really"


async def test_unknown_and_malformed_ids_read_as_missing(media: MediaStore):
    assert await media.get("f_" + "a" * 22 + ".png") is None
    assert await media.get("../../etc/passwd") is None
    assert await media.get("f_" + "a" * 22 + ".png\n") is None


async def test_a_deleted_file_is_gone_and_deleting_twice_is_fine(media: MediaStore):
    file_id = await media.put(tiny_png(), "image/png")
    await media.delete(file_id)
    assert await media.get(file_id) is None
    await media.delete(file_id)
    await media.delete("not an id")


# -- expiry: the same stored file, seen by a store with a TTL it is older than


async def test_local_files_older_than_the_ttl_read_as_missing(tmp_path: Path):
    file_id = await LocalMedia(tmp_path).put(tiny_png(), "image/png")
    path = tmp_path / file_id[2] / file_id
    os.utime(path, (time.time() - 120, time.time() - 120))
    assert await LocalMedia(tmp_path, ttl_seconds=60).get(file_id) is None
    assert await LocalMedia(tmp_path, ttl_seconds=600).get(file_id) == tiny_png()


async def test_s3_objects_older_than_the_ttl_read_as_missing(s3_server: S3Server):
    fresh = open_media(s3_settings(s3_server, file_ttl_seconds=3600))
    file_id = await fresh.put(tiny_png(), "image/png")
    assert await fresh.get(file_id) == tiny_png()
    # a TTL below the object's age (every object is older than -1 s): expired
    expired = open_media(s3_settings(s3_server, file_ttl_seconds=-1))
    assert await expired.get(file_id) is None
    assert isinstance(expired, Presigning) and await expired.presigned_url(file_id) is None


# -- S3 specifics


async def test_s3_objects_live_under_the_prefix_with_their_content_type(s3_server: S3Server):
    media = open_media(s3_settings(s3_server))
    assert isinstance(media, S3Media)
    file_id = await media.put(tiny_png(), "image/png")
    head = media.client.head_object(Bucket=s3_server.bucket, Key=f"hub/media/{file_id}")
    assert head["ContentType"] == "image/png" and head["ContentLength"] == len(tiny_png())


async def test_a_presigned_url_downloads_the_file_without_credentials(s3_server: S3Server):
    media = open_media(s3_settings(s3_server, s3_presign_seconds=120))
    assert isinstance(media, Presigning)
    file_id = await media.put(tiny_png(), "image/png")  # type: ignore[attr-defined]
    url = await media.presigned_url(file_id)
    assert url is not None and url.startswith(s3_server.endpoint_url)
    assert "Expires=" in url or "X-Amz-Expires=120" in url
    async with httpx.AsyncClient() as direct:
        answer = await direct.get(url)
    assert answer.status_code == 200 and answer.content == tiny_png()
    assert await media.presigned_url("f_" + "b" * 22 + ".png") is None


def test_media_urls_name_a_bucket_and_an_optional_prefix():
    assert parse_media_url("s3://bucket") == ("bucket", "")
    assert parse_media_url("s3://bucket/a/b/") == ("bucket", "a/b")
    with pytest.raises(ValueError, match="s3://"):
        parse_media_url("https://bucket/a")


# -- the files route over S3, both ways of serving


@pytest.fixture(params=["hub", "redirect"])
async def s3_client(
    request: pytest.FixtureRequest, s3_server: S3Server, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = s3_settings(s3_server, data_dir=tmp_path, media_serving=request.param)
    hub = build_hub(settings, router=Router({}, fallback=ScriptedProvider()))
    async with LifespanManager(create_app(hub=hub)) as manager:
        await hub.store.add_key(make_key(key="ih_s3", admin=True)[1])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://hub.test",
            headers={"Authorization": "Bearer ih_s3"},
        ) as client:
            yield client, request.param


async def test_generated_images_are_served_from_s3(s3_client):
    client, serving = s3_client
    body = {"model": "nano-banana", "input": {"prompt": "p"}}
    task = (await client.post("/hub/v1/tasks", json=body, headers={"Prefer": "wait=20"})).json()
    assert task["status"] == "succeeded"
    url = task["output"]["images"][0]["url"]
    assert url.startswith("http://hub.test/hub/v1/files/f_"), "task objects keep stable URLs"
    answer = await client.get(url, headers={"Authorization": ""})
    if serving == "redirect":
        assert answer.status_code == 307
        async with httpx.AsyncClient() as direct:
            fetched = await direct.get(answer.headers["location"])
        assert fetched.status_code == 200 and fetched.content == tiny_png()
    else:
        assert answer.status_code == 200 and answer.content == tiny_png()
        assert answer.headers["content-type"] == "image/png"
    missing = await client.get("/hub/v1/files/f_" + "c" * 22 + ".png")
    assert missing.status_code == 404
