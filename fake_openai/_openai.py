"""The OpenAI API as the fake speaks it: deterministic answers in OpenAI's exact wire format.

Answers are deterministic (token i of a reply is ``f"w{i} "``) so tests can assert exact text; validation
(and the error shapes) live in ``_validate``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import random
import re
import struct
import sys
import time
import zlib
from array import array
from typing import Any
from urllib.parse import unquote

import orjson

from . import _responses
from ._types import Answer, ContentEventBuilder, FakeConfig, FullAnswer, StreamAnswer
from ._validate import (
    CHAT_PARAMS,
    EMBEDDING_INPUT_INVALID,
    EMBEDDING_PARAMS,
    Conversation,
    ToolPlan,
    bad_json,
    check_limit,
    check_logprobs,
    check_messages,
    check_response_format,
    check_sampling,
    check_tools,
    context_exceeded,
    embedding_inputs,
    error,
    invalid_type,
    invalid_value,
    is_int,
    legacy_prompts,
    missing,
    model_not_found,
    not_allowed,
    not_found,
    samples_freely,
    unrecognized,
)

# A reasoning model (o-series, gpt-5 family) streams reasoning before content and refuses sampling knobs.
REASONING_PREFIXES: tuple[str, ...] = ("o1", "o3", "o4", "gpt-5")
# The content token the ``empty_deltas`` fault appends after the normal reply.
CONTROL_TOKEN = "c\u0001\t "
# Marks a request body that was not valid JSON (distinct from a valid JSON ``null``).
INVALID_JSON: Any = object()

# The largest embedding the fake builds (OpenAI's largest model has 3072 dimensions).
MAX_DIMENSIONS = 8192

_WORD_RE = re.compile(r"[a-z]+")
# Scripted shell use (scripts/try_codex.sh): a user message containing "[[run: CMD]]" makes the fake call
# the client's shell tool with CMD, then answer with what the command printed.
_RUN_RE = re.compile(r"\[\[run: (.+?)\]\]")
SHELL_TOOLS: tuple[str, ...] = ("exec_command", "shell_command", "shell", "local_shell")
# Realistic listing metadata for the default models: (created, owned_by).
_MODEL_META: dict[str, tuple[int, str]] = {
    "gpt-4o": (1715367049, "system"),
    "gpt-4o-mini": (1721172741, "system"),
    "gpt-4.1": (1744316542, "system"),
    "gpt-4.1-mini": (1744318173, "system"),
    "o3-mini": (1737146383, "system"),
    "o4-mini": (1744225351, "system"),
    "gpt-5": (1754425777, "system"),
    "gpt-5-mini": (1754425928, "system"),
    "text-embedding-3-small": (1705948997, "system"),
    "text-embedding-3-large": (1705953180, "system"),
    "text-embedding-ada-002": (1671217299, "openai"),
    "whisper-1": (1677532384, "openai"),
    "tts-1": (1681940951, "openai"),
    "tts-1-hd": (1699046015, "system"),
    "dall-e-3": (1698785189, "system"),
    "omni-moderation-latest": (1731689265, "system"),
    "gpt-4o-realtime-preview": (1727659998, "system"),
    "gpt-image-1": (1745517030, "system"),
}


# -- public helpers for tests ---------------------------------------------------------------------------


def expected_text(n: int) -> str:
    """The reply text for ``n`` content tokens: ``"w0 w1 ... w{n-1} "`` (each token keeps its space)."""
    return "".join(f"w{i} " for i in range(n))


def expected_reasoning(n: int = 3) -> str:
    """The reasoning text a reasoning model streams before its content."""
    return "".join(f"r{i} " for i in range(n))


def is_reasoning_model(model: str) -> bool:
    """o-series and gpt-5 family, except the non-reasoning chat snapshots (gpt-5-chat-latest)."""
    return model.startswith(REASONING_PREFIXES) and "-chat" not in model


def prompt_tokens_for(messages: list[Any]) -> int:
    """The prompt token count the fake reports: whitespace words of all message text + 3 per message."""
    total = 0
    for message in messages:
        total += 3
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(part["text"].split())
    return total


def schema_instance(schema: Any, *, all_properties: bool = False) -> Any:
    """A JSON value satisfying a (simple) JSON schema: strings are "Paris", numbers 1, booleans true.

    Tool arguments fill only required properties (``all_properties=False``); json_schema answers fill all of
    them, as strict structured outputs do. Nested objects are filled the same way, ``$ref`` to the same
    document is followed, and the first non-null branch of anyOf/oneOf/allOf is used.
    """
    if not isinstance(schema, dict):
        return {}
    return _instance(schema, schema, all_properties, 0)


def _instance(schema: Any, root: dict[str, Any], all_properties: bool, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target: Any = root
        for part in ref[1:].strip("/").split("/"):
            target = target.get(part) if isinstance(target, dict) and part else target
        return _instance(target, root, all_properties, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            chosen = next((o for o in options if not (isinstance(o, dict) and o.get("type") == "null")), None)
            return _instance(chosen if chosen is not None else options[0], root, all_properties, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "null":
        return None
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = schema.get("required")
        wanted = required if isinstance(required, list) else []
        return {
            name: _instance(sub, root, all_properties, depth + 1)
            for name, sub in properties.items()
            if all_properties or name in wanted
        }
    return "Paris"


def _scripted_command(messages: list[Any]) -> str | None:
    """The command of a ``[[run: CMD]]`` marker in the latest user message, if any."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else ""
            if isinstance(content, list):
                text = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            match = _RUN_RE.search(text)
            return match.group(1) if match else None
    return None


