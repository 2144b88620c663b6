"""Input limits: what a request may contain before we spend anything on it.

Every limit is a setting and every refusal is Ollama-shaped (``{"error": ...}``): 413 for size, 400 for
shape. Size alone does not bound the cost of a body: 64 MB of ``[[],[],...]`` is 21 million Python objects.
So before parsing, the JSON punctuation outside strings (``[]{},:``) is extracted from the raw bytes with
C-speed bytes operations (no Python loop per byte or per value); it gives the number of values, the nesting
depth and the number of object keys exactly, and a body over a limit is refused without being parsed. The
body is then parsed once by orjson. Duplicate keys (orjson, like Go, silently keeps the last one) show as
fewer keys in the parsed value than in the source; only then does the slower check that names the key run,
on a body already known to be within the value limit.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

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
    max_json_values: int = 1_000_000
    max_embed_inputs: int = 2048


def check_content_type(content_type: str | None) -> None:
    if content_type and content_type.strip().lower().startswith(_NOT_JSON):
        kind = content_type.split(";", 1)[0].strip()
        raise OllamaError(400, f"unsupported content type {kind!r}: the body must be JSON")


# JSON punctuation and string quotes; every other byte is dropped before looking at the structure.
_DROP = bytes(sorted(set(range(256)) - set(b'"[]{},:')))
# A string once escaped quotes and backslashes are gone (then a string cannot contain a quote).
_STRING = re.compile(rb'"[^"]*"')
# Nesting steps: +1 for an opening bracket, -1 (as a signed byte) for a closing one.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_CONTAINERS = (dict, list)
# Up to this many strings, :func:`measure` splits at the quotes (a list of two pieces per string); beyond,
# it uses the regex passes, whose memory does not grow twice as fast with the number of strings.
_SPLIT_STRINGS = 4096
# Bodies up to this size take :func:`_small_shape` (a chat request is usually far below it).
_SMALL_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Shape:
    """What parsing a JSON document would build, counted from its source text."""

    values: int  # values, object keys and containers: 1 + the number of ``[``, ``{``, ``,`` and ``:``
    keys: int  # object keys as written (duplicates included)
    depth: int


def parse_json(raw: bytes, limits: Limits) -> Any:
    """Parse a request body within the value, depth and duplicate-key limits (400/413 otherwise)."""
    if len(raw) <= _SMALL_BODY and len(raw) < limits.max_json_values:
        keys, depth = _small_shape(raw, limits.max_json_depth)
    else:
        shape = measure(raw, limits.max_json_values)
        keys, depth = shape.keys, shape.depth
    if depth > limits.max_json_depth:
        raise OllamaError(400, f"request body is nested too deeply (limit {limits.max_json_depth} levels)")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OllamaError(400, f"invalid JSON in request body: {exc}") from None
    if keys and _parsed_keys(value) != keys:
        _check_duplicates_exactly(raw)  # raises, naming the key
        raise OllamaError(400, "invalid JSON in request body: duplicate key")
    return value


def measure(raw: bytes, max_values: int) -> Shape:
    """The :class:`Shape` of a JSON text (exact when it is valid JSON; orjson refuses it otherwise), or a
    413 when it has more than ``max_values`` values.

    Inside a string a quote is always escaped, so once escaped backslashes and escaped quotes are removed,
    the remaining quotes pair up around strings. Cost: a few passes over the bytes at memchr/translate speed;
    a body of many tiny strings is refused from the quote count alone (every string but the root follows
    one of ``[{,:``), before the string removal whose cost grows with the number of strings."""
    raw = _without_escapes(raw)
    marks = raw.translate(None, _DROP)
    quotes = marks.count(b'"')
    strings = quotes // 2
    if strings > max_values:
        raise _too_many_values(max_values)
    if not quotes % 2 and strings <= _SPLIT_STRINGS:
        # Quotes paired (always, in valid JSON): split at them, the odd pieces are the strings' insides.
        # One split and two joins instead of two regex passes (~2 µs less on an ordinary chat body).
        pieces = marks.split(b'"')
        inside = b"".join(pieces[1::2])
        closers = marks.count(b"]") + marks.count(b"}") - inside.count(b"]") - inside.count(b"}")
        values = 1 + len(marks) - len(inside) - 2 * strings - closers
        if values > max_values:
            raise _too_many_values(max_values)
        return _shape(b"".join(pieces[0::2]), values)
    # Count first, from the strings' own punctuation, so that a body of punctuation costs one copy of it
    # (``marks``); the punctuation outside strings is only built once it is known to be small.
    inside = b"".join(_STRING.findall(marks)) if strings else b""
    closers = marks.count(b"]") + marks.count(b"}") - inside.count(b"]") - inside.count(b"}")
    values = 1 + len(marks) - len(inside) - closers
    if values > max_values:
        raise _too_many_values(max_values)
    if strings:
        marks = _STRING.sub(b"", marks)
    return _shape(marks, values)


def _without_escapes(raw: bytes) -> bytes:
    """``raw`` without escaped backslashes and escaped quotes: then every quote left opens or closes a
    string."""
    if b"\\" in raw:
        return raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    return raw


def _small_shape(raw: bytes, max_depth: int) -> tuple[int, int]:
    """(keys, depth) of a body of at most :data:`_SMALL_BODY` bytes, shorter than the value limit: it cannot
    hold more values than it has bytes, so they are not counted, and the depth is worked out exactly only
    when its brackets could pass ``max_depth`` (it is then at most that bound). Exact for valid JSON, as
    :func:`measure` is; an odd number of quotes (never valid JSON) is left to orjson's refusal."""
    raw = _without_escapes(raw)
    outside = b"".join(raw.translate(None, _DROP).split(b'"')[0::2])
    depth = outside.count(b"[") + outside.count(b"{")
    if depth > max_depth:
        depth = _shape(outside, 0).depth
    return outside.count(b":"), depth


def _shape(outside: bytes, values: int) -> Shape:
    """The :class:`Shape` from the punctuation outside strings (``outside``) and the count of values."""
    depth = outside.count(b"[") + outside.count(b"{")
    if depth > 1:
        nesting = outside.translate(None, b",:").translate(_STEPS)
        depth = max(accumulate(array("b", nesting)), default=0)
    return Shape(values=values, keys=outside.count(b":"), depth=depth)


def _parsed_keys(value: Any) -> int:
    """Object keys in the parsed value. A walk in Python, but over at most ``max_json_values`` values (0.14 s
    for 500,000 arrays); scanning ``orjson.dumps(value)`` instead is faster on containers but would copy
    every string once more."""
    keys = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            keys += len(item)
            pending += [v for v in item.values() if type(v) in _CONTAINERS]
        elif type(item) is list:
            pending += [v for v in item if type(v) in _CONTAINERS]
    return keys


def _too_many_values(limit: int) -> OllamaError:
    return OllamaError(413, f"request body has too many JSON values (limit {limit} values and keys)")


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
