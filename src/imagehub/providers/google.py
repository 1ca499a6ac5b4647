"""What Google's image models (the Nano Banana family) accept, whichever protocol carries them:
Gemini `generateContent` on the Gemini API or Vertex AI, or an OpenAI-compatible relay."""

from __future__ import annotations

#: the hub's `resolution` -> Google's `imageSize` ("0.5K" is refused there; its name is "512")
IMAGE_SIZES = {"0.5K": "512", "1K": "1K", "2K": "2K", "4K": "4K"}
HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
#: safety_tolerance -> threshold on the four harm categories (hub-defined; 1 blocks the most)
THRESHOLDS = {
    "1": "BLOCK_LOW_AND_ABOVE",
    "2": "BLOCK_MEDIUM_AND_ABOVE",
    "3": "BLOCK_ONLY_HIGH",
    "4": "BLOCK_ONLY_HIGH",
    "5": "BLOCK_NONE",
    "6": "OFF",
}
#: finish reasons that mean the answer was withheld by a content filter
BLOCKED = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
#: the seed is an int32: the i-th call's `seed + i` wraps at this
SEED_MODULUS = 2**31
