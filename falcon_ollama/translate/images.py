"""Ollama images (raw base64, no MIME type) -> OpenAI ``image_url`` data URIs.

Ollama clients send images as bare base64; the OpenAI API wants ``data:<mime>;base64,...``. The MIME type is
sniffed from the first bytes (decoding only a 24-character prefix, never the whole image). A value that
already is a data URI (some JS clients send one) passes unchanged.
"""

from __future__ import annotations

import base64
import binascii

from falcon_ollama.errors import InvalidRequest

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_mime(head: bytes) -> str | None:
    """The image type from its first bytes: png, jpeg, gif or webp; None for anything else."""
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_data_uri(image: object, index: int) -> str:
    """A data URI for one Ollama image; 400 for values that are not a base64 PNG/JPEG/GIF/WebP image."""
    if not isinstance(image, str) or not image:
        raise InvalidRequest(f"invalid image input: image {index} must be a non-empty base64 string")
    if image.startswith("data:"):
        return image
    prefix = image[:24].strip()
    try:
        head = base64.b64decode(prefix + "=" * (-len(prefix) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"invalid image input: image {index} is not valid base64") from None
    mime = sniff_mime(head)
    if mime is None:
        raise InvalidRequest(f"invalid image input: image {index} is not a PNG, JPEG, GIF or WebP image")
    return f"data:{mime};base64,{image}"
