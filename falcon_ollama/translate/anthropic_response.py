"""OpenAI chat completion answers -> Anthropic Messages answers. Pure: bytes in, bytes out.

Non-streamed: :func:`completion_to_message` builds the ``message`` object (thinking, text, tool_use blocks in
that order; tool call ids kept so the client's ``tool_result`` finds them upstream). Streamed:
:class:`MessageStream` turns each upstream chunk into Anthropic's SSE events as it arrives — ``message_start``
and ``ping`` first, one content block at a time (reasoning -> ``thinking_delta``, content -> ``text_delta``,
tool call fragments -> ``input_json_delta``), every block closed by ``content_block_stop``, then
``message_delta`` (stop_reason, usage) and ``message_stop``. Claude Code shows nothing when a block is left
open, so every path that ends a stream closes what it opened; a failure after the first byte is one
``event: error``.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from falcon_ollama.anthropic_types import (
    ContentBlock,
    ErrorResponse,
    ErrorType,
    Message,
    StopReason,
    Usage,
)
from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.translate.chat_response import (
    json_object,
    parse_tool_arguments,
    token_counts,
    token_event_chars,
)
from falcon_ollama.wire import SSE_CONTENT_TYPE

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: Any, has_tool_calls: bool) -> StopReason:
    """finish_reason -> stop_reason; OpenAI never says a stop sequence matched, so "stop" is end_turn.

    "length" is max_tokens even with tool calls, as Anthropic answers: the last call's arguments may be cut,
    and a client must not run it as if it were whole."""
    if finish_reason == "length":
        return "max_tokens"
    if has_tool_calls:
        return "tool_use"
    return _STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def usage_of(usage: Any) -> Usage:
    """OpenAI usage -> Anthropic's: cached prompt tokens are reported apart, as Anthropic counts them."""
    prompt = completion = cached = 0
    if isinstance(usage, dict):
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            cached = min(_int(details.get("cached_tokens")), prompt)
    return {
        "input_tokens": prompt - cached,
        "output_tokens": completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def completion_to_message(body: bytes, model: str, message_id: str, *, emit_thinking: bool = True) -> Message:
    """A whole chat completion -> an Anthropic ``message`` (``model`` is the name the client asked for;
    ``emit_thinking`` False for ``thinking: disabled``, whose reasoning is not shown, as on /api/chat)."""
    data = json_object(body)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("the upstream answer has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise UpstreamProtocolError("the upstream answer has no message")
    content: list[ContentBlock] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if emit_thinking and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    has_calls = False
    if isinstance(calls, list):
        for index, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise UpstreamProtocolError(f"the upstream's tool call {index} has no function")
            function = call["function"]
            raw_id = call.get("id")
            call_id = raw_id if isinstance(raw_id, str) and raw_id else f"toolu_{message_id}_{index}"
            content.append(
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": str(function.get("name") or ""),
                    "input": tool_input(function.get("arguments")),
                }
            )
            has_calls = True
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), has_calls),
        "stop_sequence": None,
        "usage": usage_of(data.get("usage")),
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    """A call's JSON-text arguments as the object Anthropic's ``input`` must be, as /api/chat reads them
    (:func:`parse_tool_arguments`): empty is ``{}``, and text that is not a JSON object (arguments cut at
    max_tokens) is kept under ``raw`` rather than losing the whole answer to a 502. The stream relays the same
    text as it came (``input_json_delta``)."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        return parse_tool_arguments(arguments)
    if arguments is None:
        return {}
    raise UpstreamProtocolError("the upstream's tool call arguments are neither JSON text nor an object")


def error_type(status: int) -> ErrorType:
    """Anthropic's error type for a status (529 is its "overloaded", which our busy 503 becomes)."""
    return _ERROR_TYPES.get(status, "api_error")


_ERROR_TYPES: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(kind: ErrorType, message: str) -> bytes:
    payload: ErrorResponse = {"type": "error", "error": {"type": kind, "message": message}}
    return orjson.dumps(payload)


def sse_event(name: bytes, payload: object) -> bytes:
    """One SSE event exactly as Anthropic frames it: ``event:`` line, ``data:`` line, blank line."""
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

BlockKind = Literal["thinking", "text", "tool_use"]


