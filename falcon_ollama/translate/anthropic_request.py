"""Anthropic Messages request -> OpenAI chat completion request. Pure: no HTTP, no catalog, no settings.

Claude Code and the ``anthropic`` SDK send these; the upstream speaks chat completions. Everything with an
equivalent is translated (system, text/image/document blocks, tools and tool results, thinking, sampling);
what has none is dropped and named in :attr:`MessagesPlan.dropped` so the resource can warn once
(``top_k``; sampling knobs a reasoning model refuses; ``thinking`` for a model without reasoning; PDF
documents and block types with no text form, skipped as Ollama skips them), and the
caching and bookkeeping fields (``metadata``, ``cache_control``, ``context_management``, ``service_tier``)
are ignored without a word, as Ollama does. Field errors raise :class:`InvalidRequest` naming the path,
in the style of Anthropic's own messages (``messages.0.content.1: ...``).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import orjson

from falcon_ollama.catalog_config import ModelFacts
from falcon_ollama.errors import InvalidRequest, TooLarge
from falcon_ollama.openai_types import (
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    FunctionDefinition,
    ImagePart,
    Tool,
    ToolCall,
)
from falcon_ollama.translate.effort import effort_for
from falcon_ollama.translate.options import OPENAI_MAX_STOP_SEQUENCES, sampling_values
from falcon_ollama.translate.tool_history import pair_tool_results

# count_tokens and message_start's input_tokens: an estimate, stated as such in docs/api.md.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 1600  # Anthropic's own figure for a full-size image (about 1.15 megapixels)

# thinking.budget_tokens -> reasoning_effort for a reasoning backend: below 4k "low", below 16k "medium".
_BUDGET_LOW = 4096
_BUDGET_MEDIUM = 16384
# output_config.effort -> reasoning_effort (OpenAI knows low/medium/high; "max"/"xhigh" are its "high").
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "max", "xhigh": "max"}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# What MessagesPlan.dropped names for skipped blocks: fixed words, so a client cannot grow the warn-once set.
_UNKNOWN_BLOCK = "content blocks of other types (search_result...)"
_OTHER_DOCUMENT = "document blocks that are not text (PDF, URL)"


@dataclass(frozen=True, slots=True)
class MessagesPlan:
    """The upstream request, whether it streams, what was dropped, and whether the answer shows thinking."""

    body: ChatCompletionRequest
    stream: bool
    dropped: tuple[str, ...]
    emit_thinking: bool = True  # False for thinking: disabled, as /api/chat hides it for think: false


def messages_to_openai(
    body: dict[str, Any],
    facts: ModelFacts,
    upstream_id: str,
    *,
    include_usage: bool = True,
    max_messages: int = 10_000,
    max_images: int = 100,
    max_image_bytes: int = 20 * 1024 * 1024,
    max_text_chars: int = 8_000_000,
) -> MessagesPlan:
    """Translate a ``POST /v1/messages`` body for the model ``upstream_id`` described by ``facts``."""
    dropped: list[str] = []
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens: Field required")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise InvalidRequest("max_tokens: must be a positive integer")
    raw_messages = _messages_field(body, max_messages)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: must be a boolean")

    walk = _Walk(max_images, max_image_bytes, dropped)
    messages: list[ChatMessage] = []
    system = system_text(body.get("system"), "system")
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(raw_messages):
        simple = _simple(message)
        if simple is not None:
            messages.append(simple)
        else:
            messages.extend(_message(message, f"messages.{index}", walk))

    _check_text(messages, max_text_chars)
    # Claude Code interrupts tool calls (unanswered calls, results for no call): repaired as on /api/chat.
    out: ChatCompletionRequest = {"model": upstream_id, "messages": pair_tool_results(messages)}
    if stream:
        out["stream"] = True
        if include_usage:
            out["stream_options"] = {"include_usage": True}
    if facts.reasoning:
        out["max_completion_tokens"] = max_tokens
    else:
        out["max_tokens"] = max_tokens
    _sampling(body, facts, out, dropped)
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("stop_sequences: must be an array of strings")
        if stop and facts.reasoning:
            dropped.append("stop_sequences")  # reasoning models refuse 'stop'
        elif stop:
            if len(stop) > OPENAI_MAX_STOP_SEQUENCES:  # OpenAI refuses more; /api/chat cuts them alike
                dropped.append(f"stop_sequences (beyond the first {OPENAI_MAX_STOP_SEQUENCES})")
                stop = stop[:OPENAI_MAX_STOP_SEQUENCES]
            out["stop"] = stop
    tools = _tools(body.get("tools"), dropped)
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), out)
    think = _think(body, facts, dropped)
    # What the family accepts, for reasoning models only: as /api/chat sends it for the same think.
    effort = effort_for(upstream_id, think) if facts.reasoning else None
    if effort is not None:
        out["reasoning_effort"] = effort
    return MessagesPlan(out, stream, tuple(dropped), emit_thinking=think is not False)


def system_text(value: Any, where: str) -> str:
    """``system`` as a string or an array of text blocks (joined by blank lines); cache_control ignored."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: must be a string or an array of text blocks")
    texts: list[str] = []
    for index, block in enumerate(value):
        if (
            not isinstance(block, dict)
            or block.get("type") != "text"
            or not isinstance(block.get("text"), str)
        ):
            raise InvalidRequest(f"{where}.{index}: expected a text block")
        texts.append(block["text"])
    return "\n\n".join(texts)


