"""Ollama ``/api/chat`` and ``/api/generate`` requests -> an OpenAI chat completion request. Pure functions.

Each rule here mirrors one line of the mapping table in docs/api.md. Validation happens on the way: a field
of the wrong type is a 400 naming it, with Ollama's own wording where Ollama has one (``think``,
``keep_alive``, ``top_logprobs``, options, capability errors).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal, cast

import orjson

from falcon_ollama.catalog_config import ModelEntry
from falcon_ollama.durations import DurationError, parse_keep_alive
from falcon_ollama.errors import InvalidRequest, TooLarge, Unsupported
from falcon_ollama.limits import Limits, check_images, check_text
from falcon_ollama.translate.chat_response import prompt_chars_of
from falcon_ollama.translate.context import decode_context
from falcon_ollama.translate.effort import effort_for
from falcon_ollama.translate.images import image_data_uri
from falcon_ollama.translate.options import map_options
from falcon_ollama.translate.rules import DEFAULT_RULES, RequestRules
from falcon_ollama.translate.tool_history import PendingCalls, unanswered_results

THINK_LEVELS = ("high", "medium", "low", "max")
JSON_INSTRUCTION = "Respond with a JSON object."
SCHEMA_INSTRUCTION = "Respond with a JSON object that conforms to this JSON schema:"


@dataclass(slots=True)
class ChatPlan:
    """Everything the resource needs to send the request and translate the answer back."""

    path: str  # "chat/completions" or "completions"
    body: dict[str, Any]
    stream: bool
    emit_thinking: bool
    logprobs: bool
    prompt_chars: int  # the whole prompt, template included (chat_response.prompt_chars_of), for estimates
    dropped: list[str] = field(default_factory=list)  # options/fields we could not honour (warned once)
    history: list[dict[str, str]] | None = None  # generate: text conversation, for the returned context
    keep_alive: float | None = None  # seconds (validated), None when the request gave none

    def json_object_fallback(self) -> dict[str, Any] | None:
        """This request in JSON mode with its schema in a system message (:func:`schema_in_json_mode`)."""
        return schema_in_json_mode(self.body)


def schema_in_json_mode(body: dict[str, Any]) -> dict[str, Any] | None:
    """A chat completion request in JSON mode with its schema stated in a system message, for an upstream that
    refuses ``response_format: json_schema`` (llama.cpp's server answers 500); None without a schema."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = orjson.dumps(fmt["json_schema"]["schema"]).decode()
    instruction = f"{SCHEMA_INSTRUCTION}\n{schema}"
    messages = list(body["messages"])
    first = messages[0] if messages else {}
    if first.get("role") == "system" and isinstance(first.get("content"), str):
        messages[0] = {**first, "content": f"{first['content']}\n\n{instruction}"}
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    return {**body, "messages": messages, "response_format": {"type": "json_object"}}


def mention_json(messages: list[dict[str, Any]]) -> None:
    """The OpenAI API refuses JSON mode unless a message mentions JSON; Ollama has no such rule, so a short
    system instruction is added (first) when no message does."""
    if not any("json" in _text_of(m).lower() for m in messages):
        messages.insert(0, {"role": "system", "content": JSON_INSTRUCTION})


@dataclass(slots=True)
class Common:
    """Fields shared by chat and generate, validated."""

    stream: bool
    keep_alive: float | None
    think: bool | str | None
    logprobs: bool
    top_logprobs: int | None


def parse_common(body: dict[str, Any]) -> Common:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("invalid value for 'stream': expected true or false")
    keep_alive: float | None = None
    if body.get("keep_alive") is not None:
        try:
            keep_alive = parse_keep_alive(body["keep_alive"])
        except DurationError as exc:
            raise InvalidRequest(str(exc)) from None
    think = body.get("think")
    if think is not None and not isinstance(think, bool) and think not in THINK_LEVELS:
        # Ollama's ThinkValue.UnmarshalJSON: an unknown level, or a value neither boolean nor string
        if isinstance(think, str):
            raise InvalidRequest(
                f"invalid think value: {orjson.dumps(think).decode()} "
                '(must be "high", "medium", "low", "max", true, or false)'
            )
        raise InvalidRequest(
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'
        )
    for flag in ("truncate", "shift"):  # Ollama's context-window switches: no upstream equivalent
        if body.get(flag) is not None and not isinstance(body[flag], bool):
            raise InvalidRequest(f"invalid value for '{flag}': expected true or false")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise InvalidRequest("invalid value for 'logprobs': expected true or false")
    return Common(stream is not False, keep_alive, think, bool(logprobs), check_top_logprobs(body))


def check_top_logprobs(body: dict[str, Any]) -> int | None:
    """``top_logprobs``, which Ollama's handlers check before anything else (the model name included)."""
    top = body.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20):
        raise InvalidRequest("top_logprobs must be between 0 and 20")
    return top


