"""A completion limit above the model's own, as the upstream refuses it, and the request within it. Pure.

Clients ask for what they like: Claude Code sends ``max_tokens: 32000`` whatever the model, an Ollama client's
``num_predict`` may be anything (Ollama caps it at the context). OpenAI refuses a limit above the model's own
("max_tokens is too large: 32000. This model supports at most 16384 completion tokens, whereas you provided
32000.", gpt-4o), which failed every such request. The upstream-call path asks once more within the cap the
refusal names, and remembers it for that model (resources/upstream_call.py).
"""

from __future__ import annotations

import re

import orjson

_TOO_LARGE = re.compile(
    rb"\b(?:max_tokens|max_completion_tokens) is too large: \d{1,19}\. "
    rb"This model supports at most (\d{1,19}) completion tokens"
)
LIMIT_FIELDS = ("max_tokens", "max_completion_tokens")


def cap_from_refusal(body: bytes) -> int | None:
    """The model's own completion limit named by an upstream's refusal of a larger one, else None."""
    found = _TOO_LARGE.search(body)
    return int(found.group(1)) if found is not None and int(found.group(1)) > 0 else None


def within_cap(body: bytes, cap: int) -> bytes | None:
    """``body`` (a chat completions request) with its completion limit brought down to ``cap``; None when it
    asks for no more than that (nothing to change, or not a JSON object)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    changed = False
    for field in LIMIT_FIELDS:
        value = data.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            data[field] = cap
            changed = True
    return orjson.dumps(data) if changed else None
