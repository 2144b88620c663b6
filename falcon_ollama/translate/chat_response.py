"""OpenAI chat completion answers -> Ollama chat/generate responses. Pure: bytes and clock readings in.

Streaming: :class:`StreamTranslator` turns each upstream SSE ``data`` payload into zero or one NDJSON line at
once (content and thinking are never held back), assembles tool-call fragments per index and emits the
complete calls (arguments as an object, ids kept) before the final chunk, and :meth:`finish` writes the
final ``done: true`` chunk with counts and durations. Upstreams that send no usage chunk (llama.cpp) still get
counts, estimated as :func:`token_counts` says. A stream that ends with neither ``finish_reason`` nor
``[DONE]`` was cut: :meth:`finish` raises instead of pretending it was complete.
``[DONE]`` is the end: the caller stops feeding at it and says so to :meth:`StreamTranslator.finish`.

What a stream keeps until its end (tool-call fragments; for ``/api/generate``, the answer's text, for
``context``) is bounded by ``max_accumulated`` (FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES): beyond it the
stream fails (an upstream protocol error) naming the setting, so a hostile upstream cannot grow a worker
without limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.sse import MAX_STREAM_ACCUMULATED_BYTES
from falcon_ollama.translate.context import context_json
from falcon_ollama.wire import NDJSON_CONTENT_TYPE, error_body, now_rfc3339

Kind = Literal["chat", "generate", "completions"]

DONE = b"[DONE]"
# The fast path for content deltas (StreamTranslator._learn): how many events may be tried as its template,
# and the string that proves a template.
_LEARN_ATTEMPTS = 3
_PROBE = "\x00falcon-ollama probe\x00"
_PROBE_JSON = orjson.dumps(_PROBE)
# finish_reason -> done_reason. Ollama reports tool calls as "stop"; it has nothing for content filtering.
_DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "function_call": "stop"}
# What a kept tool-call fragment and a new call cost beyond their text (str and list slot; the parts object),
# counted against the bound so that many empty fragments or calls cannot grow memory for free.
_FRAGMENT_COST = 64
_CALL_COST = 256
LIMIT_SETTING = "FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES"
# Token estimates for answers without usage: real tokenizers read about 4 characters of text a token, and a
# chat prompt costs its template besides (OpenAI's rule: 4 tokens a message, 3 to prime the reply), written
# here in characters so that a prompt's size stays one number (ChatPlan.prompt_chars).
CHARS_PER_TOKEN = 4
MESSAGE_TEMPLATE_CHARS = 4 * CHARS_PER_TOKEN
REPLY_PRIMING_CHARS = 3 * CHARS_PER_TOKEN


class StreamIncomplete(UpstreamProtocolError):
    """The upstream stream ended before the answer was complete."""

    def __init__(self) -> None:
        super().__init__("the upstream stream ended before the answer was complete")


@dataclass(frozen=True, slots=True)
class ReplyShape:
    """What shapes one request's Ollama reply, whole or streamed: fixed when the request is translated."""

    model: str  # the name the client asked for, echoed in every chunk
    kind: Kind
    emit_thinking: bool = False
    logprobs: bool = False
    prompt_chars: int = 0  # for the prompt token estimate when the upstream sends no usage
    history: list[dict[str, str]] | None = None  # generate: the conversation, for the returned context
    started_ns: int = 0  # the clock reading when the request arrived (durations)