def _check_text(messages: list[ChatMessage], limit: int) -> None:
    """The text bound /api/chat and /v1/responses apply (``max_text_chars``, all messages together): texts,
    documents, tool results and tool-call arguments, counted as they go upstream."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(part["text"]) for part in content if part["type"] == "text")
        for call in message.get("tool_calls", ()):
            chars += len(call["function"]["arguments"])
    if chars > limit:
        raise TooLarge(f"messages are too long (limit {limit} characters in all)")


def _messages_field(body: dict[str, Any], max_messages: int) -> list[Any]:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: must be an array")
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    if len(messages) > max_messages:
        raise TooLarge(f"messages: too many messages (limit {max_messages})")
    return messages


class _Walk:
    """What translating the messages accumulates: the images (bounded) and what had to be skipped."""

    __slots__ = ("dropped", "images", "max_image_bytes", "max_images")

    def __init__(self, max_images: int, max_image_bytes: int, dropped: list[str]) -> None:
        self.images = 0
        self.max_images = max_images
        self.max_image_bytes = max_image_bytes
        self.dropped = dropped

    def add_image(self, data: str | None, where: str) -> None:
        """Count an image (``data``: its base64 text, None for a URL) against the limits /api/chat applies."""
        self.images += 1
        if self.images > self.max_images:
            raise TooLarge(f"too many images (limit {self.max_images} per request)")
        if data is not None and len(data) * 3 // 4 > self.max_image_bytes:
            raise TooLarge(f"{where} is too large (limit {self.max_image_bytes} bytes)")

    def skip(self, what: str) -> None:
        """A block with no equivalent upstream, left out as Ollama leaves it out (named once, for a warning).
        Failing instead would fail every later turn too: Claude Code resends the whole history."""
        if what not in self.dropped:
            self.dropped.append(what)


def _simple(message: Any) -> ChatMessage | None:
    """The common turn, a string or a single text block, without the general path's bookkeeping (None: not
    that shape; the general path then checks and translates it)."""
    if type(message) is not dict:
        return None
    role = message.get("role")
    if role != "user" and role != "assistant":
        return None
    content = message.get("content")
    if type(content) is str:
        return {"role": role, "content": content}
    if type(content) is list and len(content) == 1:
        block = content[0]
        if type(block) is dict and block.get("type") == "text":
            text = block.get("text")
            if type(text) is str:
                return {"role": role, "content": text}
    return None


def _message(message: Any, where: str, walk: _Walk) -> list[ChatMessage]:
    """One Anthropic message -> one or more chat messages (tool results become ``role: tool`` messages)."""
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where}: must be an object")
    role = message.get("role")
    content = message.get("content")
    if role == "system":  # Claude Code sends these inside messages
        return [{"role": "system", "content": system_text(content, f"{where}.content")}]
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{where}.role: must be 'user', 'assistant' or 'system', got {role!r}")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: must be a string or an array of content blocks")
    if role == "assistant":
        return [_assistant(content, f"{where}.content", walk)]
    return _user(content, f"{where}.content", walk)


def _assistant(blocks: list[Any], where: str, walk: _Walk) -> ChatMessage:
    """Text and tool_use blocks; earlier thinking is not sent back (chat completions has no place for it)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(blocks):
        kind = _block_type(block, f"{where}.{index}")
        if kind == "text":
            texts.append(_str_field(block, "text", f"{where}.{index}"))
        elif kind == "tool_use":
            call_id = _str_field(block, "id", f"{where}.{index}")
            name = _str_field(block, "name", f"{where}.{index}")
            arguments = block.get("input", {})
            if not isinstance(arguments, dict):
                raise InvalidRequest(f"{where}.{index}.input: must be an object")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
                }
            )
        elif kind in ("thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result"):
            continue
        else:
            walk.skip(_UNKNOWN_BLOCK)
    # No text and no calls (a turn of thinking only): an empty string, since chat completions refuses null.
    out: ChatMessage = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        out["tool_calls"] = calls
    return out