def ollama_to_openai(
    kind: Literal["chat", "generate"],
    body: dict[str, Any],
    entry: ModelEntry,
    requested: str,
    rules: RequestRules = DEFAULT_RULES,
    common: Common | None = None,
) -> ChatPlan:
    """Build the upstream request for ``/api/chat`` (messages already known to be non-empty) or
    ``/api/generate`` (prompt already known to be non-empty); ``common`` is the body's
    :func:`parse_common`, when the caller has it already."""
    if common is None:
        common = parse_common(body)
    build = _chat if kind == "chat" else _generate
    return build(body, entry, requested, common, rules)


def _chat(
    body: dict[str, Any], entry: ModelEntry, requested: str, common: Common, rules: RequestRules
) -> ChatPlan:
    check_chat(entry, requested, common)
    messages = _messages(body.get("messages"), rules.limits)
    plan = _base_plan(body, entry, requested, common, messages, rules)
    tools = _tools(body.get("tools"))
    if tools:
        if "tools" not in entry.facts.capabilities:
            raise Unsupported(f"{entry.name} does not support tools")
        plan.body["tools"] = tools
        plan.prompt_chars = prompt_chars_of(messages, tools)
    return plan


def check_raw(body: dict[str, Any]) -> None:
    """``raw`` is a boolean and excludes ``template``, ``system`` and ``context`` (Ollama checks this before
    anything else, the empty-prompt load reply included)."""
    raw = body.get("raw")
    if raw is not None and not isinstance(raw, bool):
        raise InvalidRequest("invalid value for 'raw': expected true or false")
    if raw and (body.get("template") or body.get("system") or body.get("context")):
        raise InvalidRequest("raw mode does not support template, system, or context")


def _generate(
    body: dict[str, Any], entry: ModelEntry, requested: str, common: Common, rules: RequestRules
) -> ChatPlan:
    prompt = _str_field(body, "prompt")
    check_text(prompt, "prompt", rules.limits)
    system = _str_field(body, "system")
    suffix = _str_field(body, "suffix")
    template = _str_field(body, "template")
    check_raw(body)
    context = body.get("context")
    caps = entry.facts.capabilities
    check_generate(entry, requested, common)
    dropped: list[str] = []
    if template:
        dropped.append("template")
    if suffix and "insert" not in caps:
        raise Unsupported(f"{entry.name} does not support insert")
    if suffix or prompt_only(entry.upstream_id):
        if system and not suffix:  # what a template would do with it: the system text first
            prompt = f"{system}\n\n{prompt}"
        return _completions_plan(body, entry, common, prompt, suffix, rules, dropped)

    history: list[dict[str, str]] = []
    if context:  # an empty context is no context (Ollama: len(context) > 0)
        previous = decode_context(context)
        if previous is None:
            dropped.append("context (not written by falcon-ollama)")
        else:
            history = previous
    if system:
        history = [m for m in history if m["role"] != "system"]
        history.insert(0, {"role": "system", "content": system})
    messages: list[dict[str, Any]] = [dict(m) for m in history]
    user: dict[str, Any] = {"role": "user", "content": prompt}
    images = body.get("images")
    if images:
        user["content"] = _with_images(prompt, images, rules.limits, 0)
    messages.append(user)
    plan = _base_plan(body, entry, requested, common, messages, rules)
    plan.dropped[:0] = dropped
    # Ollama returns no context in raw mode (and rejects one sent back with raw): nothing to carry.
    plan.history = None if body.get("raw") else [*history, {"role": "user", "content": prompt}]
    return plan


def _base_plan(
    body: dict[str, Any],
    entry: ModelEntry,
    requested: str,
    common: Common,
    messages: list[dict[str, Any]],
    rules: RequestRules,
) -> ChatPlan:
    facts = entry.facts
    mapped = map_options(body.get("options"), reasoning=facts.reasoning)
    out: dict[str, Any] = {"model": entry.upstream_id, "messages": messages, "stream": common.stream}
    out.update(rules.stream_options(common.stream))
    out.update(mapped.params)
    fmt = _response_format(body.get("format"), messages)
    if fmt is not None:
        out["response_format"] = fmt
    effort = _reasoning_effort(entry, common.think)
    if effort is not None:
        out["reasoning_effort"] = effort
    dropped = list(mapped.dropped)
    if common.logprobs:
        if facts.reasoning:
            dropped.append("logprobs (not supported by reasoning models)")
        else:
            out["logprobs"] = True
            if common.top_logprobs:
                out["top_logprobs"] = common.top_logprobs
    emit_thinking = common.think is not False and ("thinking" in facts.capabilities or not facts.known)
    return ChatPlan(
        path="chat/completions",
        body=out,
        stream=common.stream,
        emit_thinking=emit_thinking,
        logprobs="logprobs" in out,
        prompt_chars=prompt_chars_of(messages),
        dropped=dropped,
        keep_alive=common.keep_alive,
    )


