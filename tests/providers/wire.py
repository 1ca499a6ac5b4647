"""Answers in each upstream's documented wire format, for the fake upstream to send."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from imagehub import imaging
from imagehub.testing import tiny_png
from tests.providers.fake_upstream import Action, Reply, Seen, Stream

#: what the upstreams document they read as input images (Gemini also reads HEIC/HEIF)
INPUT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
GEMINI_TYPES = INPUT_TYPES | {"image/heic", "image/heif"}
#: Gemini API: a request is at most 20 MB; Vertex AI: inline image data at most 7 MB each
GEMINI_MAX_REQUEST = 20 * 1024 * 1024
VERTEX_MAX_INLINE = 7 * 1024 * 1024
#: OpenAI edits: at most 16 images, each under 50 MB
OPENAI_MAX_IMAGES = 16
OPENAI_MAX_IMAGE = 50 * 1024 * 1024

RED = tiny_png(8, 8, (255, 0, 0))
GREEN = tiny_png(8, 8, (0, 255, 0))
BLUE = tiny_png(8, 8, (0, 0, 255))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_uri(data: bytes, ctype: str = "image/png") -> str:
    return f"data:{ctype};base64,{b64(data)}"


def decoded(data: bytes) -> bytes:
    """The bytes the hub sends upstream for an input image (its own, for a PNG like the test's)."""
    return imaging.read_input(data, max_bytes=10**8, max_pixels=10**8).data


# -- Gemini generateContent


def g_image(data: bytes = RED, *, thought: bool = False, mime: str = "image/png") -> dict[str, Any]:
    part: dict[str, Any] = {"inlineData": {"mimeType": mime, "data": b64(data)}}
    if thought:
        part["thought"] = True
    else:
        part["thoughtSignature"] = "c2lnbmF0dXJl"
    return part


def g_text(text: str, *, thought: bool = False) -> dict[str, Any]:
    return {"text": text, "thought": True} if thought else {"text": text}


def g_answer(
    *parts: dict[str, Any], finish: str = "STOP", usage: tuple[int, int, int] = (100, 1290, 0)
) -> dict[str, Any]:
    prompt, candidates, thoughts = usage
    return {
        "candidates": [
            {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt + candidates + thoughts,
        },
        "modelVersion": "gemini-test",
    }


def g_error(code: int, status: str, message: str, retry_delay: str | None = None) -> Reply:
    details: list[dict[str, Any]] = []
    if retry_delay is not None:
        kind = "type.googleapis.com/google.rpc.RetryInfo"
        details.append({"@type": kind, "retryDelay": retry_delay})
    error = {"code": code, "message": message, "status": status, "details": details}
    return Reply(code, {"error": error})


def gemini_refusal(seen: Seen) -> Reply | None:
    """The 400 Gemini answers for inline data it documents it refuses, else None."""
    if "/projects/" not in seen.path and len(seen.body) > GEMINI_MAX_REQUEST:
        return g_error(400, "INVALID_ARGUMENT", "Request payload size exceeds the limit")
    for content in seen.json()["contents"]:
        for part in content["parts"]:
            blob = part.get("inlineData")
            if blob is None:
                continue
            if blob["mimeType"] not in GEMINI_TYPES:
                return g_error(
                    400, "INVALID_ARGUMENT", f"Unsupported MIME type: {blob['mimeType']}"
                )
            too_big = len(base64.b64decode(blob["data"])) > VERTEX_MAX_INLINE
            if "/projects/" in seen.path and too_big:
                return g_error(400, "INVALID_ARGUMENT", "Inline data exceeds the 7 MB limit")
    return None


def gemini_ok(seen: Seen) -> Action:
    refused = gemini_refusal(seen)
    return refused or Reply(200, g_answer(g_text("Here it is."), g_image(RED)))


# -- OpenAI Images API


def o_answer(images: list[bytes], usage: tuple[int, int] = (50, 4160)) -> dict[str, Any]:
    return {
        "created": 1776800000,
        "background": "opaque",
        "output_format": "png",
        "quality": "high",
        "size": "1024x1024",
        "data": [{"b64_json": b64(data)} for data in images],
        "usage": {
            "input_tokens": usage[0],
            "input_tokens_details": {"text_tokens": usage[0], "image_tokens": 0},
            "output_tokens": usage[1],
            "output_tokens_details": {"text_tokens": 0, "image_tokens": usage[1]},
            "total_tokens": sum(usage),
        },
    }


def o_error(status: int, code: str, message: str, kind: str = "invalid_request_error") -> Reply:
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


def openai_refusal(seen: Seen) -> Reply | None:
    """The 400 OpenAI answers for edit images it documents it refuses, else None."""
    images = [part for part in seen.form() if part[0] == "image[]"]
    if len(images) > OPENAI_MAX_IMAGES:
        return o_error(400, "invalid_request_error", "Too many images; at most 16")
    for _, _, ctype, data in images:
        if ctype not in INPUT_TYPES:
            return o_error(400, "invalid_image_format", f"unsupported mimetype ('{ctype}')")
        if len(data) >= OPENAI_MAX_IMAGE:
            return o_error(400, "image_too_large", "Each image must be smaller than 50MB")
    return None


def openai_ok(seen: Seen) -> Action:
    if seen.path.endswith("/edits"):
        refused = openai_refusal(seen)
        if refused is not None:
            return refused
        n = int(next(p[3] for p in seen.form() if p[0] == "n"))
    else:
        n = int(seen.json().get("n", 1))
    return Reply(200, o_answer([RED] * n))


# -- OpenAI Images API, streamed (`stream: true`, `partial_images`)


@functools.cache
def noise_png(width: int, height: int, seed: int) -> bytes:
    """A PNG of random pixels: real dimensions and a real size (some 3 MB at 1024x1024)."""
    pixels = random.Random(seed).randbytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


def sse(kind: str, body: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(body)}\n\n".encode()


def openai_fields(seen: Seen) -> dict[str, Any]:
    """The request's fields: the JSON body of a generation, the text fields of an edit."""
    if seen.path.endswith("/edits"):
        return {name: value.decode() for name, filename, _, value in seen.form() if not filename}
    body: dict[str, Any] = seen.json()
    return body


def stream_refusal(fields: dict[str, Any], edit: bool) -> Reply | None:
    """The 400 for streaming options OpenAI documents it refuses: `stream` a boolean (in a
    form, "true" or "false"), `partial_images` an integer 0 to 3 sent with `stream: true`,
    streaming with GPT image models only."""
    stream = fields.get("stream", False)
    if edit and "stream" in fields:
        if stream not in ("true", "false"):
            return o_error(400, "invalid_type", f"stream: expected a boolean, got {stream!r}")
        stream = stream == "true"
    if not isinstance(stream, bool):
        return o_error(400, "invalid_type", f"stream: expected a boolean, got {stream!r}")
    if "partial_images" in fields:
        count = fields["partial_images"]
        if edit and isinstance(count, str) and count.isdigit():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 3:
            return o_error(400, "invalid_value", "partial_images must be between 0 and 3")
        if not stream:
            return o_error(400, "invalid_value", "partial_images is only supported with stream")
    if stream and not str(fields.get("model", "")).startswith("gpt-image"):
        return o_error(400, "invalid_value", "streaming is only supported for GPT image models")
    return None


@dataclass
class OpenAIStreaming:
    """OpenAI's Images API as it streams: the documented events when asked (`stream: true`),
    a plain JSON answer otherwise; strict about the streaming options.

    It draws `partial images` on the way (sending as many as `partial_images` asks, at most these),
    then `final`. With `gate`, the `completed` event waits until the test sets it; with
    `cut_inside`, the stream breaks inside that event (its number, from 0).
    """

    partials: list[bytes] = field(
        default_factory=lambda: [noise_png(1024, 1024, seed) for seed in (1, 2, 3)]
    )
    final: bytes = field(default_factory=lambda: noise_png(1024, 1024, 9))
    gate: asyncio.Event | None = None
    cut_inside: int | None = None
    #: how many streams `cut_inside` breaks (the later ones run through)
    cuts: int = 1
    usage: tuple[int, int] = (50, 4160)
    #: answers to send instead of a stream, one per request, before streaming resumes
    failures: list[Action] = field(default_factory=list)
    #: when given, each stream's event write times go here (bench/partials.py)
    sent: list[list[float]] | None = None

    def __call__(self, seen: Seen) -> Action:
        edit = seen.path.endswith("/edits")
        if edit and (refused := openai_refusal(seen)) is not None:
            return refused
        fields = openai_fields(seen)
        if (refused := stream_refusal(fields, edit)) is not None:
            return refused
        if self.failures:
            return self.failures.pop(0)
        if fields.get("stream") not in (True, "true"):
            return Reply(200, o_answer([self.final], self.usage))
        kind = "image_edit" if edit else "image_generation"
        common = {
            "background": "opaque",
            "created_at": 1776800000,
            "output_format": fields.get("output_format", "png"),
            "quality": fields.get("quality", "auto"),
            "size": fields.get("size", "auto"),
        }
        count = min(int(fields.get("partial_images", 0)), len(self.partials))
        events = [
            sse(
                f"{kind}.partial_image",
                {
                    "type": f"{kind}.partial_image",
                    "b64_json": b64(partial),
                    "partial_image_index": index,
                    **common,
                },
            )
            for index, partial in enumerate(self.partials[:count])
        ]
        tokens_in, tokens_out = self.usage
        usage = {
            "input_tokens": tokens_in,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": tokens_in},
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
        completed = {"type": f"{kind}.completed", "b64_json": b64(self.final), **common}
        events.append(sse(f"{kind}.completed", {**completed, "usage": usage}))
        hold = len(events) - 1 if self.gate is not None else None
        cut = self.cut_inside if self.cuts > 0 else None
        self.cuts -= cut is not None
        times: list[float] | None = None
        if self.sent is not None:
            times = []
            self.sent.append(times)
        return Stream(events, gate=self.gate, hold_before=hold, cut_inside=cut, sent=times)


# -- OpenAI-compatible chat completions (OpenRouter style)


def c_answer(
    images: list[str], content: str = "Here you go.", finish: str = "stop", **extra: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if images:
        message["images"] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {
        "id": "gen-1",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **extra}],
        "usage": {"prompt_tokens": 1300, "completion_tokens": 1290, "total_tokens": 2590},
    }


def data_uri_refusal(uris: list[str]) -> str | None:
    """Why an upstream reading `data:` URIs refuses these, or None."""
    for uri in uris:
        ctype = uri.removeprefix("data:").split(";", 1)[0]
        if ctype not in INPUT_TYPES:
            return f"unsupported image type {ctype}"
    return None


def chat_ok(seen: Seen) -> Action:
    content = seen.json()["messages"][-1]["content"]
    uris = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    refused = data_uri_refusal(uris)
    if refused is not None:
        return Reply(400, {"error": {"code": 400, "message": refused}})
    return Reply(200, c_answer([data_uri(RED)]))


# -- fal queue


@dataclass
class FalQueue:
    """fal's queue protocol: submit, status (scripted states), result, cancel."""

    url: str = ""
    #: statuses the status URL reports, one per poll, the last one repeating
    states: list[str] = field(default_factory=lambda: ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"])
    result: Reply = field(default_factory=lambda: Reply(200, fal_output([RED])))
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    polls: dict[str, int] = field(default_factory=dict)

    def __call__(self, seen: Seen) -> Action:
        parts = seen.path.strip("/").split("/")
        if seen.method == "POST":
            return self.submit(seen)
        if seen.method == "PUT" and parts[-1] == "cancel":
            return Reply(202, {"status": "CANCELLATION_REQUESTED"})
        if parts[-1] == "status":
            request_id = parts[-2]
            n = self.polls.get(request_id, 0)
            self.polls[request_id] = n + 1
            state = self.states[min(n, len(self.states) - 1)]
            body: dict[str, Any] = {"status": state, "request_id": request_id}
            if state == "IN_QUEUE":
                body["queue_position"] = 0
            return Reply(200, body)
        return self.result

    def submit(self, seen: Seen) -> Action:
        body = seen.json()
        uris = [*body.get("image_urls", []), *([body["mask_url"]] if "mask_url" in body else [])]
        refused = data_uri_refusal(uris)
        if refused is not None:
            return Reply(
                422,
                {
                    "detail": [
                        {"loc": ["body", "image_urls"], "msg": refused, "type": "value_error"}
                    ]
                },
            )
        request_id = f"req-{next(self._ids)}"
        app = "/".join(seen.path.strip("/").split("/")[:2])
        base = f"{self.url}/{app}/requests/{request_id}"
        return Reply(
            200,
            {
                "request_id": request_id,
                "gateway_request_id": request_id,
                "status": "IN_QUEUE",
                "queue_position": 0,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
            },
        )


def fal_output(images: list[bytes], description: str = "") -> dict[str, Any]:
    return {
        "images": [
            {"url": data_uri(data), "content_type": "image/png", "file_name": "out.png"}
            for data in images
        ],
        "description": description,
    }