def _user(blocks: list[Any], where: str, walk: _Walk) -> list[ChatMessage]:
    """Tool results first (chat completions wants them right after the calls), then the rest as one."""
    results: list[ChatMessage] = []
    parts: list[ContentPart] = []
    for index, block in enumerate(blocks):
        at = f"{where}.{index}"
        kind = _block_type(block, at)
        if kind == "text":
            parts.append({"type": "text", "text": _str_field(block, "text", at)})
        elif kind == "image":
            parts.append(_image(block.get("source"), f"{at}.source", walk))
        elif kind == "document":
            document = _document(block, at, walk)
            if document is not None:
                parts.append({"type": "text", "text": document})
        elif kind == "tool_result":
            text, extra = _tool_result(block, at, walk)
            results.append(
                {"role": "tool", "tool_call_id": _str_field(block, "tool_use_id", at), "content": text}
            )
            parts.extend(extra)
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:  # search_result, container_upload and types newer than this code
            walk.skip(_UNKNOWN_BLOCK)
    if not parts and not results:
        results.append({"role": "user", "content": ""})  # an empty turn stays a turn
    elif parts:
        if len(parts) == 1 and parts[0]["type"] == "text":
            results.append({"role": "user", "content": parts[0]["text"]})
        else:
            results.append({"role": "user", "content": parts})
    return results


def _tool_result(block: dict[str, Any], where: str, walk: _Walk) -> tuple[str, list[ContentPart]]:
    """The result's text (``is_error`` marked), and its images, which go to the user message after it."""
    content = block.get("content", "")
    texts: list[str] = []
    extra: list[ContentPart] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for index, item in enumerate(content):
            at = f"{where}.content.{index}"
            kind = _block_type(item, at)
            if kind == "text":
                texts.append(_str_field(item, "text", at))
            elif kind == "image":
                extra.append(_image(item.get("source"), f"{at}.source", walk))
            elif kind == "document":
                document = _document(item, at, walk)
                if document is not None:
                    texts.append(document)
            else:  # newer result blocks (tool_reference, search_result...): their JSON is the closest text
                texts.append(orjson.dumps(item).decode())
    elif content is not None:
        raise InvalidRequest(f"{where}.content: must be a string or an array of content blocks")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return text, extra