def reply_chunk(
    model: str,
    kind: Kind,
    content: str = "",
    thinking: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The head of an Ollama reply chunk: model, time, and the message (chat) or response (generate).

    The caller adds ``done`` and what follows it; fields keep Ollama's order."""
    chunk: dict[str, Any] = {"model": model, "created_at": now_rfc3339()}
    if kind == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        if tool_calls:
            message["tool_calls"] = tool_calls
        chunk["message"] = message
    else:
        chunk["response"] = content
        if thinking:
            chunk["thinking"] = thinking
    return chunk


@dataclass(slots=True)
class _ToolCallParts:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Collects OpenAI tool-call fragments (streamed per ``index``, or whole) into complete calls.

    ``size`` is what the kept fragments cost (their characters plus a fixed cost per fragment and per call),
    for the caller's bound; every lookup is constant-time, so many calls cost linear time, not quadratic."""

    __slots__ = ("_by_id", "_calls", "_highest", "size")

    def __init__(self) -> None:
        self._calls: dict[int, _ToolCallParts] = {}
        self._by_id: dict[str, int] = {}  # call id -> index, for fragments without an index
        self._highest = -1  # the largest index seen
        self.size = 0

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, calls: list[Any]) -> None:
        for call in calls:
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            call_id = call.get("id") if isinstance(call.get("id"), str) else None
            if not isinstance(index, int):
                index = self._index_without_index(call_id)
            parts = self._calls.get(index)
            if parts is None:
                parts = self._calls[index] = _ToolCallParts()
                self.size += _CALL_COST
                if index > self._highest:
                    self._highest = index
            if call_id and not parts.id:
                parts.id = call_id
                self._by_id.setdefault(call_id, index)
            function = call.get("function")
            if isinstance(function, dict):
                name = function.get("name")
                if isinstance(name, str) and name and not parts.name:
                    parts.name = name  # some servers repeat the name in every fragment: keep the first
                arguments = function.get("arguments")
                if isinstance(arguments, dict):
                    arguments = orjson.dumps(arguments).decode()
                if isinstance(arguments, str):
                    parts.arguments.append(arguments)
                    self.size += len(arguments) + _FRAGMENT_COST

    def _index_without_index(self, call_id: str | None) -> int:
        """Where a fragment without ``index`` belongs: the call with its id, a new call for a new id, and
        otherwise (a continuation fragment) the call being streamed, i.e. the latest one."""
        if call_id:
            known = self._by_id.get(call_id)
            return known if known is not None else self._highest + 1
        return max(self._highest, 0)

    def calls(self) -> list[dict[str, Any]]:
        """The assembled calls in Ollama's shape (``function.index``, ``arguments`` as an object)."""
        out: list[dict[str, Any]] = []
        for position, index in enumerate(sorted(self._calls)):
            parts = self._calls[index]
            call: dict[str, Any] = {}
            if parts.id:
                call["id"] = parts.id
            call["function"] = {
                "index": position,
                "name": parts.name,
                "arguments": parse_tool_arguments("".join(parts.arguments)),
            }
            out.append(call)
        return out


def done_reason(finish_reason: object) -> str:
    return _DONE_REASONS.get(finish_reason, "stop") if isinstance(finish_reason, str) else "stop"


def upstream_error_message(payload: dict[str, Any]) -> str:
    """The message of an error object some upstreams send inside a stream (OpenRouter, vLLM)."""
    err = payload.get("error")
    if isinstance(err, dict):
        message = err.get("message")
        return message if isinstance(message, str) and message else "the upstream reported an error"
    return err if isinstance(err, str) and err else "the upstream reported an error"


def parse_tool_arguments(text: str) -> dict[str, Any]:
    """Arguments as an object (ollama-python requires a mapping). Empty -> ``{}``; a JSON value that is not
    an object is wrapped as ``{"value": ...}``; text that is not JSON (cut at max_tokens) is kept whole
    under ``{"raw": ...}`` rather than lost."""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}


