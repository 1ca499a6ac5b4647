"""File routes: serve stored images (the URL is the capability) and upload input images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from imagehub.api.deps import BaseUrlDep, CallerDep, HubDep
from imagehub.api.errors import error_responses
from imagehub.errors import InvalidInput, NotFound
from imagehub.media import FILE_ID, content_type_of
from imagehub.media.previews import CONTENT_TYPE as PREVIEW_TYPE
from imagehub.media.previews import PreviewWidth
from imagehub.render import file_url
from imagehub.schemas import ErrorBody, FileOut

endpoints = APIRouter(prefix="/hub/v1/files", tags=["files"])

#: a file never changes: its URL may be cached for good
FOREVER = "public, max-age=31536000, immutable"


@endpoints.post(
    "",
    status_code=201,
    response_model=FileOut,
    responses=error_responses(400, 401, 413, 422, 429, 503),
    openapi_extra={
        "requestBody": {
            "content": {
                "image/*": {"schema": {"type": "string", "format": "binary", "minLength": 1}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary", "minLength": 1}
                        },
                        "required": ["file"],
                    }
                },
            }
        }
    },
)
async def upload_file(
    request: Request, hub: HubDep, caller: CallerDep, base_url: BaseUrlDep
) -> FileOut:
    """Store an input image (raw body or multipart field `file`); its URL works in image_urls."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        data = await _multipart_file(request)
    else:
        data = await request.body()
    if not data:
        raise InvalidInput.one(["body"], "the body must be an image", "missing")
    file_id = await hub.upload(data)
    return FileOut(file_id=file_id, url=file_url(base_url, file_id))


async def _multipart_file(request: Request) -> bytes:
    """The `file` field of a multipart body: the one field it may have."""
    try:
        async with request.form(max_files=1, max_fields=0) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput.one(
                    ["body", "file"], "a file field named 'file' is required", "missing"
                )
            return await upload.read()
    except HTTPException as exc:  # a malformed body, or fields besides `file`
        if exc.status_code == 413:
            raise
        raise InvalidInput.one(["body"], str(exc.detail), "multipart") from None


@endpoints.get(
    "/{file_id}",
    responses={
        200: {"content": {"image/*": {}, PREVIEW_TYPE: {}}},
        307: {"description": "Redirect to the object store (`IMAGEHUB_MEDIA_SERVING=redirect`)"},
        404: {"model": ErrorBody},
        422: {"model": ErrorBody},
    },
    response_class=Response,
)
async def get_file(
    file_id: str,
    hub: HubDep,
    w: Annotated[
        PreviewWidth | None,
        Query(
            description="Answer a preview this many pixels wide instead of the original: a WebP "
            "in the image's proportions, never wider than the original, made once and cached."
        ),
    ] = None,
) -> Response:
    """A stored image, or its preview (`?w=`); no Authorization needed: the id is the capability."""
    if not FILE_ID.match(file_id):
        raise NotFound("no such file")
    if w is not None:
        preview = await hub.preview(file_id, w)
        return Response(preview, media_type=PREVIEW_TYPE, headers={"Cache-Control": FOREVER})
    location = await hub.file_location(file_id)
    if location is not None:
        # the signed URL expires: the redirect itself must not be cached for long
        return RedirectResponse(location, 307, headers={"Cache-Control": "private, max-age=60"})
    data = await hub.file(file_id)
    return Response(
        data,
        media_type=content_type_of(file_id),
        headers={
            "Cache-Control": FOREVER,
            "X-Content-Type-Options": "nosniff",  # an image, never a page
        },
    )
