"""OpenAI chat completion answers -> Responses API objects and stream events. Pure: bytes in, bytes out.

The output items follow the upstream's order: reasoning (from ``reasoning_content``/``reasoning``, as a
summary), then the assistant message, then function calls. The stream is OpenAI's published event
sequence (``response.created`` ... ``response.completed``), each event an SSE ``event:`` + ``data:`` pair
with a ``sequence_number``; every item that is opened is closed (Codex shows nothing without
``response.output_item.done`` and fails without ``response.completed``).
"""

from __future__ import annotations

import io
import re
import secrets
import time
from typing import Any, cast

import orjson

from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.responses_types import (
    CustomToolCallItem,
    FunctionCallItem,
    IncompleteDetails,
    MessageItem,
    OutputItem,
    OutputText,
    ReasoningItem,
    ResponseObject,
    ResponseUsage,
)
from falcon_ollama.translate.chat_response import answer_choice, upstream_error_message
from falcon_ollama.translate.responses_request import ResponseShape, ToolNames
from falcon_ollama.wire import SSE_CONTENT_TYPE


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def response_object(
    response_id: str,
    model: str,
    echo: dict[str, Any],
    created_at: int,
    status: str,
    output: list[OutputItem],
    usage: ResponseUsage | None,
    incomplete: IncompleteDetails | None = None,
    error: dict[str, str] | None = None,
) -> ResponseObject:
    obj: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "usage": usage,
        **echo,
    }
    return cast(ResponseObject, obj)


def sse_event(kind: str, sequence_number: int, data: dict[str, Any]) -> bytes:
    """One Responses stream event as SSE: its ``event:`` line and its JSON with ``type`` and sequence."""
    body = {"type": kind, "sequence_number": sequence_number, **data}
    return b"".join((b"event: ", kind.encode(), b"\ndata: ", orjson.dumps(body), b"\n\n"))


def failed_event(
    model: str,
    echo: dict[str, Any],
    message: str,
    *,
    response_id: str | None = None,
    sequence: int = 0,
    clock: Any = time.time,
) -> bytes:
    """``response.failed`` closing a forwarded Responses stream that broke after its first byte: the
    upstream's ``response_id`` and the ``sequence`` number after its last event, as :class:`StreamMarks`
    read them from the relayed bytes (the openai SDK's stream helper refuses an event of another response);
    a fresh id if none was seen. What a client acts on (the type, ``response.status`` and ``response.error``)
    is what the translate mode's :meth:`ResponsesStreamTranslator.fail` sends."""
    response = response_object(
        response_id or new_id("resp"),
        model,
        echo,
        int(clock()),
        "failed",
        [],
        None,
        error={"code": "server_error", "message": message},
    )
    return sse_event("response.failed", sequence, {"response": response})


_RESPONSE_ID = re.compile(rb'"id"\s*:\s*"(resp_[^"\\]{1,200})"')
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d{1,12})')


class StreamMarks:
    """The response id and the last sequence number of a Responses stream relayed unread, taken from its
    bytes as they pass (a regular-expression search per chunk; the id only until it is found). A mark split
    between two reads is missed: the failure event then has the previous number, or a fresh id."""

    __slots__ = ("response_id", "sequence")

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.sequence = -1

    def observe(self, chunk: bytes) -> None:
        if self.response_id is None:
            found = _RESPONSE_ID.search(chunk)
            if found is not None:
                self.response_id = found.group(1).decode("ascii", "replace")
        last = None
        for last in _SEQUENCE.finditer(chunk):  # noqa: B007 -- the last one is wanted
            pass
        if last is not None:
            self.sequence = int(last.group(1))


def usage_of(raw: object, prompt_chars: int, output_chars: int) -> ResponseUsage:
    """Chat usage -> Responses usage; an estimate (characters / 4) where the upstream sent none."""
    usage = raw if isinstance(raw, dict) else {}
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int) or isinstance(prompt, bool):
        prompt = max(1, (prompt_chars + 3) // 4)
    if not isinstance(completion, int) or isinstance(completion, bool):
        completion = (output_chars + 3) // 4
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": cached if isinstance(cached, int) else 0,
            "cache_write_tokens": 0,  # the openai SDK (3.x) requires it; chat usage has no such count
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning if isinstance(reasoning, int) else 0},
        "total_tokens": prompt + completion,
    }