class StreamTranslator:
    """Translate one streamed answer. Feed every SSE ``data`` payload; then call :meth:`finish`."""

    content_type = NDJSON_CONTENT_TYPE

    def __init__(
        self,
        shape: ReplyShape,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        max_accumulated: int = MAX_STREAM_ACCUMULATED_BYTES,
    ) -> None:
        self._model = shape.model
        self._kind: Kind = shape.kind
        kind = shape.kind
        self._emit_thinking = shape.emit_thinking
        self._logprobs = shape.logprobs
        self._started_ns = shape.started_ns
        self._prompt_chars = shape.prompt_chars
        self._history = history = shape.history
        self._clock_ns = clock_ns
        self._first_ns: int | None = None
        self._token_events = 0  # events that carried a token (text, even empty, or a tool-call fragment)
        self._answer_chars = 0  # the answer's whole text: content, reasoning (shown or not), tool arguments
        self._usage: dict[str, Any] | None = None
        self._finish_reason: str | None = None
        self.saw_done = False  # [DONE] arrived: the answer is over, whatever follows is not part of it
        self._tool_calls = ToolCallAssembler()
        self._text: list[str] | None = [] if history is not None else None
        self._max_accumulated = max_accumulated
        self._room = max_accumulated  # what may still be kept: tool-call fragments and text share the bound
        # Bytes before and after the content string of this stream's plain content deltas (see _learn).
        self._template: tuple[bytes, bytes] | None = None
        self._learn_left = 0 if kind == "completions" else _LEARN_ATTEMPTS
        # A plain text line's bytes around its time and its text: what reply_chunk + orjson would write
        # (fields in the same order, the same escaping), without building the dicts for every token.
        self._line_head = b'{"model":' + orjson.dumps(shape.model) + b',"created_at":"'
        if kind == "chat":
            self._line_text, self._line_tail = (
                b'","message":{"role":"assistant","content":',
                b'},"done":false}\n',
            )
        else:
            self._line_text, self._line_tail = b'","response":', b',"done":false}\n'

    @property
    def complete(self) -> bool:
        """Whether the upstream said the answer was over (a ``finish_reason`` or ``[DONE]``)."""
        return self.saw_done or self._finish_reason is not None

    def feed(self, payload: bytes) -> bytes:
        """One SSE data payload -> the NDJSON line(s) to send now (``b""`` when there is nothing)."""
        template = self._template
        if template is not None:
            # Fast path for the common event, a content delta shaped like one already seen (see _learn):
            # the same bytes around a different JSON string. Only that string is parsed.
            prefix, suffix = template
            if payload.startswith(prefix) and payload.endswith(suffix):
                try:
                    content = orjson.loads(payload[len(prefix) : len(payload) - len(suffix)])
                except orjson.JSONDecodeError:
                    content = None
                if isinstance(content, str):
                    if content or b'"role"' not in prefix:  # as _count: a role-only opening is no token
                        self._token_events += 1
                        self._answer_chars += len(content)
                    return self._emit(content, None, None)
        if payload == DONE:
            self.saw_done = True
            return b""
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("the upstream sent a malformed stream event (invalid JSON)") from None
        if not isinstance(event, dict):
            return b""
        if event.get("error"):
            raise UpstreamProtocolError(upstream_error_message(event))
        usage = event.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        choices = event.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return b""
        choice = choices[0]
        finish = choice.get("finish_reason")
        if finish is not None:
            self._finish_reason = finish if isinstance(finish, str) else "stop"
        if self._kind == "completions":
            text = choice.get("text")
            if isinstance(text, str):
                self._token_events += 1
                self._answer_chars += len(text)
            return self._emit(text if isinstance(text, str) else None, None, None)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return b""
        calls = delta.get("tool_calls")
        content = delta.get("content")
        thinking = delta.get("reasoning_content") or delta.get("reasoning")
        self._count(delta, content, thinking, calls)
        if calls and isinstance(calls, list):
            kept = self._tool_calls.size
            self._tool_calls.add(calls)
            self._room -= self._tool_calls.size - kept
            if self._room < 0:
                raise self._over_limit("tool-call arguments")
            if self._first_ns is None:
                self._first_ns = self._clock_ns()
        logprobs = choice.get("logprobs") if self._logprobs else None
        if (
            self._learn_left
            and finish is None
            and logprobs is None
            and not isinstance(usage, dict)
            and not calls
            and not thinking
            and isinstance(content, str)
            and content
        ):
            self._learn(payload, content)
        return self._emit(
            content if isinstance(content, str) else None,
            thinking if isinstance(thinking, str) and self._emit_thinking else None,
            logprobs,
        )

    def _count(self, delta: dict[str, Any], content: object, thinking: object, calls: object) -> None:
        """Count a delta for the estimate (:func:`token_counts`)."""
        chars = token_event_chars(delta, content, thinking, calls)
        if chars is not None:
            self._token_events += 1
            self._answer_chars += chars

    def _learn(self, payload: bytes, content: str) -> None:
        """Remember the bytes around the content string of a plain content delta (``feed``'s fast path).

        ``payload`` decoded to an event whose only effect is emitting ``content``: no error, no usage
        object, no finish reason, no logprobs wanted, no tool calls or reasoning in the delta. Upstreams
        repeat every other byte of such events within a stream (id, model, fingerprint...), so the next ones
        differ only inside the content string. The template is kept only when it is proven: the same bytes
        around a probe string must decode to this very event with only the content replaced, so a payload
        that matches it is, by construction, the same kind of event. Tried on at most a few events."""
        self._learn_left -= 1
        encoded = orjson.dumps(content)
        at = payload.find(encoded)
        if at < 0 or payload.find(encoded, at + 1) >= 0:
            return  # escaped differently by the upstream, or not unique: no template
        prefix, suffix = payload[:at], payload[at + len(encoded) :]
        try:
            probe = orjson.loads(prefix + _PROBE_JSON + suffix)
        except orjson.JSONDecodeError:
            return
        expected = orjson.loads(payload)
        expected["choices"][0]["delta"]["content"] = _PROBE
        if probe == expected:
            self._template = (prefix, suffix)
            self._learn_left = 0

    def _emit(self, content: str | None, thinking: str | None, logprobs: object) -> bytes:
        if not content and not thinking:
            return b""
        if self._first_ns is None:
            self._first_ns = self._clock_ns()
        if self._text is not None and content and self._kind != "chat":
            self._text.append(content)
            self._room -= len(content)
            if self._room < 0:
                raise self._over_limit("the answer text kept for the context")
        if not thinking and logprobs is None:  # a plain text line: the common case, written directly
            return b"".join(
                (
                    self._line_head,
                    now_rfc3339().encode(),
                    self._line_text,
                    orjson.dumps(content),
                    self._line_tail,
                )
            )
        chunk = reply_chunk(self._model, self._kind, content or "", thinking)
        chunk["done"] = False
        if logprobs is not None:
            entries = _logprob_entries(logprobs)
            if entries:
                chunk["logprobs"] = entries
        return orjson.dumps(chunk, option=orjson.OPT_APPEND_NEWLINE)

    def _over_limit(self, what: str) -> UpstreamProtocolError:
        """The error for a stream that kept more than its bound; what it kept is dropped at once."""
        self._tool_calls = ToolCallAssembler()
        self._text = None
        return UpstreamProtocolError(
            f"the upstream answer exceeds the {self._max_accumulated}-byte limit on what a stream keeps"
            f" ({LIMIT_SETTING}), reached by {what}",
        )

    def finish(self, *, done: bool = False) -> bytes:
        """The closing line(s): pending tool calls, then ``done: true`` with counts and durations.

        ``done``: the caller saw ``[DONE]``, which ends an Ollama answer even without a finish reason.
        Raises StreamIncomplete when the upstream never said the answer was over."""
        if done:
            self.saw_done = True
        if not self.complete:
            raise StreamIncomplete()
        lines = b""
        if self._tool_calls and self._kind == "chat":
            calls_chunk = reply_chunk(self._model, "chat", tool_calls=self._tool_calls.calls())
            calls_chunk["done"] = False
            lines = orjson.dumps(calls_chunk, option=orjson.OPT_APPEND_NEWLINE)
        final = reply_chunk(self._model, self._kind)
        final["done"] = True
        final["done_reason"] = done_reason(self._finish_reason)
        if self._text is not None and self._history is not None:
            final["context"] = context_json(
                [*self._history, {"role": "assistant", "content": "".join(self._text)}]
            )
        final.update(self.metrics())
        return lines + orjson.dumps(final, option=orjson.OPT_APPEND_NEWLINE)

    def fail(self, message: str) -> bytes:
        """The stream broke after the first byte: Ollama's in-stream error line."""
        return error_body(message) + b"\n"

    def counts(self) -> tuple[int, int]:
        """(prompt tokens, completion tokens): the upstream's usage, else derived counts."""
        return token_counts(self._usage, self._prompt_chars, self._answer_chars, self._token_events)

    def metrics(self) -> dict[str, int]:
        now = self._clock_ns()
        first = self._first_ns if self._first_ns is not None else now
        prompt_count, eval_count = self.counts()
        return {
            "total_duration": now - self._started_ns,
            "prompt_eval_count": prompt_count,
            "prompt_eval_duration": first - self._started_ns,
            "eval_count": eval_count,
            "eval_duration": now - first,
        }


