"""One input per model, exercising its mappings; each provider's test states the exact request
the hub must send for it (the golden requests)."""

from __future__ import annotations

from typing import Any

from imagehub.testing import tiny_png
from tests.providers.wire import b64, data_uri, decoded

PHOTO = tiny_png(40, 24, (10, 120, 200))
SKETCH = tiny_png(16, 16, (250, 200, 0))
#: a black and white mask: white marks the area to change
MASK = tiny_png(40, 24, (255, 255, 255))

#: what the hub sends upstream for each input image (a PNG goes as it is)
PHOTO_B64 = b64(decoded(PHOTO))
SKETCH_B64 = b64(decoded(SKETCH))

INPUTS: dict[str, dict[str, Any]] = {
    "nano-banana": {
        "prompt": "a lighthouse",
        "seed": 7,
        "aspect_ratio": "16:9",
        "safety_tolerance": "2",
        "output_format": "jpeg",
    },
    "nano-banana/edit": {"prompt": "add snow", "image_urls": [data_uri(PHOTO), data_uri(SKETCH)]},
    "nano-banana-2": {
        "prompt": "a poster",
        "resolution": "0.5K",
        "system_prompt": "You draw posters.",
        "thinking_level": "high",
        "enable_web_search": True,
        "safety_tolerance": 6,
        "seed": 2147483647,
        "num_images": 2,
    },
    "nano-banana-2/edit": {
        "prompt": "make it night",
        "image_urls": [data_uri(PHOTO)],
        "resolution": "4K",
        "aspect_ratio": "8:1",
        "thinking_level": "minimal",
    },
    "nano-banana-pro": {
        "prompt": "a travel poster",
        "resolution": "2K",
        "enable_web_search": True,
        "safety_tolerance": "5",
    },
    "nano-banana-pro/edit": {
        "prompt": "on a marble table",
        "image_urls": [data_uri(PHOTO), data_uri(SKETCH)],
        "safety_tolerance": 1,
    },
    "gpt-image-2": {
        "prompt": "a cafe menu",
        "image_size": "square",
        "num_images": 2,
        "output_format": "webp",
    },
    "gpt-image-2/edit": {
        "prompt": "replace the sky",
        "image_urls": [data_uri(PHOTO), data_uri(SKETCH)],
        "mask_url": data_uri(MASK),
        "image_size": {"width": 1024, "height": 1536},
        "quality": "low",
    },
}

NANO_BANANA = [m for m in INPUTS if m.startswith("nano-banana")]
GPT = ["gpt-image-2", "gpt-image-2/edit"]


def safety(threshold: str) -> list[dict[str, str]]:
    return [
        {"category": category, "threshold": threshold}
        for category in (
            "HARM_CATEGORY_HARASSMENT",
            "HARM_CATEGORY_HATE_SPEECH",
            "HARM_CATEGORY_SEXUALLY_EXPLICIT",
            "HARM_CATEGORY_DANGEROUS_CONTENT",
        )
    ]


def inline(b64_data: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "image/png", "data": b64_data}}


def _gemini(parts: list[dict[str, Any]], config: dict[str, Any], **rest: Any) -> dict[str, Any]:
    modalities = {"responseModalities": ["TEXT", "IMAGE"], "candidateCount": 1}
    return {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": {**modalities, **config},
        **rest,
    }


#: model -> the generateContent bodies (one per image), on the Gemini API and on Vertex AI
GEMINI_BODIES: dict[str, list[dict[str, Any]]] = {
    "nano-banana": [
        _gemini(
            [{"text": "a lighthouse"}],
            {"seed": 7, "imageConfig": {"aspectRatio": "16:9"}},
            safetySettings=safety("BLOCK_MEDIUM_AND_ABOVE"),
        )
    ],
    "nano-banana/edit": [
        _gemini(
            [{"text": "add snow"}, inline(PHOTO_B64), inline(SKETCH_B64)],
            {},
            safetySettings=safety("BLOCK_ONLY_HIGH"),
        )
    ],
    "nano-banana-2": [
        _gemini(
            [{"text": "a poster"}],
            {
                "seed": seed,
                "imageConfig": {"imageSize": "512"},
                "thinkingConfig": {"thinkingLevel": "HIGH", "includeThoughts": True},
            },
            safetySettings=safety("OFF"),
            systemInstruction={"parts": [{"text": "You draw posters."}]},
            tools=[{"googleSearch": {}}],
        )
        for seed in (2147483647, 0)  # seed + i, wrapped into Gemini's int32
    ],
    "nano-banana-2/edit": [
        _gemini(
            [{"text": "make it night"}, inline(PHOTO_B64)],
            {
                "imageConfig": {"aspectRatio": "8:1", "imageSize": "4K"},
                "thinkingConfig": {"thinkingLevel": "MINIMAL", "includeThoughts": True},
            },
            safetySettings=safety("BLOCK_ONLY_HIGH"),
        )
    ],
    "nano-banana-pro": [
        _gemini(
            [{"text": "a travel poster"}],
            {"imageConfig": {"aspectRatio": "1:1", "imageSize": "2K"}},
            safetySettings=safety("BLOCK_NONE"),
        )
    ],
    "nano-banana-pro/edit": [
        _gemini(
            [{"text": "on a marble table"}, inline(PHOTO_B64), inline(SKETCH_B64)],
            {"imageConfig": {"imageSize": "1K"}},
            safetySettings=safety("BLOCK_LOW_AND_ABOVE"),
        )
    ],
}

UPSTREAM_IDS = {
    "nano-banana": "gemini-2.5-flash-image",
    "nano-banana/edit": "gemini-2.5-flash-image",
    "nano-banana-2": "gemini-3.1-flash-image",
    "nano-banana-2/edit": "gemini-3.1-flash-image",
    "nano-banana-pro": "gemini-3-pro-image",
    "nano-banana-pro/edit": "gemini-3-pro-image",
    "gpt-image-2": "gpt-image-2",
    "gpt-image-2/edit": "gpt-image-2",
}