# OpenAI's models that only the legacy /v1/completions serves (its chat completions refuses them).
PROMPT_ONLY_MODELS = ("gpt-3.5-turbo-instruct*", "davinci-002*", "babbage-002*")


def prompt_only(upstream_id: str) -> bool:
    """Whether the model takes a prompt only (the upstream's /v1/completions), not chat messages."""
    lowered = upstream_id.lower()
    return any(fnmatchcase(lowered, pattern) for pattern in PROMPT_ONLY_MODELS)


def _completions_plan(
    body: dict[str, Any],
    entry: ModelEntry,
    common: Common,
    prompt: str,
    suffix: str,
    rules: RequestRules,
    dropped: list[str],
) -> ChatPlan:
    """The upstream's ``/v1/completions``: fill-in-the-middle (``suffix``, for models the catalog marks
    ``insert``), or a prompt for a model that takes nothing else (:func:`prompt_only`)."""
    mapped = map_options(body.get("options"), reasoning=False)
    params = dict(mapped.params)
    if "max_completion_tokens" in params:
        params["max_tokens"] = params.pop("max_completion_tokens")
    out: dict[str, Any] = {
        "model": entry.upstream_id,
        "prompt": prompt,
        "stream": common.stream,
    }
    if suffix:
        out["suffix"] = suffix
    out.update(rules.stream_options(common.stream))
    out.update(params)
    return ChatPlan(
        path="completions",
        body=out,
        stream=common.stream,
        emit_thinking=False,
        logprobs=False,
        prompt_chars=len(prompt) + len(suffix),
        dropped=[*dropped, *mapped.dropped],
        keep_alive=common.keep_alive,
    )


def check_chat(entry: ModelEntry, requested: str, common: Common) -> None:
    """What Ollama's ChatHandler refuses before anything else about the model (its load reply included)."""
    if "completion" not in entry.facts.capabilities:
        raise Unsupported(f'"{requested}" does not support chat')
    _check_think(entry, requested, common)


def check_generate(entry: ModelEntry, requested: str, common: Common) -> None:
    """What Ollama's GenerateHandler refuses before anything else about the model (its load reply
    included)."""
    if "completion" not in entry.facts.capabilities:
        raise Unsupported(f'"{requested}" does not support generate')
    _check_think(entry, requested, common)


def _check_think(entry: ModelEntry, requested: str, common: Common) -> None:
    """Refused only when the model's facts are known and lack thinking: a model nothing describes (a vLLM,
    llama.cpp or OpenRouter reasoning model the catalog does not list) gets the request, and whatever
    reasoning it sends back is relayed."""
    facts = entry.facts
    if common.think not in (None, False) and facts.known and "thinking" not in facts.capabilities:
        raise Unsupported(f'"{requested}" does not support thinking')


def _reasoning_effort(entry: ModelEntry, think: bool | str | None) -> str | None:
    """Only for reasoning models, as the model's family accepts it (translate/effort.py)."""
    if not entry.facts.reasoning:
        return None
    return effort_for(entry.upstream_id, think)


def _response_format(fmt: object, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        mention_json(messages)
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        if not fmt:  # Ollama passes {} on as a schema: any JSON value, which is JSON mode
            mention_json(messages)
            return {"type": "json_object"}
        name = fmt.get("title") if isinstance(fmt.get("title"), str) else "response"
        safe_name = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))[:64] or "response"
        return {"type": "json_schema", "json_schema": {"name": safe_name, "schema": fmt, "strict": False}}
    raise InvalidRequest('invalid format: expected "json" or a valid JSON schema')


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _str_field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"invalid value for '{key}': expected a string")
    return value


def _with_images(text: str, images: object, limits: Limits, already: int) -> list[dict[str, Any]]:
    if not isinstance(images, list):
        raise InvalidRequest("invalid value for 'images': expected an array of base64 strings")
    check_images(images, limits, already)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts.extend(
        {"type": "image_url", "image_url": {"url": image_data_uri(image, i)}}
        for i, image in enumerate(images)
    )
    return parts