def _image(source: Any, where: str, walk: _Walk) -> ImagePart:
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}: must be an object")
    kind = source.get("type")
    if kind == "base64":
        media_type = _str_field(source, "media_type", where)
        if media_type not in _IMAGE_TYPES:
            raise InvalidRequest(f"{where}.media_type: must be one of {', '.join(sorted(_IMAGE_TYPES))}")
        data = _str_field(source, "data", where)
        walk.add_image(data, f"{where}.data")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if kind == "url":
        walk.add_image(None, where)
        return {"type": "image_url", "image_url": {"url": _str_field(source, "url", where)}}
    raise InvalidRequest(f"{where}.type: image sources are 'base64' or 'url', got {kind!r}")


def _document(block: dict[str, Any], where: str, walk: _Walk) -> str | None:
    """A document as text: plain-text and content sources pass; a PDF or URL cannot go upstream (None:
    skipped, as Ollama skips it)."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: must be an object")
    kind = source.get("type")
    title = block.get("title")
    prefix = f"{title}\n\n" if isinstance(title, str) and title else ""
    if kind == "text":
        return prefix + _str_field(source, "data", f"{where}.source")
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return prefix + content
        if isinstance(content, list):
            return prefix + "\n".join(
                _str_field(b, "text", f"{where}.source.content.{i}")
                for i, b in enumerate(content)
                if isinstance(b, dict) and b.get("type") == "text"
            )
        raise InvalidRequest(f"{where}.source.content: must be a string or an array of text blocks")
    if kind == "base64" and source.get("media_type") == "text/plain":
        try:
            return prefix + base64.b64decode(_str_field(source, "data", f"{where}.source")).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequest(f"{where}.source.data: not base64-encoded UTF-8 text") from None
    walk.skip(_OTHER_DOCUMENT)
    return None


def _tools(value: Any, dropped: list[str]) -> list[Tool]:
    """Client tools -> functions; Anthropic's server tools (web_search, bash_...) have no equivalent."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("tools: must be an array")
    tools: list[Tool] = []
    for index, tool in enumerate(value):
        where = f"tools.{index}"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{where}: must be an object")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            dropped.append(f"tools[{_server_tool(kind)}]")
            continue
        name = _str_field(tool, "name", where)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"{where}.input_schema: Field required (a JSON schema object)")
        # "$schema" only names the draft; some backends refuse the key. additionalProperties etc. are kept.
        parameters = {k: v for k, v in schema.items() if k != "$schema"}
        function: FunctionDefinition = {"name": name, "parameters": parameters}
        description = tool.get("description")
        if isinstance(description, str) and description:
            function["description"] = description
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any, out: ChatCompletionRequest) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidRequest("tool_choice: must be an object")
    kind = value.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = _str_field(value, "name", "tool_choice")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise InvalidRequest(f"tool_choice.type: must be 'auto', 'any', 'tool' or 'none', got {kind!r}")
    if value.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def _sampling(
    body: dict[str, Any], facts: ModelFacts, out: ChatCompletionRequest, dropped: list[str]
) -> None:
    """temperature and top_p pass (a reasoning model refuses them: dropped); top_k has no equivalent."""
    values = sampling_values(
        body, reasoning=facts.reasoning, dropped=dropped, invalid="{}: must be a number", note="{}"
    )
    if "temperature" in values:
        out["temperature"] = values["temperature"]
    if "top_p" in values:
        out["top_p"] = values["top_p"]
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k):
            raise InvalidRequest("top_k: must be an integer")
        dropped.append("top_k")


