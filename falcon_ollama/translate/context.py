"""``/api/generate``'s ``context``: the conversation so far, carried by the client between calls.

Ollama returns the token ids of prompt and answer in the final generate chunk, and a client that sends them
back as ``context`` continues the conversation. We have no token ids, so ``context`` carries the
conversation itself: the messages as compact JSON, UTF-8, packed three bytes per integer (every value is a
non-negative int below 2**24, so any client's integer type holds it), after a marker integer that lets us
recognise our own. A ``context`` we did not write (real Ollama token ids) is ignored, with a warning.
"""

from __future__ import annotations

from typing import Any

import orjson

# Marker first element: outside the 0..2**24 range of packed values, so it cannot occur by accident.
MARKER = 0x0F0110A1
_MAX_MESSAGES = 10_000


def encode_context(messages: list[dict[str, Any]]) -> list[int]:
    """Pack ``[{"role", "content"}, ...]`` into a list of integers."""
    data = orjson.dumps(messages)
    pad = -len(data) % 3
    data += b"\x00" * pad
    packed = [MARKER, pad]
    packed.extend(int.from_bytes(data[i : i + 3], "big") for i in range(0, len(data), 3))
    return packed


def decode_context(context: object) -> list[dict[str, str]] | None:
    """The messages packed by :func:`encode_context`, or None if ``context`` is not ours or is damaged."""
    if not isinstance(context, list) or len(context) < 2 or context[0] != MARKER:
        return None
    pad = context[1]
    values = context[2:]
    if not isinstance(pad, int) or not 0 <= pad <= 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 24 for v in values):
        return None
    data = b"".join(v.to_bytes(3, "big") for v in values)
    if pad:
        data = data[:-pad]
    try:
        messages = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(messages, list) or len(messages) > _MAX_MESSAGES:
        return None
    clean: list[dict[str, str]] = []
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            return None
        clean.append({"role": message["role"], "content": message["content"]})
    return clean