class MessageStream:
    """One streamed answer: upstream chunk payloads in, Anthropic SSE bytes out (a StreamTranslator)."""

    content_type = SSE_CONTENT_TYPE

    __slots__ = (
        "_answer_chars",
        "_block",
        "_cached",
        "_completion",
        "_emit_thinking",
        "_finish",
        "_id",
        "_index",
        "_input_estimate",
        "_model",
        "_prompt",
        "_started",
        "_token_events",
        "_tool_index",
        "_tools_seen",
        "_used_tools",
    )

    def __init__(
        self, model: str, message_id: str, input_estimate: int = 0, *, emit_thinking: bool = True
    ) -> None:
        self._model = model
        self._emit_thinking = emit_thinking  # False: the reasoning is not relayed (thinking: disabled)
        self._id = message_id
        self._input_estimate = input_estimate
        self._started = False
        self._block: BlockKind | None = None  # the open content block, if any
        self._index = -1  # Anthropic's index of the last block opened
        self._tool_index: int | None = None  # the upstream tool call index of the open tool_use block
        self._tools_seen: set[int] = set()
        self._used_tools = False
        self._finish: Any = None
        self._prompt: int | None = None
        self._completion: int | None = None
        self._cached = 0
        self._answer_chars = 0  # for the output estimate when the upstream sends no usage (llama.cpp)
        self._token_events = 0

    def feed(self, payload: bytes) -> bytes:
        data = json_object(payload)
        if "error" in data and not data.get("choices"):
            raise UpstreamProtocolError(f"the upstream reported an error mid-stream: {_error_text(data)}")
        out: list[bytes] = []
        if not self._started:
            out.append(self._start())
        usage = data.get("usage")
        if isinstance(usage, dict):
            counted = usage_of(usage)
            self._prompt = counted["input_tokens"]
            self._cached = counted["cache_read_input_tokens"]
            self._completion = counted["output_tokens"]
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if choice.get("finish_reason") is not None:
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def finish(self, *, done: bool = False) -> bytes:
        # [DONE] alone does not complete this dialect's answer: it needs the finish reason.
        if self._finish is None:
            raise UpstreamProtocolError("the upstream stream ended before the answer was complete")
        out = [b"" if self._started else self._start()]
        self._close(out)
        usage = {
            "input_tokens": self._prompt if self._prompt is not None else self._input_estimate,
            "output_tokens": self._output_tokens(),
            "cache_read_input_tokens": self._cached,
        }
        delta = {"stop_reason": stop_reason(self._finish, self._used_tools), "stop_sequence": None}
        out.append(sse_event(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(_STOP)
        return b"".join(out)

    def fail(self, message: str) -> bytes:
        return b"event: error\ndata: " + error_body("api_error", message) + b"\n\n"

    def counts(self) -> tuple[int | None, int | None]:
        """The upstream's counts, else the estimates the client was given (as /api/chat and /v1/responses)."""
        if self._prompt is not None:
            prompt: int | None = self._prompt + self._cached
        else:
            prompt = self._input_estimate or None
        return prompt, self._output_tokens()

    def _output_tokens(self) -> int:
        """The upstream's completion tokens, else /api/chat's estimate from what the stream carried."""
        if self._completion is not None:
            return self._completion
        return token_counts(None, 0, self._answer_chars, self._token_events)[1]

    def _start(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_estimate, "output_tokens": 0},
        }
        return sse_event(b"message_start", {"type": "message_start", "message": message}) + _PING

    def _delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        chars = token_event_chars(delta, delta.get("content"), reasoning, delta.get("tool_calls"))
        if chars is not None:
            self._answer_chars += chars
            self._token_events += 1
        if self._emit_thinking and isinstance(reasoning, str) and reasoning:
            self._open("thinking", out, {"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._block_delta({"type": "thinking_delta", "thinking": reasoning}))
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._open("text", out, {"type": "text", "text": ""})
            out.append(self._block_delta({"type": "text_delta", "text": content}))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    self._tool_delta(call, out)

    def _tool_delta(self, call: dict[str, Any], out: list[bytes]) -> None:
        index = call.get("index", 0)
        if not isinstance(index, int):
            raise UpstreamProtocolError("the upstream's tool call delta has no index")
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        if index != self._tool_index or self._block != "tool_use":
            if index in self._tools_seen:
                raise UpstreamProtocolError("the upstream interleaved the arguments of parallel tool calls")
            self._tools_seen.add(index)
            self._used_tools = True
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = f"toolu_{self._id}_{index}"
            name = function.get("name")
            block = {
                "type": "tool_use",
                "id": call_id,
                "name": name if isinstance(name, str) else "",
                "input": {},
            }
            self._open("tool_use", out, block, force=True)
            self._tool_index = index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(self._block_delta({"type": "input_json_delta", "partial_json": arguments}))

    def _open(self, kind: BlockKind, out: list[bytes], block: dict[str, Any], *, force: bool = False) -> None:
        if self._block == kind and not force:
            return
        self._close(out)
        self._index += 1
        self._block = kind
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        out.append(sse_event(b"content_block_start", start))

    def _close(self, out: list[bytes]) -> None:
        if self._block is None:
            return
        self._block = None
        self._tool_index = None
        out.append(sse_event(b"content_block_stop", {"type": "content_block_stop", "index": self._index}))

    def _block_delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event(
            b"content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}
        )


def _error_text(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)[:200]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
