"""Ollama ``/api/embed`` and ``/api/embeddings`` <-> OpenAI ``/v1/embeddings``. Pure functions.

Ollama takes any number of inputs; the upstream caps a request (OpenAI: 2048 inputs and a token budget), so
large inputs are split into batches within both caps. What the upstream sends back is checked before it is
passed on: one vector of numbers per input (some servers answer per-token nested lists), in input order.
``/api/embed`` vectors are L2-normalized, as Ollama promises; ``/api/embeddings`` (legacy) are not.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pybase64
from numpy.typing import NDArray

from falcon_ollama.errors import InvalidRequest, UpstreamProtocolError

# Characters per token assumed when estimating: low, so that estimates err towards smaller batches.
CHARS_PER_TOKEN_ESTIMATE = 3


@dataclass(frozen=True, slots=True)
class Batch:
    """A slice of the inputs sent in one upstream request."""

    start: int
    inputs: list[str]


def parse_embed_input(raw: object) -> list[str]:
    """``input`` as a list of strings: a string -> one input; ``None``, ``""`` or ``[]`` -> none."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return raw
    raise InvalidRequest("invalid input type")


def parse_dimensions(raw: object) -> int | None:
    """``dimensions`` as Ollama takes it: an integer, where zero or less means the whole vector."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidRequest("invalid value for 'dimensions': expected an integer")
    return raw if raw > 0 else None


def parse_truncate(raw: object) -> bool:
    if raw is None:
        return True
    if not isinstance(raw, bool):
        raise InvalidRequest("invalid value for 'truncate': expected true or false")
    return raw


def truncate_inputs(inputs: list[str], context_length: int, chars_per_token: int) -> list[str]:
    """Cut inputs that cannot fit the context (``truncate: true``): we have no tokenizer, so the cut is at
    ``context_length * chars_per_token`` characters."""
    limit = context_length * chars_per_token
    return [text if len(text) <= limit else text[:limit] for text in inputs]


def make_batches(inputs: list[str], max_inputs: int, max_tokens: int) -> list[Batch]:
    """Consecutive slices with at most ``max_inputs`` inputs and ``max_tokens`` estimated tokens each."""
    batches: list[Batch] = []
    start = 0
    current: list[str] = []
    tokens = 0
    for index, text in enumerate(inputs):
        estimate = len(text) // CHARS_PER_TOKEN_ESTIMATE + 1
        if current and (len(current) >= max_inputs or tokens + estimate > max_tokens):
            batches.append(Batch(start, current))
            start, current, tokens = index, [], 0
        current.append(text)
        tokens += estimate
    if current:
        batches.append(Batch(start, current))
    return batches


def embeddings_request(upstream_id: str, inputs: list[str], encoding: str) -> bytes:
    """The upstream body; ``encoding`` is ``"base64"`` (float32 bytes: nothing to parse) or ``"float"``.

    ``dimensions`` is never sent: Ollama shortens any model's vectors itself (``parse_embeddings_response``),
    where an upstream would refuse it for a model without shortening (OpenAI's ada-002, local servers)."""
    body: dict[str, Any] = {"model": upstream_id, "input": inputs, "encoding_format": encoding}
    return orjson.dumps(body)


def is_encoding_refusal(status: int, message: str) -> bool:
    """Whether an upstream 4xx refuses ``encoding_format: "base64"`` (then the request is sent again asking
    for numbers): OpenAI and vLLM take base64; some OpenAI-compatible servers refuse the field or value."""
    lowered = message.lower()
    return status in (400, 422) and ("encoding_format" in lowered or "base64" in lowered)


def parse_embeddings_response(
    payload: bytes, expected: int, *, normalize: bool, dimensions: int | None = None
) -> tuple[bytes, int | None]:
    """The vectors as one JSON array of arrays, in input order (L2-normalized when asked), and
    ``usage.prompt_tokens``; anything malformed is a 502 saying what. A vector longer than ``dimensions`` is
    cut to that length and normalized again, as Ollama's EmbedHandler does (OpenAI's own shortening of
    text-embedding-3 vectors gives the same numbers).

    Each ``embedding`` is base64 little-endian float32 (what we ask for) or an array of numbers (servers
    that ignore ``encoding_format``); either becomes one numpy array, checked, normalized and serialized in
    C (no Python loop per float). A vector already of unit length is passed on as the upstream gave it."""
    data, items = _answer_items(payload)
    if len(items) != expected:
        raise UpstreamProtocolError(f"the upstream returned {len(items)} embeddings for {expected} inputs")
    vectors: list[NDArray[Any] | None] = [None] * expected
    with np.errstate(all="ignore"):  # overflow and NaN are found by the checks, not as warnings
        _collect(items, vectors, payload, normalize, dimensions)
    usage = data.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    prompt_tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
    return orjson.dumps(vectors, option=orjson.OPT_SERIALIZE_NUMPY), prompt_tokens


def _answer_items(payload: bytes) -> tuple[dict[str, Any], list[Any]]:
    """An embeddings answer and its ``data`` array; a 502 saying what, when it is not that."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the upstream returned invalid embeddings (not JSON)") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UpstreamProtocolError("the upstream returned invalid embeddings (no 'data' array)")
    return data, items


def _collect(
    items: list[Any],
    vectors: list[NDArray[Any] | None],
    payload: bytes,
    normalize: bool,
    dimensions: int | None,
) -> None:
    """Each item's vector, checked (normalized, and cut to ``dimensions``, when asked), at its index."""
    # Whether the answer may hold a boolean (numpy takes True for 1): a scan of the whole payload, ~1 ns a
    # byte, made only when a vector comes as an array of numbers (base64 vectors cannot hold one).
    may_have_booleans: bool | None = None
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise UpstreamProtocolError(
                "the upstream returned invalid embeddings (an entry is not an object)"
            )
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(vectors):
            raise UpstreamProtocolError(f"the upstream returned an embedding with an invalid index {index!r}")
        raw = item.get("embedding")
        if may_have_booleans is None and isinstance(raw, list):
            may_have_booleans = b"true" in payload or b"false" in payload
        vector = _vector(raw, bool(may_have_booleans))
        del raw
        if vectors[index] is not None:
            raise UpstreamProtocolError(f"the upstream returned two embeddings for input {index}")
        if normalize:
            vector = _normalized(vector)
        elif not np.isfinite(vector).all():  # only base64 can carry these: JSON has no NaN or Infinity
            raise UpstreamProtocolError(_NOT_FINITE)
        if dimensions is not None and dimensions < len(vector):
            vector = _normalized(vector[:dimensions])
        vectors[index] = vector
        del item["embedding"]  # the parsed numbers or text can go now: only the array is kept


_NOT_A_VECTOR = (
    "the upstream returned an embedding that is not a flat list of numbers (is the model an embedding model?)"
)
_NOT_FINITE = "the upstream returned an embedding with a value that is not a finite number"
_FLOAT32 = np.dtype("<f4")


def _vector(raw: object, may_have_booleans: bool) -> NDArray[Any]:
    """A non-empty 1-D array of numbers from base64 float32 or a JSON array; else a 502."""
    if isinstance(raw, str):
        try:  # SIMD decoding: ~14x binascii's (docs/performance.md); validate: alphabet and padding only
            buffer = pybase64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            buffer = b""
        if not buffer or len(buffer) % 4:
            raise UpstreamProtocolError(
                "the upstream returned an embedding that is not base64 float32 numbers"
            )
        array: NDArray[Any] = np.frombuffer(buffer, dtype=_FLOAT32)
    elif isinstance(raw, list) and raw:
        if may_have_booleans and any(x is True or x is False for x in raw):
            raise UpstreamProtocolError(_NOT_A_VECTOR)
        try:
            array = np.array(raw)  # the type numpy finds says what was there: no Python loop per float
        except (ValueError, TypeError, OverflowError):
            raise UpstreamProtocolError(_NOT_A_VECTOR) from None
        if array.ndim != 1 or array.dtype.kind not in "fiu":
            raise UpstreamProtocolError(_NOT_A_VECTOR)
    else:
        raise UpstreamProtocolError(_NOT_A_VECTOR)
    return array


def _normalized(vector: NDArray[Any]) -> NDArray[Any]:
    """``vector`` scaled to unit length in float64, or as it is when its length is 0 or already 1; a 502 when
    it holds NaN or an infinity (its length says so: no separate pass over the numbers)."""
    wide = vector.astype(np.float64, copy=False)
    norm = math.sqrt(float(np.dot(wide, wide)))
    if not math.isfinite(norm):  # a NaN or infinity, or squares that overflowed (numbers near 1e154)
        norm = math.hypot(*wide.tolist())
        if not math.isfinite(norm):
            raise UpstreamProtocolError(_NOT_FINITE)
    if norm == 0.0 or abs(norm - 1.0) < 1e-6:
        return vector
    return wide / norm


# OpenAI's models that shorten their own vectors (``dimensions``); for any other, /v1/embeddings shortens them
# here, as Ollama's EmbedHandler does for every model (OpenAI refuses the field for ada-002, as most local
# servers do).
NATIVE_DIMENSIONS = ("text-embedding-3-",)


def split_dimensions(body: dict[str, Any], upstream_id: str, length: int | None = None) -> int | None:
    """Take ``dimensions`` out of a /v1/embeddings body unless the model shortens its own vectors; the length
    to cut each vector to here, or None. Zero or less, or at least the vector's ``length`` when known, means
    the whole vector (Ollama leaves it whole), and is never sent."""
    raw = body.get("dimensions")
    if raw is None or isinstance(raw, bool) or not isinstance(raw, int):
        return None  # absent, or a wrong type: the upstream gives its own 400 for the latter
    if raw <= 0 or (length is not None and raw >= length):
        del body["dimensions"]
        return None
    if upstream_id.lower().startswith(NATIVE_DIMENSIONS):
        return None
    del body["dimensions"]
    return raw


def shorten_embeddings(payload: bytes, dimensions: int) -> bytes:
    """An OpenAI embeddings answer with each vector longer than ``dimensions`` cut to it and normalized again
    (numbers stay numbers, base64 stays base64 float32); anything malformed is a 502 saying what."""
    data, items = _answer_items(payload)
    with np.errstate(all="ignore"):
        for item in items:
            if not isinstance(item, dict):
                raise UpstreamProtocolError(
                    "the upstream returned invalid embeddings (an entry is not an object)"
                )
            raw = item.get("embedding")
            vector = _vector(raw, False)
            if len(vector) <= dimensions:
                continue
            cut = _normalized(vector[:dimensions])
            if isinstance(raw, str):
                item["embedding"] = pybase64.b64encode(cut.astype(_FLOAT32).tobytes()).decode("ascii")
            else:
                item["embedding"] = cut.astype(np.float64)
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)
