"""OpenAI ``/v1/completions`` <-> Ollama ``/api/generate``, as Ollama's CompletionsMiddleware does it. Pure.

Ollama serves ``/v1/completions`` for every model by turning the request into a generate request and each
generate reply into a ``text_completion``; so do we. The generate request then takes our ``/api/generate``
path: a chat model answers through the upstream's chat completions (OpenAI's legacy ``/v1/completions``
refuses every chat model with a 404), and a ``suffix`` for a model marked ``insert`` goes to the upstream's
``/v1/completions`` as fill-in-the-middle.
"""

from __future__ import annotations

from typing import Any

import orjson

from falcon_ollama.errors import InvalidRequest
from falcon_ollama.wire import openai_error

# Every field Ollama's CompletionRequest reads; the others (n, echo, best_of, logit_bias, user…) are ignored,
# as Ollama ignores them.
_OPTION_FIELDS = (
    ("max_tokens", "num_predict"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("seed", "seed"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
)
_DONE_EVENT = b"data: [DONE]\n\n"


def completion_to_generate(body: dict[str, Any]) -> dict[str, Any]:
    """A ``/v1/completions`` body as the ``/api/generate`` body that asks the same (FromCompleteRequest)."""
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidRequest("invalid type for 'prompt' field: expected a string")
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise InvalidRequest("invalid type for 'suffix' field: expected a string")
    options: dict[str, Any] = {}
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        for item in stop:
            if not isinstance(item, str):
                raise InvalidRequest(f"invalid type for 'stop' field: {_json_type(item)}")
        options["stop"] = stop
    for field, option in _OPTION_FIELDS:
        value = body.get(field)
        if value is not None:
            options[option] = value
    out: dict[str, Any] = {
        "model": body.get("model"),
        "prompt": prompt or "",
        "options": options,
        "stream": body.get("stream") is True,
    }
    if suffix:
        out["suffix"] = suffix
    logprobs = body.get("logprobs")
    if isinstance(logprobs, int) and not isinstance(logprobs, bool) and logprobs > 0:
        out["logprobs"] = True
        out["top_logprobs"] = logprobs
    return out


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"  # Go's name for a JSON number, as Ollama's message gives it
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "<nil>"


class CompletionReplies:
    """One request's generate replies as OpenAI completions: the id and time every chunk repeats."""

    __slots__ = ("_created", "_id", "_include_usage")

    def __init__(self, completion_id: str, created: int, *, include_usage: bool = False) -> None:
        self._id = completion_id
        self._created = created
        self._include_usage = include_usage

    def answer(self, reply: dict[str, Any]) -> dict[str, Any]:
        """A whole generate reply as a ``text_completion`` (ToCompletion)."""
        out = self._completion(reply)
        out["usage"] = _usage(reply)
        return out

    def events(self, lines: bytes) -> bytes:
        """NDJSON generate replies (one or more whole lines) as SSE events; the last reply ends with its
        usage (when asked for) and ``data: [DONE]``; an in-stream error line becomes OpenAI's error event."""
        out: list[bytes] = []
        for line in lines.splitlines():
            if not line:
                continue
            reply = orjson.loads(line)
            error = reply.get("error")
            if isinstance(error, str):
                out.append(b"data: " + openai_error(500, error) + b"\n\n")
                continue
            out.append(b"data: " + orjson.dumps(self._completion(reply)) + b"\n\n")
            if reply.get("done"):
                if self._include_usage:
                    final = self._completion(reply)
                    final["choices"] = []
                    final["usage"] = _usage(reply)
                    out.append(b"data: " + orjson.dumps(final) + b"\n\n")
                out.append(_DONE_EVENT)
        return b"".join(out)

    def _completion(self, reply: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "text_completion",
            "created": self._created,
            "model": reply.get("model", ""),
            "system_fingerprint": "fp_ollama",
            "choices": [{"text": reply.get("response", ""), "index": 0, "finish_reason": _finish(reply)}],
        }


def _finish(reply: dict[str, Any]) -> str | None:
    return reply.get("done_reason") or None


def _usage(reply: dict[str, Any]) -> dict[str, int]:
    prompt = reply.get("prompt_eval_count") or 0
    completion = reply.get("eval_count") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