def _shell_arguments(schema: Any, command: str) -> dict[str, Any]:
    """Arguments for a shell tool: its first required property gets the command (a string, or an argv
    array ``["bash", "-lc", CMD]`` when the schema asks for an array), the rest what the schema needs."""
    arguments = schema_instance(schema)
    if not isinstance(arguments, dict):
        arguments = {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    required = schema.get("required") if isinstance(schema, dict) else None
    names = list(required) if isinstance(required, list) and required else list(properties or {})
    if names:
        spec = properties.get(names[0]) if isinstance(properties, dict) else None
        wants_array = isinstance(spec, dict) and spec.get("type") == "array"
        arguments[names[0]] = ["bash", "-lc", command] if wants_array else command
    return arguments


def _command_output(tool_text: str) -> str:
    """What a shell tool result says the command printed (Codex puts it after an ``Output:`` line)."""
    _, found, after = tool_text.partition("Output:")
    text = (after if found else tool_text).strip()
    return text[:500]


def expected_logprobs(n: int, top: int = 0) -> list[dict[str, Any]]:
    """The ``logprobs.content`` entries for a plain reply of ``n`` tokens with ``top`` alternatives each."""
    return [_logprob(f"w{i} ", i, top) for i in range(n)]


def _logprob(token: str, index: int, top: int) -> dict[str, Any]:
    """A deterministic logprob entry: the chosen token first, then ``alt1``... with lower logprobs."""
    value = -0.125 * (index % 8 + 1)
    entry: dict[str, Any] = {"token": token, "logprob": value, "bytes": list(token.encode())}
    alternatives = [{"token": token, "logprob": value, "bytes": list(token.encode())}]
    alternatives.extend(
        {"token": f"alt{k}", "logprob": value - k, "bytes": list(f"alt{k}".encode())} for k in range(1, top)
    )
    entry["top_logprobs"] = alternatives[:top]
    return entry


def expected_embedding(value: str | list[int], dim: int) -> list[float]:
    """The vector the fake returns for one input (a string or a token list), as float32-rounded floats."""
    return _vector(_embedding_key(value), dim).tolist()


def _embedding_key(value: str | list[int]) -> bytes:
    if isinstance(value, str):
        return b"s:" + value.encode("utf-8", "surrogatepass")
    return b"t:" + ",".join(map(str, value)).encode()


def _vector(key: bytes, dim: int) -> array[float]:
    """Deterministic, non-normalised: components have magnitudes in [1, 10) and random signs."""
    # Standard-size little-endian words, so the vectors are the same on every platform.
    words = struct.unpack(f"<{dim}I", hashlib.shake_128(key).digest(4 * dim))
    scale = 9.0 / 16777216.0
    return array("f", [(1.0 + (w & 0xFFFFFF) * scale) * (-1.0 if w & 0x80000000 else 1.0) for w in words])


def _fragments(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -- the responder --------------------------------------------------------------------------------------


def _chat_usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class OpenAIResponder:
    """Turns a validated request into an answer. Holds only per-instance randomness (ids, fingerprint)."""

    def __init__(self) -> None:
        self._rng = random.Random()
        self.fingerprint = "fp_" + "".join(self._rng.choices("0123456789abcdef", k=10))

    def new_id(self, prefix: str, length: int) -> str:
        """``prefix`` + ``length`` random letters and digits (base64 with alphanumeric altchars: fast)."""
        raw = base64.b64encode(self._rng.randbytes(length), altchars=b"Xz")
        return prefix + raw[:length].decode()

    def route(self, method: str, path: str, data: Any, cfg: FakeConfig) -> Answer:
        if path == "/v1/chat/completions":
            return self.chat(data, cfg) if method == "POST" else not_allowed(method, path, "POST")
        if path == "/v1/embeddings":
            return self.embeddings(data, cfg) if method == "POST" else not_allowed(method, path, "POST")
        if path == "/v1/completions":
            return self.completions(data, cfg) if method == "POST" else not_allowed(method, path, "POST")
        if path == "/v1/responses":  # a minimal native Responses API, for the proxy's forward mode
            return self.responses(data, cfg) if method == "POST" else not_allowed(method, path, "POST")
        if path == "/v1/models":
            return self.list_models(cfg) if method == "GET" else not_allowed(method, path, "GET")
        if path.startswith("/v1/models/") and len(path) > len("/v1/models/"):
            if method != "GET":
                return not_allowed(method, path, "GET")
            return self.get_model(unquote(path[len("/v1/models/") :]), cfg)
        return not_found(method, path)

    # -- models -----------------------------------------------------------------------------------------

    @staticmethod
    def _model_entry(model: str, cfg: FakeConfig) -> dict[str, Any]:
        if not cfg.models_have_created_owned_by:
            return {"id": model, "object": "model", "owned_by": "me", "permissions": []}
        created, owner = _MODEL_META.get(model) or (
            1700000000 + zlib.crc32(model.encode()) % 50000000,
            "system",
        )
        return {"id": model, "object": "model", "created": created, "owned_by": owner}

    def list_models(self, cfg: FakeConfig) -> FullAnswer:
        data = [self._model_entry(m, cfg) for m in cfg.models]
        return FullAnswer(200, orjson.dumps({"object": "list", "data": data}))

    def get_model(self, model: str, cfg: FakeConfig) -> FullAnswer:
        if model not in cfg.models and not cfg.answer_any_model:
            return error(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
        return FullAnswer(200, orjson.dumps(self._model_entry(model, cfg)))

    def _check_model(self, data: dict[str, Any], cfg: FakeConfig) -> FullAnswer | str:
        model = data.get("model")
        if model is None:
            return error(400, "you must provide a model parameter")
        if not isinstance(model, str):
            return invalid_type("model", "a string", model)
        if not cfg.answer_any_model and model not in cfg.models:
            return model_not_found(model)
        return model

    # -- chat -------------------------------------------------------------------------------------------

    def chat(self, data: Any, cfg: FakeConfig) -> Answer:
        if not isinstance(data, dict):
            return bad_json()
        model = self._check_model(data, cfg)
        if isinstance(model, FullAnswer):
            return model
        if cfg.reject_unknown_params and (unknown := unrecognized(data, CHAT_PARAMS)) is not None:
            return unknown
        conversation = check_messages(data.get("messages"))
        if isinstance(conversation, FullAnswer):
            return conversation
        if cfg.context_window > 0:
            prompt = prompt_tokens_for(data["messages"])
            if prompt >= cfg.context_window:
                return context_exceeded(cfg.context_window, prompt, data.get("max_tokens"), chat=True)
        stream = data.get("stream")
        if stream is not None and not isinstance(stream, bool):
            return invalid_type("stream", "a boolean", stream)
        options = data.get("stream_options")
        if options is not None:
            if not stream:
                return error(
                    400,
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options",
                )
            if not isinstance(options, dict):
                return invalid_type("stream_options", "an object", options)
        reasoning = is_reasoning_model(model)
        problem = check_sampling(data, reasoning, model)
        if problem is not None:
            return problem
        limit = check_limit(data, reasoning, model)
        if isinstance(limit, FullAnswer):
            return limit
        top = check_logprobs(data, reasoning and not samples_freely(model, data.get("reasoning_effort")))
        if isinstance(top, FullAnswer):
            return top
        tools = check_tools(data)
        if isinstance(tools, FullAnswer):
            return tools
        fmt = check_response_format(data, conversation, cfg)
        if isinstance(fmt, FullAnswer):
            return fmt

        thinks = reasoning or any(fnmatch.fnmatchcase(model, p) for p in cfg.open_reasoning_models)
        thoughts = [f"r{i} " for i in range(max(0, cfg.reasoning_tokens))] if thinks else []
        scripted = _scripted_command(data["messages"])
        calls = self._plan_calls(tools, conversation, data.get("parallel_tool_calls"), cfg, scripted)
        pieces: list[str] = []
        finish = "tool_calls"
        if not calls and scripted is not None and conversation.last_role == "tool":
            pieces = _fragments(f"The command printed: {_command_output(conversation.last_text)}")
            finish = "stop"
        elif not calls:
            pieces = self._content_pieces(cfg.tokens, fmt)
            if cfg.echo_tool_result and conversation.last_turn == "tool":
                pieces = ["tool said: ", *_fragments(conversation.tool_output)]
            finish = "stop"
            if limit is not None and limit < len(pieces):
                pieces = pieces[:limit]
                finish = "length"
        completion = len(pieces) + len(thoughts) + sum(len(frags) for _, _, frags in calls)
        usage = _chat_usage(conversation.prompt_tokens, completion, len(thoughts))
        if stream:
            include_usage = bool(options and options.get("include_usage") is True and cfg.send_usage)
            return self._chat_stream(
                model, thoughts, pieces, calls, finish, usage if include_usage else None, top
            )
        return self._chat_full(model, thoughts, pieces, calls, finish, usage, top)

    def _plan_calls(
        self,
        plan: ToolPlan,
        conversation: Conversation,
        parallel: Any,
        cfg: FakeConfig,
        scripted: str | None = None,
    ) -> list[tuple[str, str, list[str]]]:
        """The tool calls to answer with: (id, name, argument fragments); empty means answer with text."""
        if not plan.tools or plan.choice == "none":
            return []
        shell = next((t for t in plan.tools if t[0] in SHELL_TOOLS), None)
        if scripted is not None and shell is not None:  # a "[[run: CMD]]" prompt: the CLI's shell tool
            if conversation.last_role != "user":
                return []
            arguments = orjson.dumps(_shell_arguments(shell[1], scripted)).decode()
            return [(self.new_id("call_", 24), shell[0], _fragments(arguments))]
        if cfg.call_tool and plan.forced is None:  # scripted: one named tool, when offered
            if conversation.last_turn != "user" or cfg.call_tool not in {name for name, _ in plan.tools}:
                return []
            arguments = (
                cfg.call_arguments or orjson.dumps(schema_instance(dict(plan.tools)[cfg.call_tool])).decode()
            )
            return [(self.new_id("call_", 24), cfg.call_tool, _fragments(arguments))]
        if plan.forced is None and plan.choice != "required" and conversation.last_role != "user":
            return []
        if plan.forced is not None:
            chosen = [t for t in plan.tools if t[0] == plan.forced][:1]
        elif (
            len(plan.tools) >= 2
            and parallel is not False
            and "both" in _WORD_RE.findall(conversation.last_text.lower())
        ):
            chosen = plan.tools[:2]
        else:
            chosen = plan.tools[:1]
        return [
            (self.new_id("call_", 24), name, _fragments(orjson.dumps(schema_instance(params)).decode()))
            for name, params in chosen
        ]

    @staticmethod
    def _content_pieces(n: int, fmt: Any) -> list[str]:
        if fmt is None:
            return [f"w{i} " for i in range(n)]
        if fmt == "json_object":
            words = [f"w{i} " for i in range(n)]
            if words:
                words[-1] = words[-1].rstrip()
            return ['{"answer": "', *words, '"}']
        return _fragments(orjson.dumps(schema_instance(fmt[1], all_properties=True)).decode())

    def _chat_full(
        self,
        model: str,
        thoughts: list[str],
        pieces: list[str],
        calls: list[tuple[str, str, list[str]]],
        finish: str,
        usage: dict[str, Any],
        top: int | None,
    ) -> FullAnswer:
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else "".join(pieces)}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": "".join(frags)}}
                for cid, name, frags in calls
            ]
        message["refusal"] = None
        message["annotations"] = []
        body = {
            "id": self.new_id("chatcmpl-", 29),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None
                    if top is None or calls
                    else {"content": [_logprob(p, i, top) for i, p in enumerate(pieces)], "refusal": None},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": self.fingerprint,
        }
        return FullAnswer(200, orjson.dumps(body))

    def _chat_stream(
        self,
        model: str,
        thoughts: list[str],
        pieces: list[str],
        calls: list[tuple[str, str, list[str]]],
        finish: str,
        usage: dict[str, Any] | None,
        top: int | None,
    ) -> StreamAnswer:
        envelope = {
            "id": self.new_id("chatcmpl-", 29),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": self.fingerprint,
        }
        head = orjson.dumps(envelope)[:-1] + b',"choices":[{"index":0,"delta":'
        end = b',"usage":null}' if usage is not None else b"}"
        tail = b',"logprobs":null,"finish_reason":null}]' + end
        dumps = orjson.dumps

        def call_header(index: int) -> dict[str, Any]:
            cid, name, _ = calls[index]
            return {
                "index": index,
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }

        first: dict[str, Any] = {"role": "assistant", "content": None if calls else ""}
        merged_header = bool(calls) and not thoughts
        if merged_header:
            first["tool_calls"] = [call_header(0)]
        first["refusal"] = None
        events = [head + dumps(first) + tail]
        events.extend(head + dumps({"reasoning_content": t}) + tail for t in thoughts)
        content_start = len(events)
        if top is None:
            events.extend(head + dumps({"content": p}) + tail for p in pieces)
        else:
            events.extend(
                head
                + dumps({"content": p})
                + b',"logprobs":'
                + dumps({"content": [_logprob(p, i, top)], "refusal": None})
                + b',"finish_reason":null}]'
                + end
                for i, p in enumerate(pieces)
            )
        content_end = len(events)
        for index, (_, _, frags) in enumerate(calls):
            if index > 0 or not merged_header:
                events.append(head + dumps({"tool_calls": [call_header(index)]}) + tail)
            events.extend(
                head + dumps({"tool_calls": [{"index": index, "function": {"arguments": f}}]}) + tail
                for f in frags
            )
        events.append(head + b'{},"logprobs":null,"finish_reason":"' + finish.encode() + b'"}]' + end)
        if usage is not None:
            events.append(dumps({**envelope, "choices": [], "usage": usage}))
        return StreamAnswer(events, content_start, content_end, ContentEventBuilder(head, tail, "content"))

    # -- responses (non-streamed only: enough to see the proxy forward it) --------------------------------

    def responses(self, data: Any, cfg: FakeConfig) -> Answer:
        if not isinstance(data, dict):
            return bad_json()
        model = self._check_model(data, cfg)
        if isinstance(model, FullAnswer):
            return model
        plan = _responses.check(data, cfg, model, is_reasoning_model(model))
        if isinstance(plan, FullAnswer):
            return plan
        built = _responses.Built(plan, cfg, self.new_id)
        items = data["input"]
        last = items[-1] if isinstance(items, list) and items else {}
        if plan.calls:
            tool = plan.tools[0]
            arguments = orjson.dumps(schema_instance(tool.get("parameters") or {})).decode()
            built.calls = [
                (self.new_id("fc_", 48), self.new_id("call_", 24), tool["name"], _fragments(arguments))
            ]
        elif cfg.echo_tool_result and last.get("type") == "function_call_output":
            built.pieces = ["tool said: ", *_fragments(str(last["output"]))]
        else:
            built.pieces = self._content_pieces(cfg.tokens, plan.text)
            if plan.limit is not None and plan.limit - len(built.thoughts) < len(built.pieces):
                built.pieces = built.pieces[: max(0, plan.limit - len(built.thoughts))]
                built.status = "incomplete"
        words = len(orjson.dumps(items)) // 4 + 1
        if data.get("stream"):
            return _responses.stream(built, data, words)
        return _responses.full(built, data, words)

    # -- legacy completions -----------------------------------------------------------------------------

    def completions(self, data: Any, cfg: FakeConfig) -> Answer:
        if not isinstance(data, dict):
            return bad_json()
        model = self._check_model(data, cfg)
        if isinstance(model, FullAnswer):
            return model
        prompts = legacy_prompts(data.get("prompt"))
        if isinstance(prompts, FullAnswer):
            return prompts
        if cfg.context_window > 0:
            longest = max((len(p.split()) if isinstance(p, str) else len(p) for p in prompts), default=0)
            if longest >= cfg.context_window:
                return context_exceeded(cfg.context_window, longest, data.get("max_tokens", 16), chat=False)
        stream = data.get("stream")
        if stream is not None and not isinstance(stream, bool):
            return invalid_type("stream", "a boolean", stream)
        options = data.get("stream_options")
        if options is not None and not (stream and isinstance(options, dict)):
            return error(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        limit = check_limit(data, False)
        if isinstance(limit, FullAnswer):
            return limit
        pieces = [f"w{i} " for i in range(cfg.tokens)]
        finish = "stop"
        if limit is not None and limit < len(pieces):
            pieces = pieces[:limit]
            finish = "length"
        prompt_tokens = sum(len(p.split()) if isinstance(p, str) else len(p) for p in prompts)
        completion_tokens = len(pieces) * len(prompts)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        envelope = {
            "id": self.new_id("cmpl-", 29),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        if not stream:
            text = "".join(pieces)
            choices = [
                {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
                for i in range(len(prompts))
            ]
            return FullAnswer(200, orjson.dumps({**envelope, "choices": choices, "usage": usage}))
        include_usage = bool(options and options.get("include_usage") is True and cfg.send_usage)
        head = orjson.dumps(envelope)[:-1] + b',"choices":[{"text":'
        end = b',"usage":null}' if include_usage else b"}"
        events: list[bytes] = []
        builder = ContentEventBuilder(head, b',"index":0,"logprobs":null,"finish_reason":null}]' + end, None)
        content_start = 0
        for index in range(len(prompts)):
            tail = b',"index":%d,"logprobs":null,"finish_reason":null}]%b' % (index, end)
            events.extend(head + orjson.dumps(p) + tail for p in pieces)
        content_end = len(events)
        done = finish.encode()
        events.extend(
            head + b'"","index":%d,"logprobs":null,"finish_reason":"%b"}]%b' % (index, done, end)
            for index in range(len(prompts))
        )
        if include_usage:
            events.append(orjson.dumps({**envelope, "choices": [], "usage": usage}))
        return StreamAnswer(events, content_start, content_end, builder)

    # -- embeddings -------------------------------------------------------------------------------------

    def embeddings(self, data: Any, cfg: FakeConfig) -> FullAnswer:
        if not isinstance(data, dict):
            return bad_json()
        model = self._check_model(data, cfg)
        if isinstance(model, FullAnswer):
            return model
        if cfg.reject_unknown_params and (unknown := unrecognized(data, EMBEDDING_PARAMS)) is not None:
            return unknown
        if "embed" not in model.lower() and not cfg.answer_any_model:
            return error(400, "You are not allowed to generate embeddings from this model")
        raw = data.get("input")
        if raw is None:
            return missing("input")
        inputs = embedding_inputs(raw)
        if inputs is None:
            return error(400, EMBEDDING_INPUT_INVALID)
        if len(inputs) > cfg.max_embedding_inputs:
            return error(
                400,
                f"Invalid 'input': array too long. Expected an array with maximum length "
                f"{cfg.max_embedding_inputs}, but got an array with length {len(inputs)} instead.",
                param="input",
                code="array_above_max_length",
            )
        encoding = data.get("encoding_format")
        if encoding is not None and encoding not in ("float", "base64"):
            return invalid_value("encoding_format", encoding, "'float' and 'base64'")
        dim = cfg.embedding_dim
        dimensions = data.get("dimensions")
        if dimensions is not None:
            if not is_int(dimensions):
                return invalid_type("dimensions", "an integer", dimensions)
            if "ada" in model:
                return error(400, "This model does not support specifying dimensions.")
            if dimensions < 1:
                return error(
                    400,
                    f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got "
                    f"{dimensions} instead.",
                    param="dimensions",
                    code="integer_below_min_value",
                )
            if dimensions > MAX_DIMENSIONS:  # like OpenAI, which refuses more than the model's length
                return error(
                    400,
                    f"This model does not support specifying dimensions greater than {MAX_DIMENSIONS}.",
                    param="dimensions",
                )
            dim = dimensions
        items: list[dict[str, Any]] = []
        tokens = 0
        little_endian = sys.byteorder == "little"
        for index, value in enumerate(inputs):
            vector = _vector(_embedding_key(value), dim)
            tokens += max(1, len(value.split())) if isinstance(value, str) else len(value)
            embedding: Any
            if encoding == "base64":
                if not little_endian:  # pragma: no cover
                    vector.byteswap()
                embedding = base64.b64encode(vector.tobytes()).decode()
            else:
                embedding = vector.tolist()
            items.append({"object": "embedding", "index": index, "embedding": embedding})
        body = {
            "object": "list",
            "data": items,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return FullAnswer(200, orjson.dumps(body))
