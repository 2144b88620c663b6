"""The upstream's ``/models`` body -> its first N entries. Pure, no I/O.

Why not ``orjson.loads`` of the whole body: a list of a million models costs seconds and a gigabyte to
decode, on the event loop, before a cap could apply. Here the top level is walked by hand and each entry is
decoded on its own (the standard library's C decoder, ``raw_decode``), stopping after ``max_models``
entries, so the cost follows the cap, not the list. A body cut at the byte bound (``complete=False``) still
yields the entries it holds in full.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from falcon_ollama.catalog_config import UpstreamFacts
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


# The largest context any fact may claim (2**24 tokens): a bigger number is a broken or hostile entry.
_MAX_CONTEXT = 1 << 24
_MAX_EMBEDDING = 1 << 16


def upstream_facts(item: dict[str, Any]) -> UpstreamFacts | None:
    """What one ``/models`` entry says about its model, in the fields the upstreams we know use:

    vLLM ``max_model_len``; OpenRouter ``context_length``, ``architecture.input_modalities`` and
    ``supported_parameters``; llama.cpp's server ``meta`` (``n_ctx_train``, ``n_embd``, ``n_params``);
    LM Studio's REST API (``/api/v0/models``) ``max_context_length`` and ``type``. None when it says nothing.
    Values of the wrong type or out of range are ignored, never trusted.
    """
    meta = item.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    context = (
        _count(item.get("max_model_len"), _MAX_CONTEXT)
        or _count(item.get("context_length"), _MAX_CONTEXT)
        or _count(item.get("max_context_length"), _MAX_CONTEXT)
        or _count(meta.get("n_ctx_train"), _MAX_CONTEXT)
    )
    params = _count(meta.get("n_params"), 1 << 50)
    capabilities, complete = _capabilities(item)
    facts = UpstreamFacts(
        context_length=context,
        embedding_length=_count(meta.get("n_embd"), _MAX_EMBEDDING),
        parameter_size=human_number(params) if params else None,
        capabilities=capabilities,
        capabilities_complete=complete,
    )
    return None if facts.empty else facts


def _count(value: Any, limit: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit:
        return value
    return None


def _capabilities(item: dict[str, Any]) -> tuple[tuple[str, ...] | None, bool]:
    supported = item.get("supported_parameters")
    if isinstance(supported, list):  # OpenRouter: what the model takes, in full
        arch = item.get("architecture")
        modalities = arch.get("input_modalities") if isinstance(arch, dict) else None
        caps = ["completion"]
        if "tools" in supported:
            caps.append("tools")
        if isinstance(modalities, list) and "image" in modalities:
            caps.append("vision")
        if "reasoning" in supported:
            caps.append("thinking")
        return tuple(caps), True
    kind = item.get("type")
    if kind == "embeddings":  # LM Studio
        return ("embedding",), True
    if kind == "vlm":
        return ("completion", "vision"), False
    if kind == "llm":
        return ("completion",), False
    return None, False


def human_number(value: int) -> str:
    """A parameter count as Ollama writes it (its format.HumanNumber): ``8B``, ``7.6B``, ``494.03M``."""
    for size, unit, decimals in ((1_000_000_000, "B", 1), (1_000_000, "M", 2)):
        if value >= size:
            number = value / size
            return f"{number:.0f}{unit}" if number == int(number) else f"{number:.{decimals}f}{unit}"
    if value >= 1000:
        return f"{value / 1000:.0f}K"
    return str(value)


# The context a server runs with, as its refusal of an over-long prompt says it: OpenAI's and vLLM's text
# (which llama-cpp-python copies), and the ValueError text llama-cpp-python raises on its raw completion path.
_CONTEXT_IN_ERROR = re.compile(
    r"maximum context length is (\d{1,9}) tokens|exceed context window of (\d{1,9})", re.IGNORECASE
)


def context_from_error(body: bytes) -> int | None:
    """The served context an upstream's refusal of an over-long prompt names, or None: llama.cpp's server
    (``error.n_ctx`` of its ``exceed_context_size_error``) or the message text OpenAI, vLLM and
    llama-cpp-python use (``This model's maximum context length is 2048 tokens``). llama-cpp-python publishes
    its context nowhere else (no ``/props``, no ``meta``)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: 64 KiB of "[" nests deeper than the stack
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        stated = _count(error.get("n_ctx"), _MAX_CONTEXT)
        if stated is not None:
            return stated
        message = error.get("message")
    else:
        message = error if isinstance(error, str) else None
    match = _CONTEXT_IN_ERROR.search(message) if isinstance(message, str) else None
    if match is None:
        return None
    return _count(int(match.group(1) or match.group(2)), _MAX_CONTEXT)


def served_context(body: bytes | None) -> int | None:
    """The context llama.cpp's server runs with, from its ``/props``: ``default_generation_settings.n_ctx``
    (what a request can use; the list's ``n_ctx_train`` is what the model was trained for)."""
    if not body:
        return None
    try:
        props = json.loads(body)
    except (ValueError, RecursionError):
        return None
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    return _count(settings.get("n_ctx"), _MAX_CONTEXT) if isinstance(settings, dict) else None
