"""The "responses" upstream dialect: a chat completions request -> an OpenAI Responses request, and the
Responses answer (whole or streamed) -> chat completions, so every route above stays on chat completions.

Pure functions and one small state machine; no I/O. Why: OpenAI's chat completions never return reasoning
text, the Responses API returns reasoning *summaries* when ``reasoning.summary`` is set, and those become
``reasoning_content`` here (and so Ollama's ``thinking`` downstream). The rules, with OpenAI's references,
are in docs/configuration.md ("Upstream dialect"). Chat fields the Responses API has no place for (``stop``,
``seed``, ``n`` > 1 is refused upstream anyway, penalties, ``logit_bias``) are left out and listed in
``RequestPlan.dropped``.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from falcon_ollama.translate.effort import SCALES

# Chat fields with no Responses counterpart: left out (the Responses API refuses unknown fields).
_DROPPED = ("stop", "seed", "frequency_penalty", "presence_penalty", "logit_bias", "n", "stream_options")
_PASSED = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
)


class ResponsesAnswerError(ValueError):
    """The Responses answer reported a failure (``status: failed``, an ``error`` event) or is not one."""


@dataclass(slots=True)
class RequestPlan:
    body: dict[str, Any]
    dropped: list[str] = field(default_factory=list)


def chat_to_responses(chat: dict[str, Any], *, summaries: bool = True) -> RequestPlan:
    """``chat`` (a chat completions request) as a Responses request. ``reasoning_effort`` becomes
    ``reasoning.effort``, with ``summary: "auto"`` when the model will reason (see :func:`_reasoning`)
    unless ``summaries`` is off."""
    out: dict[str, Any] = {
        "model": chat.get("model"),
        "input": _input(chat.get("messages") or []),
        "store": False,
    }
    dropped = [k for k in _DROPPED if chat.get(k) is not None]
    if chat.get("stream"):
        out["stream"] = True
    for key in _PASSED:
        if chat.get(key) is not None:
            out[key] = chat[key]
    if chat.get("user") is not None and "safety_identifier" not in out:
        out["safety_identifier"] = chat["user"]
    limit = chat.get("max_completion_tokens", chat.get("max_tokens"))
    if limit is not None:
        out["max_output_tokens"] = limit
    reasoning = _reasoning(str(chat.get("model") or ""), chat.get("reasoning_effort"), summaries)
    if reasoning:
        out["reasoning"] = reasoning
    if chat.get("tools"):
        out["tools"] = [_tool(t) for t in chat["tools"]]
    choice = chat.get("tool_choice")
    if choice is not None:
        out["tool_choice"] = (
            {"type": "function", "name": choice["function"]["name"]} if isinstance(choice, dict) else choice
        )
    text = _text_format(chat.get("response_format"))
    if text is not None:
        out["text"] = {"format": text}
    if chat.get("logprobs"):
        out["include"] = ["message.output_text.logprobs"]
        if chat.get("top_logprobs"):
            out["top_logprobs"] = chat["top_logprobs"]
    return RequestPlan(out, dropped)


def _reasoning(model: str, effort: object, summaries: bool) -> dict[str, Any]:
    """``reasoning`` for ``effort``: summaries asked for whenever the model will reason -- an effort other
    than its family's off switch, or none sent to a family that reasons by default (gpt-5 and o-series with
    ``think: true``, where the chat path sends no effort). A model of no known family gets no summary
    request (OpenAI refuses ``reasoning`` on models that do not reason)."""
    base = model.lower().rsplit("/", 1)[-1]
    scale = next((sc for pattern, sc in SCALES if fnmatch.fnmatchcase(base, pattern)), None)
    out: dict[str, Any] = {}
    if effort is not None:
        out["effort"] = effort
    thinks = effort not in (None, "none", scale.off if scale else None) or (
        effort is None and scale is not None and scale.reasons_by_default
    )
    if summaries and thinks:
        out["summary"] = "auto"
    return out


def _input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": m.get("tool_call_id", ""),
                    "output": _plain(content),
                }
            )
            continue
        if role == "assistant":
            text = _plain(content)
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "arguments": fn.get("arguments") or "{}",
                    }
                )
            continue
        # system, developer, user
        items.append({"type": "message", "role": role, "content": _parts(content)})
    return items


def _plain(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _parts(content: object) -> str | list[dict[str, Any]]:
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    parts: list[dict[str, Any]] = []
    for p in content:
        kind = p.get("type")
        if kind == "text":
            parts.append({"type": "input_text", "text": p.get("text", "")})
        elif kind == "image_url":
            image = p.get("image_url") or {}
            url = image if isinstance(image, str) else image.get("url", "")
            part: dict[str, Any] = {"type": "input_image", "image_url": url, "detail": "auto"}
            if isinstance(image, dict) and image.get("detail"):
                part["detail"] = image["detail"]
            parts.append(part)
    return parts


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function") or {}
    # The Responses API makes function tools strict by default; chat completions does not.
    out: dict[str, Any] = {
        "type": "function",
        "name": fn.get("name", ""),
        "strict": bool(fn.get("strict", False)),
    }
    if fn.get("description") is not None:
        out["description"] = fn["description"]
    out["parameters"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def _text_format(fmt: object) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        out: dict[str, Any] = {
            "type": "json_schema",
            "name": spec.get("name", "response"),
            "schema": spec.get("schema", {}),
        }
        for key in ("strict", "description"):
            if spec.get(key) is not None:
                out[key] = spec[key]
        return out
    if kind in ("json_object", "text"):
        return {"type": kind}
    return None


# --- answers ----------------------------------------------------------------------------------------------


def chat_usage(usage: object) -> dict[str, Any] | None:
    """Responses ``usage`` as chat completions ``usage``."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _finish(response: dict[str, Any], called: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if called else "stop"


