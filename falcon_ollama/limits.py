"""Input limits: what a request may contain before we spend anything on it.

Every limit is a setting and every refusal is Ollama-shaped (``{"error": ...}``): 413 for size, 400 for
shape. The body is parsed once by orjson; this module then walks the parsed value once to check nesting
depth and count object keys. Duplicate keys (orjson, like Go, silently keeps the last one) are caught by
comparing that count with the number of ``":`` in the raw bytes: they are equal for compact JSON without
duplicates, and only when they differ does the exact (slower) duplicate check run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from falcon_ollama.errors import OllamaError

# Deeper than this, orjson cannot serialize a document (its limit is 254 levels): a body we could parse but
# not forward would be a 500, so no setting may allow it.
MAX_JSON_DEPTH = 250

# Content types that are certainly not a JSON body. Others are accepted: curl -d sends
# application/x-www-form-urlencoded, and Ollama itself does not look at the header at all.
_NOT_JSON = ("multipart/", "application/xml", "text/xml", "text/html", "image/", "audio/", "video/")


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 64 * 1024 * 1024
    max_json_depth: int = 64
    max_messages: int = 10_000
    max_images: int = 100
    max_image_bytes: int = 20 * 1024 * 1024
    max_text_chars: int = 8_000_000


def check_content_type(content_type: str | None) -> None:
    if content_type and content_type.strip().lower().startswith(_NOT_JSON):
        kind = content_type.split(";", 1)[0].strip()
        raise OllamaError(400, f"unsupported content type {kind!r}: the body must be JSON")


def check_structure(value: Any, raw: bytes, limits: Limits) -> None:
    """Depth and duplicate keys of a parsed JSON document (``raw`` is its source text)."""
    keys = _count_keys(value, 1, limits.max_json_depth)
    if keys and (raw.count(b'":') != keys or _space_before_colon(raw)):
        _check_duplicates_exactly(raw)


def _space_before_colon(raw: bytes) -> bool:
    """Whether some key may be written as ``"key" :`` (then the cheap ``":`` count proves nothing)."""
    return b'" ' in raw or b'"\t' in raw or b'"\n' in raw or b'"\r' in raw


def _count_keys(value: Any, depth: int, max_depth: int) -> int:
    if isinstance(value, dict):
        if depth > max_depth:
            raise OllamaError(400, f"request body is nested too deeply (limit {max_depth} levels)")
        return len(value) + sum(_count_keys(v, depth + 1, max_depth) for v in value.values() if _nested(v))
    if isinstance(value, list):
        if depth > max_depth:
            raise OllamaError(400, f"request body is nested too deeply (limit {max_depth} levels)")
        return sum(_count_keys(v, depth + 1, max_depth) for v in value if _nested(v))
    return 0


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise OllamaError(400, f"invalid JSON in request body: duplicate key {key!r}")
        seen[key] = value
    return seen


def _check_duplicates_exactly(raw: bytes) -> None:
    json.loads(raw, object_pairs_hook=_reject_duplicates)


def check_text(value: str, field: str, limits: Limits) -> None:
    if len(value) > limits.max_text_chars:
        raise OllamaError(413, f"'{field}' is too long (limit {limits.max_text_chars} characters)")


def check_images(images: list[Any], limits: Limits, already: int = 0) -> int:
    """Count and size of base64 images (size from the base64 length, without decoding); returns the count."""
    total = already + len(images)
    if total > limits.max_images:
        raise OllamaError(413, f"too many images (limit {limits.max_images} per request)")
    for index, image in enumerate(images):
        if isinstance(image, str) and len(image) * 3 // 4 > limits.max_image_bytes:
            raise OllamaError(413, f"image {index} is too large (limit {limits.max_image_bytes} bytes)")
    return total