def _think(body: dict[str, Any], facts: ModelFacts, dropped: list[str]) -> bool | str | None:
    """The request's thinking as Ollama's ``think`` (for :func:`effort_for`): False for ``disabled``, which
    wins over everything as in Ollama; else ``output_config.effort``, else a level for ``budget_tokens``;
    None for the backend's default. False whatever the model (the answer's thinking is then hidden); a level
    only for reasoning models."""
    thinking = body.get("thinking")
    kind = None
    budget: int | None = None
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise InvalidRequest("thinking: must be an object")
        kind = thinking.get("type")
        if kind not in ("enabled", "disabled", "adaptive"):
            raise InvalidRequest(f"thinking.type: must be 'enabled', 'disabled' or 'adaptive', got {kind!r}")
        if kind == "enabled":
            raw_budget = thinking.get("budget_tokens")
            if not isinstance(raw_budget, int) or isinstance(raw_budget, bool) or raw_budget < 1:
                raise InvalidRequest("thinking.budget_tokens: must be a positive integer")
            budget = raw_budget
    effort = None
    config = body.get("output_config")
    if isinstance(config, dict) and config.get("effort") is not None:
        raw = config["effort"]
        effort = _EFFORTS.get(raw.strip().lower()) if isinstance(raw, str) else None
        if effort is None:
            raise InvalidRequest(f"output_config.effort: must be one of low, medium, high, max, got {raw!r}")
    if kind == "disabled":
        return False
    if not facts.reasoning:
        if kind in ("enabled", "adaptive") or effort is not None:
            dropped.append("thinking")
        return None
    if effort is not None:
        return effort
    if budget is not None:
        return "low" if budget < _BUDGET_LOW else "medium" if budget < _BUDGET_MEDIUM else "high"
    return None  # adaptive or absent: the backend's default effort


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """A stated estimate of the prompt's tokens: ceil(characters / 4) + 4 per message + 1600 per image.

    Characters are those of the system prompt, every text, document, tool input and tool result, and each
    tool's name, description and JSON schema; the same rule of thumb (~4 characters per token for English
    and code) Ollama and Anthropic's docs use. Malformed parts are skipped, never an error."""
    chars = 0
    images = 0
    messages = body.get("messages")
    count = len(messages) if isinstance(messages, list) else 0
    system = body.get("system")
    chars_images = _measure(system)
    chars += chars_images[0]
    images += chars_images[1]
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                c, i = _measure(message.get("content"))
                chars += c
                images += i
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict):
                chars += len(str(tool.get("name", ""))) + len(str(tool.get("description", "")))
                schema = tool.get("input_schema")
                if isinstance(schema, dict):
                    chars += len(orjson.dumps(schema))
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * count + TOKENS_PER_IMAGE * images


def _measure(content: Any) -> tuple[int, int]:
    """(characters, images) of a content value, blocks nested in tool results included."""
    if isinstance(content, str):
        return len(content), 0
    if not isinstance(content, list):
        return 0, 0
    chars = 0
    images = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "image":
            images += 1
        elif kind == "text" and isinstance(block.get("text"), str):
            chars += len(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            chars += len(block["thinking"])
        elif kind == "tool_use":
            chars += len(str(block.get("name", ""))) + len(orjson.dumps(block.get("input", {})))
        elif kind == "tool_result":
            c, i = _measure(block.get("content"))
            chars += c
            images += i
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict) and isinstance(source.get("data"), str):
                chars += len(source["data"])
    return chars, images


def _block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict):
        raise InvalidRequest(f"{where}: must be a content block object")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest(f"{where}.type: Field required")
    return kind


def _str_field(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key}: Field required (a string)")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Anthropic's server tools, by the name their versioned type starts with (web_search_20250305...).
_SERVER_TOOLS = ("web_search", "web_fetch", "bash", "text_editor", "computer", "code_execution", "memory")


def _server_tool(kind: object) -> str:
    """A dropped tool's type as a fixed word: the warned-once names must not grow with what clients send."""
    if isinstance(kind, str):
        for name in _SERVER_TOOLS:
            if kind.startswith(name):
                return name
    return "other types"