def _failure(response: dict[str, Any]) -> str:
    err = response.get("error") or {}
    message = err.get("message") if isinstance(err, dict) else None
    return message if isinstance(message, str) and message else "the upstream response failed"


def response_to_chat(response: object) -> dict[str, Any]:
    """A whole Responses answer as a chat completion."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise ResponsesAnswerError("the upstream answer is not a Responses object")
    if response.get("status") == "failed":
        raise ResponsesAnswerError(_failure(response))
    text: list[str] = []
    summary: list[str] = []
    refusal: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response["output"]:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    text.append(part.get("text", ""))
                elif part.get("type") == "refusal":
                    refusal.append(part.get("refusal", ""))
        elif kind == "reasoning":
            pieces = [s.get("text", "") for s in item.get("summary") or () if s.get("type") == "summary_text"]
            if pieces:
                summary.append("\n\n".join(pieces))
        elif kind == "function_call":
            calls.append(
                {
                    "id": item.get("call_id", ""),
                    "type": "function",
                    "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if summary:
        message["reasoning_content"] = "\n\n".join(summary)
    if refusal:
        message["refusal"] = "".join(refusal)
    if calls:
        message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": response.get("id", ""),
        "object": "chat.completion",
        "created": int(response.get("created_at") or time.time()),
        "model": response.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(response, bool(calls))}],
    }
    usage = chat_usage(response.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


class ResponsesStreamToChat:
    """Responses stream events (each SSE ``data`` payload) -> chat completion chunk payloads (bytes, no SSE
    framing). ``feed`` returns the chunks one event makes (usually one, often none); a terminal event
    (``response.completed`` / ``incomplete``) yields the finish chunk and the usage chunk and sets ``done``;
    ``response.failed`` and ``error`` raise :class:`ResponsesAnswerError`."""

    __slots__ = ("_calls", "_created", "_id", "_model", "_summary_parts", "done")

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._created = 0
        self._calls: dict[str, int] = {}  # output item id -> tool call index
        self._summary_parts = 0
        self.done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return orjson.dumps(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    def feed(self, payload: bytes) -> list[bytes]:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ResponsesAnswerError("the upstream sent an event that is not JSON") from exc
        if not isinstance(event, dict):
            raise ResponsesAnswerError("the upstream sent an event that is not an object")
        kind = event.get("type")
        if kind == "response.output_text.delta":
            return [self._chunk({"content": event.get("delta", "")})]
        if kind == "response.reasoning_summary_text.delta":
            return [self._chunk({"reasoning_content": event.get("delta", "")})]
        if kind == "response.reasoning_summary_part.added":
            # Parts of one summary (and summaries of several reasoning items) are separated as the whole
            # answer joins them.
            self._summary_parts += 1
            return [self._chunk({"reasoning_content": "\n\n"})] if self._summary_parts > 1 else []
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(event.get("item_id", ""))
            if index is None:
                return []
            return [
                self._chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": event.get("delta", "")}}]}
                )
            ]
        if kind == "response.output_item.added":
            return self._item_added(event.get("item") or {})
        if kind == "response.created":
            self._start(event.get("response") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind in ("response.completed", "response.incomplete"):
            return self._end(event.get("response") or {})
        if kind == "response.failed":
            raise ResponsesAnswerError(_failure(event.get("response") or {}))
        if kind == "error":
            message = event.get("message")
            raise ResponsesAnswerError(
                message if isinstance(message, str) and message else "the upstream reported an error"
            )
        return []  # in_progress, content_part.*, *.done, refusal, and events we do not relay

    def _start(self, response: dict[str, Any]) -> None:
        self._id = str(response.get("id", ""))
        self._model = str(response.get("model", ""))
        self._created = int(response.get("created_at") or time.time())

    def _item_added(self, item: dict[str, Any]) -> list[bytes]:
        if item.get("type") != "function_call":
            return []
        index = len(self._calls)
        self._calls[str(item.get("id", ""))] = index
        call = {
            "index": index,
            "id": item.get("call_id", ""),
            "type": "function",
            "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _end(self, response: dict[str, Any]) -> list[bytes]:
        self.done = True
        out = [self._chunk({}, _finish(response, bool(self._calls)))]
        usage = chat_usage(response.get("usage"))
        if usage is not None:
            out.append(
                orjson.dumps(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        return out