def token_event_chars(delta: dict[str, Any], content: object, thinking: object, calls: object) -> int | None:
    """The characters a streamed delta adds to the answer, for :func:`token_counts`; None when it is not a
    token event. A token event carries text, even empty (llama.cpp sends one event a token, empty when the
    token ends no character), or tool-call fragments; the opening event that only announces the role
    (OpenAI's has ``content: ""``) is not one. Shared by every dialect's stream (Ollama's, Anthropic's)."""
    chars = (len(content) if isinstance(content, str) else 0) + (
        len(thinking) if isinstance(thinking, str) else 0
    )
    if isinstance(calls, list) and calls:
        chars += sum(_call_chars(call) for call in calls)
    elif chars == 0 and (delta.get("role") or not isinstance(content, str)):
        return None
    return chars


def token_counts(
    usage: dict[str, Any] | None, prompt_chars: int, answer_chars: int, token_events: int = 0
) -> tuple[int, int]:
    """Token counts from the upstream's usage, or estimated ones when it sent none.

    The prompt: its whole size (:func:`prompt_chars_of`, template included) / 4, at least 1. The answer: its
    whole text / 4, or the number of events that carried a token when that is more (a server that streams a
    token an event, as llama.cpp does, sends an empty delta for a token that ends no character: its text
    alone would undercount). Whole-text estimates, not one per delta, so a stream and the same answer
    unstreamed agree (docs/api.md states the tolerance)."""
    prompt = usage.get("prompt_tokens") if usage else None
    completion = usage.get("completion_tokens") if usage else None
    if not isinstance(prompt, int) or isinstance(prompt, bool):
        prompt = max(1, -(-prompt_chars // CHARS_PER_TOKEN))
    if not isinstance(completion, int) or isinstance(completion, bool):
        completion = max(token_events, -(-answer_chars // CHARS_PER_TOKEN))
    return prompt, completion


def _call_chars(call: object) -> int:
    """The characters of a tool call's arguments (or a fragment's), for estimates. Not its name: llama.cpp
    repeats the name in every fragment of a streamed call, so counting it would count it once a token."""
    function = call.get("function") if isinstance(call, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    if isinstance(arguments, dict):
        arguments = orjson.dumps(arguments).decode()
    return len(arguments) if isinstance(arguments, str) else 0


def prompt_chars_of(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """A chat prompt's size as the model reads it, in characters, for the estimate in :func:`token_counts`:
    every message's text (the text parts of multi-part content, the arguments of the tool calls it made), each
    tool's definition as JSON, and the template's cost per message and for priming the reply."""
    chars = REPLY_PRIMING_CHARS + MESSAGE_TEMPLATE_CHARS * len(messages)
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            chars += sum(_call_chars(call) for call in calls)
    if tools:
        chars += len(orjson.dumps(tools))
    return chars


def _logprob_entries(logprobs: object) -> list[dict[str, Any]] | None:
    """OpenAI ``choices[].logprobs.content`` -> Ollama's ``logprobs`` list (same per-token fields)."""
    if not isinstance(logprobs, dict):
        return None
    content = logprobs.get("content")
    if not isinstance(content, list) or not content:
        return None
    out: list[dict[str, Any]] = []
    for item in content:
        if not isinstance(item, dict):
            continue
        entry: dict[str, Any] = {"token": item.get("token", ""), "logprob": item.get("logprob", 0.0)}
        if item.get("bytes"):
            entry["bytes"] = item["bytes"]
        tops = item.get("top_logprobs")
        if isinstance(tops, list) and tops:
            entry["top_logprobs"] = [
                {k: v for k, v in t.items() if k in ("token", "logprob", "bytes") and v is not None}
                for t in tops
                if isinstance(t, dict)
            ]
        out.append(entry)
    return out


def json_object(payload: bytes) -> dict[str, Any]:
    """An upstream answer's JSON object; an upstream protocol error for anything else."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the upstream sent an invalid answer (not JSON)") from None
    if not isinstance(data, dict):
        raise UpstreamProtocolError("the upstream sent an invalid answer (not an object)")
    return data


def answer_choice(payload: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """A whole chat completion's object and its first choice; an upstream protocol error for anything
    else (not JSON, not an object, an error object, no choices). Shared by every dialect's translation."""
    data = json_object(payload)
    if data.get("error"):
        raise UpstreamProtocolError(upstream_error_message(data))
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("the upstream sent an answer without choices")
    return data, choices[0]


def completion_to_ollama(
    payload: bytes, shape: ReplyShape, *, clock_ns: Callable[[], int] = time.monotonic_ns
) -> dict[str, Any]:
    """A whole (non-streamed) upstream answer -> the single Ollama response object.

    The upstream was not streamed, so the time to the first token is unknown: ``prompt_eval_duration`` is
    left out (Ollama omits zero durations) and ``eval_duration`` is the upstream's whole answer time."""
    data, choice = answer_choice(payload)
    now = clock_ns()
    kind, started_ns, history = shape.kind, shape.started_ns, shape.history
    assembler = ToolCallAssembler()
    content: str
    thinking: str | None = None
    if kind == "completions":
        text = choice.get("text")
        content = text if isinstance(text, str) else ""
        answer_chars = len(content)
    else:
        raw_message = choice.get("message")
        message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
        text = message.get("content")
        content = text if isinstance(text, str) else ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if shape.emit_thinking and isinstance(reasoning, str) and reasoning:
            thinking = reasoning
        calls = message.get("tool_calls")
        if isinstance(calls, list) and calls:
            assembler.add(calls)
        answer_chars = len(content) + (len(reasoning) if isinstance(reasoning, str) else 0)
        answer_chars += sum(_call_chars(call) for call in calls) if isinstance(calls, list) else 0
    out = reply_chunk(shape.model, kind, content, thinking, assembler.calls())
    out["done"] = True
    out["done_reason"] = done_reason(choice.get("finish_reason"))
    if history is not None:
        out["context"] = context_json([*history, {"role": "assistant", "content": content}])
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    prompt_count, eval_count = token_counts(usage, shape.prompt_chars, answer_chars)
    out["total_duration"] = now - started_ns
    out["prompt_eval_count"] = prompt_count
    out["eval_count"] = eval_count
    out["eval_duration"] = now - started_ns
    entries = _logprob_entries(choice.get("logprobs")) if shape.logprobs else None
    if entries:
        out["logprobs"] = entries
    return out
