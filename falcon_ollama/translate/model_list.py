"""The upstream's ``/models`` body -> its first N entries. Pure, no I/O.

Why not ``orjson.loads`` of the whole body: a list of a million models costs seconds and a gigabyte to
decode, on the event loop, before a cap could apply. Here the top level is walked by hand and each entry is
decoded on its own (the standard library's C decoder, ``raw_decode``), stopping after ``max_models``
entries, so the cost follows the cap, not the list. A body cut at the byte bound (``complete=False``) still
yields the entries it holds in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from falcon_ollama.errors import UpstreamProtocolError

_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


@dataclass(frozen=True, slots=True)
class ModelList:
    """The entries kept (dicts with a non-empty string ``id``), and whether the upstream listed more."""

    models: list[dict[str, Any]]
    more: bool


def parse_model_list(body: bytes, *, max_models: int, complete: bool = True) -> ModelList:
    """``{"data": [...]}`` (OpenAI) or a bare ``[...]``: at most ``max_models`` entries with an ``id``."""
    text = body.decode("utf-8", "replace")
    try:
        start = _data_array(text)
    except (ValueError, IndexError):
        if complete:
            raise UpstreamProtocolError("upstream returned an invalid model list (not JSON)") from None
        start = None
    if start is None:
        raise UpstreamProtocolError("upstream returned an invalid model list (no 'data' array)")
    return _entries(text, start, max_models, complete)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def _data_array(text: str) -> int | None:
    """The index just after the ``[`` of the model array, or None when the body has none."""
    i = _skip(text, 0)
    if text[i] == "[":
        return i + 1
    if text[i] != "{":
        raise ValueError("not an object or array")
    i = _skip(text, i + 1)
    if text[i] == "}":
        return None
    while True:
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] != ":":
            raise ValueError("expected ':'")
        i = _skip(text, i + 1)
        if key == "data":
            return i + 1 if text[i] == "[" else None
        _, i = _DECODER.raw_decode(text, i)  # another member's value: decoded and dropped
        i = _skip(text, i)
        if text[i] == "}":
            return None
        if text[i] != ",":
            raise ValueError("expected ',' or '}'")
        i = _skip(text, i + 1)


def _entries(text: str, i: int, max_models: int, complete: bool) -> ModelList:
    models: list[dict[str, Any]] = []
    i = _skip(text, i)
    if i < len(text) and text[i] == "]":
        return ModelList(models, False)
    while True:
        try:
            item, i = _DECODER.raw_decode(text, i)
        except ValueError:
            if complete:
                raise UpstreamProtocolError("upstream returned an invalid model list (not JSON)") from None
            return ModelList(models, True)  # the entry the byte bound cut
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            if len(models) == max_models:
                return ModelList(models, True)
            models.append(item)
        i = _skip(text, i)
        if i >= len(text):
            if complete:
                raise UpstreamProtocolError("upstream returned an invalid model list (not JSON)")
            return ModelList(models, True)
        if text[i] == "]":
            return ModelList(models, False)
        if text[i] != ",":
            raise UpstreamProtocolError("upstream returned an invalid model list (not JSON)")
        i = _skip(text, i + 1)