def synthesized_call_id(message_index: int, call_index: int, name: str) -> str:
    """A stable id for a tool call the client sent without one (same history -> same ids)."""
    digest = hashlib.sha256(f"{message_index}:{call_index}:{name}".encode()).hexdigest()[:24]
    return f"call_{digest}"


def _messages(raw: object, limits: Limits) -> list[dict[str, Any]]:
    """Ollama messages -> OpenAI messages (their text bounded by ``limits``)."""
    if not isinstance(raw, list):
        raise InvalidRequest("invalid value for 'messages': expected an array")
    if len(raw) > limits.max_messages:
        raise TooLarge(f"too many messages (limit {limits.max_messages})")
    out: list[dict[str, Any]] = []
    chars = 0
    image_count = 0
    # Tool calls the assistant made that no tool message has answered yet.
    pending = PendingCalls()
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise InvalidRequest(f"invalid value for 'messages[{i}]': expected an object")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequest(f"invalid value for 'messages[{i}].role': expected a string")
        role = role.lower()
        content = message.get("content")
        if content is None:
            content = ""
        elif not isinstance(content, str):
            raise InvalidRequest(f"invalid value for 'messages[{i}].content': expected a string")
        chars += len(content)
        if chars > limits.max_text_chars:
            raise TooLarge(f"messages are too long (limit {limits.max_text_chars} characters in all)")
        if role == "tool":
            out.append(_tool_message(message, content, pending, i))
            continue
        if pending:  # usually empty: no call per message (benchmarks/test_hot_paths.py)
            _close_unanswered(pending, out)
        converted: dict[str, Any] = {"role": role, "content": content}
        images = message.get("images")
        if images:
            converted["content"] = _with_images(content, images, limits, image_count)
            image_count += len(images) if isinstance(images, list) else 0
        if role == "assistant":
            calls = _assistant_tool_calls(message.get("tool_calls"), i)
            if calls:
                converted["tool_calls"] = calls
                pending.reset((c["id"], c["function"]["name"]) for c in calls)
            # thinking in history is dropped: the OpenAI API has no input field for it
        out.append(converted)
    _close_unanswered(pending, out)
    return out


def _close_unanswered(pending: PendingCalls, out: list[dict[str, Any]]) -> None:
    """Ollama accepts a history where a tool call got no result (an interrupted tool use); the OpenAI API
    refuses it. Each unanswered call is closed with an empty result where its result would have been."""
    out.extend(cast("list[dict[str, Any]]", unanswered_results(pending.drain())))


def _assistant_tool_calls(raw: object, message_index: int) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(f"invalid value for 'messages[{message_index}].tool_calls': expected an array")
    calls: list[dict[str, Any]] = []
    for j, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(
                f"invalid value for 'messages[{message_index}].tool_calls[{j}]': expected a function call",
            )
        name = function["name"]
        arguments = function.get("arguments")
        if arguments is None:
            arguments = {}
        arguments_text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else None
        calls.append(
            {
                "id": call_id or synthesized_call_id(message_index, j, name),
                "type": "function",
                "function": {"name": name, "arguments": arguments_text},
            }
        )
    return calls


def _tool_message(message: dict[str, Any], content: str, pending: PendingCalls, index: int) -> dict[str, Any]:
    """A tool result needs the id of the call it answers: the client's ``tool_call_id``, else the first
    unanswered call with the same ``tool_name``, else the first unanswered call. A result that answers no
    call at all cannot be sent as a tool message (the OpenAI API rejects it) and becomes a user message."""
    call_id = message.get("tool_call_id")
    name = message.get("tool_name") or message.get("name")
    chosen: str | None = None
    if isinstance(call_id, str) and call_id:
        pending.take(call_id)
        chosen = call_id
    elif pending:
        chosen = (pending.take_named(name) if isinstance(name, str) else None) or pending.take_first()
    if chosen is None:
        label = f" from {name}" if isinstance(name, str) and name else ""
        return {"role": "user", "content": f"Tool result{label}:\n{content}"}
    return {"role": "tool", "tool_call_id": chosen, "content": content}


def _tools(raw: object) -> list[dict[str, Any]]:
    """Ollama tool definitions are OpenAI's shape; drop nulls Go clients add (``"items": null``)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest("invalid value for 'tools': expected an array")
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"invalid value for 'tools[{i}]': expected a function tool")
        tools.append({"type": "function", "function": _drop_nulls(function)})
    return tools


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
