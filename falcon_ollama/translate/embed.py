"""Ollama ``/api/embed`` and ``/api/embeddings`` <-> OpenAI ``/v1/embeddings``. Pure functions.

Ollama takes any number of inputs; the upstream caps a request (OpenAI: 2048 inputs and a token budget), so
large inputs are split into batches within both caps. What the upstream sends back is checked before it is
passed on: one vector of numbers per input (some servers answer per-token nested lists), in input order.
``/api/embed`` vectors are L2-normalized, as Ollama promises; ``/api/embeddings`` (legacy) are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

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
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise InvalidRequest("invalid value for 'dimensions': expected a positive integer")
    return raw


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


def embeddings_request(upstream_id: str, inputs: list[str], dimensions: int | None) -> bytes:
    body: dict[str, Any] = {"model": upstream_id, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return orjson.dumps(body)


def parse_embeddings_response(
    payload: bytes, expected: int, *, normalize: bool
) -> tuple[list[list[float]], int | None]:
    """The vectors in input order (L2-normalized in place when asked) and ``usage.prompt_tokens``; anything
    malformed is a 502 saying what.

    The checks run at C speed where they can (``math.hypot`` refuses anything that is not a number), and a
    vector is normalized in place: a Python float costs 32 bytes, so a second copy of every vector would
    double the memory of a large answer."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the upstream returned invalid embeddings (not JSON)") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UpstreamProtocolError("the upstream returned invalid embeddings (no 'data' array)")
    if len(items) != expected:
        raise UpstreamProtocolError(f"the upstream returned {len(items)} embeddings for {expected} inputs")
    may_have_booleans = b"true" in payload or b"false" in payload
    vectors: list[list[float] | None] = [None] * expected
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise UpstreamProtocolError(
                "the upstream returned invalid embeddings (an entry is not an object)"
            )
        index = item.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < expected:
            raise UpstreamProtocolError(f"the upstream returned an embedding with an invalid index {index!r}")
        vector = item.get("embedding")
        norm = _norm(vector, may_have_booleans)
        assert isinstance(vector, list)  # _norm refused anything else
        if vectors[index] is not None:
            raise UpstreamProtocolError(f"the upstream returned two embeddings for input {index}")
        if normalize and norm != 0.0 and abs(norm - 1.0) >= 1e-6:
            vector[:] = [x / norm for x in vector]
        vectors[index] = vector
    usage = data.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    prompt_tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
    return [v for v in vectors if v is not None], prompt_tokens


def _norm(vector: Any, may_have_booleans: bool) -> float:
    """The L2 norm of a non-empty flat list of numbers; a 502 for anything else."""
    try:
        if isinstance(vector, list) and vector:
            if may_have_booleans and any(x is True or x is False for x in vector):
                raise TypeError("a boolean")
            return math.hypot(*vector)
    except TypeError:
        pass
    raise UpstreamProtocolError(
        "the upstream returned an embedding that is not a flat list of numbers "
        "(is the model an embedding model?)",
    )