def _incomplete(finish_reason: object) -> IncompleteDetails | None:
    if finish_reason == "length":
        return {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return {"reason": "content_filter"}
    return None


def _call_item(
    item_id: str, call_id: str, upstream_name: str, arguments: str, names: ToolNames, status: str
) -> FunctionCallItem | CustomToolCallItem:
    """A tool call as the client declared the tool: namespace restored, custom tools as custom_tool_call."""
    if upstream_name in names.custom:
        try:
            parsed = orjson.loads(arguments) if arguments else {}
        except orjson.JSONDecodeError:
            parsed = arguments
        text = parsed.get("input") if isinstance(parsed, dict) else parsed
        custom: dict[str, Any] = {
            "id": item_id,
            "type": "custom_tool_call",
            "status": status,
            "call_id": call_id,
            "name": upstream_name,
            "input": text if isinstance(text, str) else arguments,
        }
        return cast(CustomToolCallItem, custom)
    item: dict[str, Any] = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": upstream_name,
        "arguments": arguments,
    }
    namespaced = names.namespaced.get(upstream_name)
    if namespaced is not None:
        item["namespace"], item["name"] = namespaced
    return cast(FunctionCallItem, item)


def completion_to_response(
    payload: bytes, context: ResponseShape, *, clock: Any = time.time
) -> ResponseObject:
    """A whole (non-streamed) chat completion -> the Response object."""
    names = context.names
    data, choice = answer_choice(payload)
    raw_message = choice.get("message")
    message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
    output: list[OutputItem] = []
    chars = 0
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        chars += len(reasoning)
        output.append(
            {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": reasoning}],
            }
        )
    content = message.get("content")
    incomplete = _incomplete(choice.get("finish_reason"))
    if isinstance(content, str) and content:
        chars += len(content)
        part: OutputText = {"type": "output_text", "text": content, "annotations": [], "logprobs": []}
        output.append(
            {
                "id": new_id("msg"),
                "type": "message",
                "status": "incomplete" if incomplete else "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    calls = message.get("tool_calls")
    for index, call in enumerate(calls if isinstance(calls, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        arguments = arguments if isinstance(arguments, str) else ""
        chars += len(arguments)
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else new_id("call")
        output.append(_call_item(new_id("fc"), call_id, function["name"], arguments, names, "completed"))
        del index
    status = "incomplete" if incomplete else "completed"
    usage = usage_of(data.get("usage"), context.prompt_chars, chars)
    created = int(clock())
    return response_object(
        new_id("resp"), context.model, context.echo, created, status, output, usage, incomplete
    )


# -- streaming ------------------------------------------------------------------------------------------


class _Call:
    __slots__ = ("added", "arguments", "call_id", "item_id", "name", "output_index")

    def __init__(self) -> None:
        self.call_id = ""
        self.name = ""
        self.arguments: list[str] = []
        self.item_id = new_id("fc")
        self.output_index = -1
        self.added = False


class ResponsesStreamTranslator:
    """One streamed answer as Responses events (implements translate.dialect.StreamTranslator)."""

    content_type = SSE_CONTENT_TYPE

    def __init__(self, context: ResponseShape, *, clock: Any = time.time) -> None:
        self._model = context.model
        self._echo = context.echo
        self._names = context.names
        self._prompt_chars = context.prompt_chars
        self._id = new_id("resp")
        self._created_at = int(clock())
        self._seq = 0
        self._started = False
        self._output: list[OutputItem] = []
        self._open: str | None = None  # "reasoning" or "message": the text item being streamed
        self._open_id = ""
        self._open_index = -1
        # The item's text so far: the .done events and response.completed repeat it. A StringIO holds the
        # characters only (a list of per-token str objects cost ~130 bytes a token, measured).
        self._text = io.StringIO()
        self._calls: dict[int, _Call] = {}
        self._usage: object = None
        self._finish: str | None = None
        self._chars = 0

    # -- StreamTranslator ---------------------------------------------------------------------------

    def feed(self, payload: bytes) -> bytes:
        out = self._start()
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("the upstream sent a malformed stream event (invalid JSON)") from None
        if not isinstance(event, dict):
            return out
        if event.get("error"):
            raise UpstreamProtocolError(upstream_error_message(event))
        if isinstance(event.get("usage"), dict):
            self._usage = event["usage"]
        choices = event.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return out
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._text_delta("reasoning", reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += self._text_delta("message", content)
            calls = delta.get("tool_calls")
            if isinstance(calls, list) and calls:
                out += self._call_deltas(calls)
        finish = choice.get("finish_reason")
        if finish is not None:
            self._finish = finish if isinstance(finish, str) else "stop"
        return out

    def finish(self, *, done: bool = False) -> bytes:
        # [DONE] alone does not complete this dialect's answer: it needs the finish reason.
        if self._finish is None:
            raise UpstreamProtocolError("the upstream stream ended before the answer was complete")
        # Joined once: the closing events repeat the whole text (up to four times), so every extra
        # concatenation would copy the answer again.
        parts = [self._start(), self._close_text(), self._close_calls()]
        incomplete = _incomplete(self._finish)
        usage = usage_of(self._usage, self._prompt_chars, self._chars)
        status = "incomplete" if incomplete else "completed"
        response = response_object(
            self._id, self._model, self._echo, self._created_at, status, self._output, usage, incomplete
        )
        kind = "response.incomplete" if incomplete else "response.completed"
        parts.append(self._event(kind, {"response": response}))
        return b"".join(parts)

    def fail(self, message: str) -> bytes:
        response = response_object(
            self._id,
            self._model,
            self._echo,
            self._created_at,
            "failed",
            self._output,
            None,
            error={"code": "server_error", "message": message},
        )
        return self._start() + self._event("response.failed", {"response": response})

    def counts(self) -> tuple[int | None, int | None]:
        usage = usage_of(self._usage, self._prompt_chars, self._chars)
        return usage["input_tokens"], usage["output_tokens"]

    # -- events -------------------------------------------------------------------------------------

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        out = sse_event(kind, self._seq, data)
        self._seq += 1
        return out

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = response_object(
            self._id, self._model, self._echo, self._created_at, "in_progress", [], None
        )
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _text_delta(self, kind: str, text: str) -> bytes:
        out = b""
        self._chars += len(text)
        if self._open != kind:
            out += self._close_text() + self._close_calls()
            out += self._open_text(kind)
        self._text.write(text)
        ids = {"item_id": self._open_id, "output_index": self._open_index}
        if kind == "reasoning":
            return out + self._event(
                "response.reasoning_summary_text.delta", {**ids, "summary_index": 0, "delta": text}
            )
        return out + self._event(
            "response.output_text.delta", {**ids, "content_index": 0, "delta": text, "logprobs": []}
        )

    def _open_text(self, kind: str) -> bytes:
        self._open = kind
        self._open_index = len(self._output) + self._reserved()
        self._text = io.StringIO()
        if kind == "reasoning":
            self._open_id = new_id("rs")
            item: dict[str, Any] = {"id": self._open_id, "type": "reasoning", "summary": []}
            ids = {"item_id": self._open_id, "output_index": self._open_index}
            return self._event(
                "response.output_item.added", {"output_index": self._open_index, "item": item}
            ) + self._event(
                "response.reasoning_summary_part.added",
                {**ids, "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
            )
        self._open_id = new_id("msg")
        item = {
            "id": self._open_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        ids = {"item_id": self._open_id, "output_index": self._open_index}
        return self._event(
            "response.output_item.added", {"output_index": self._open_index, "item": item}
        ) + self._event(
            "response.content_part.added",
            {**ids, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
        )

    def _reserved(self) -> int:
        """Output slots taken by calls already announced but not yet in ``_output``."""
        return sum(1 for c in self._calls.values() if c.added)

    def _close_text(self) -> bytes:
        if self._open is None:
            return b""
        text = self._text.getvalue()
        ids = {"item_id": self._open_id, "output_index": self._open_index}
        if self._open == "reasoning":
            summary = {"type": "summary_text", "text": text}
            reasoning: ReasoningItem = {
                "id": self._open_id,
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": text}],
            }
            out = b"".join(
                [
                    self._event(
                        "response.reasoning_summary_text.done", {**ids, "summary_index": 0, "text": text}
                    ),
                    self._event(
                        "response.reasoning_summary_part.done", {**ids, "summary_index": 0, "part": summary}
                    ),
                    self._event(
                        "response.output_item.done", {"output_index": self._open_index, "item": reasoning}
                    ),
                ]
            )
            self._output.append(reasoning)
        else:
            part: OutputText = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            status = "incomplete" if self._finish == "length" else "completed"
            message: MessageItem = {
                "id": self._open_id,
                "type": "message",
                "status": status,  # type: ignore[typeddict-item]
                "role": "assistant",
                "content": [part],
            }
            out = b"".join(
                [
                    self._event(
                        "response.output_text.done", {**ids, "content_index": 0, "text": text, "logprobs": []}
                    ),
                    self._event("response.content_part.done", {**ids, "content_index": 0, "part": part}),
                    self._event(
                        "response.output_item.done", {"output_index": self._open_index, "item": message}
                    ),
                ]
            )
            self._output.append(message)
        self._open = None
        self._text = io.StringIO()
        return out

    def _call_deltas(self, fragments: list[Any]) -> bytes:
        out = self._close_text()
        for fragment in fragments:
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index")
            if not isinstance(index, int) or isinstance(index, bool):
                index = max(self._calls, default=-1) + (1 if fragment.get("id") else 0)
                index = max(index, 0)
            call = self._calls.get(index)
            if call is None:
                call = self._calls[index] = _Call()
            if isinstance(fragment.get("id"), str) and fragment["id"] and not call.call_id:
                call.call_id = fragment["id"]
            function = fragment.get("function")
            if not isinstance(function, dict):
                continue
            name = function.get("name")
            if isinstance(name, str) and name and not call.name:
                call.name = name
            arguments = function.get("arguments")
            if isinstance(arguments, dict):
                arguments = orjson.dumps(arguments).decode()
            piece = arguments if isinstance(arguments, str) else ""
            self._chars += len(piece)
            if not call.added and call.name:
                out += self._add_call(call)
            call.arguments.append(piece)
            if call.added and piece and call.name not in self._names.custom:
                out += self._event(
                    "response.function_call_arguments.delta",
                    {"item_id": call.item_id, "output_index": call.output_index, "delta": piece},
                )
        return out

    def _add_call(self, call: _Call) -> bytes:
        call.output_index = len(self._output) + self._reserved()
        call.added = True
        if not call.call_id:
            call.call_id = new_id("call")
        item = _call_item(call.item_id, call.call_id, call.name, "", self._names, "in_progress")
        out = self._event("response.output_item.added", {"output_index": call.output_index, "item": item})
        if call.arguments and call.name not in self._names.custom:  # fragments that came before the name
            out += self._event(
                "response.function_call_arguments.delta",
                {
                    "item_id": call.item_id,
                    "output_index": call.output_index,
                    "delta": "".join(call.arguments),
                },
            )
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.added:
                if not call.name:
                    continue  # a fragment with no function name at all: nothing a client could run
                out += self._add_call(call)
            arguments = "".join(call.arguments)
            item = _call_item(call.item_id, call.call_id, call.name, arguments, self._names, "completed")
            ids = {"item_id": call.item_id, "output_index": call.output_index}
            if item["type"] == "custom_tool_call":
                text = item["input"]
                out += self._event("response.custom_tool_call_input.delta", {**ids, "delta": text})
                out += self._event("response.custom_tool_call_input.done", {**ids, "input": text})
            else:
                done: dict[str, Any] = {**ids, "arguments": arguments, "name": item["name"]}
                out += self._event("response.function_call_arguments.done", done)
            out += self._event("response.output_item.done", {"output_index": call.output_index, "item": item})
            self._output.append(item)
        self._calls.clear()
        return out
