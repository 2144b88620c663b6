"""OpenAI Responses requests -> an OpenAI chat completion request. Pure functions.

For backends without a Responses API (llama.cpp, vLLM, the bundled fake). The server is stateless, as
Ollama's is: the whole conversation comes in ``input``; ``previous_response_id``, ``conversation`` and item
references are refused with a 400 that says so. Each rule mirrors a line of the table in docs/api.md.
Failures are domain errors (``InvalidRequest``, ``Unsupported``, ``TooLarge``) naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from falcon_ollama.catalog_config import ModelFacts
from falcon_ollama.errors import InvalidRequest, TooLarge, Unsupported
from falcon_ollama.limits import Limits
from falcon_ollama.responses_types import NAMESPACE_SEPARATOR
from falcon_ollama.translate.chat_request import mention_json, schema_in_json_mode
from falcon_ollama.translate.effort import effort_for_request
from falcon_ollama.translate.options import sampling_values
from falcon_ollama.translate.rules import DEFAULT_RULES, RequestRules
from falcon_ollama.translate.tool_history import orphan_result, unanswered_results

STATELESS = (
    "this server is stateless (like Ollama): it keeps no responses, so '{field}' cannot be used; "
    "send the whole conversation in 'input'"
)
# Hosted tools the Responses API runs on OpenAI's side; a chat completions backend has none of them.
BUILTIN_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "computer_use_preview",
        "computer",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
    }
)
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max", "ultra")  # what Ollama accepts
# What an input item of an unknown type carries that the model would need (kept, so refused): a result.
_CONTENT_KEYS = ("content", "output", "role")
# A hosted tool's call replayed in the input (Codex sends web_search_call back): skipped, as Ollama skips
# web_search_call. Any other unknown type is refused, so no input the model should read is lost unseen.
_HOSTED_CALL_ITEMS = frozenset({"web_search_call", "file_search_call", "image_generation_call"})
# Request fields accepted and not sent upstream (no chat completions equivalent, or stateful).
_IGNORED = frozenset(
    {
        "store",
        "include",
        "prompt_cache_key",
        "prompt_cache_retention",
        "metadata",
        "safety_identifier",
        "service_tier",
        "truncation",
        "stream_options",
        "top_logprobs",
        "max_tool_calls",
        "client_metadata",
    }
)


@dataclass(slots=True)
class ToolNames:
    """Upstream function names -> how the client declared them (namespace members, custom tools)."""

    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # "crm__find" -> ("crm", "find")
    custom: set[str] = field(default_factory=set)  # custom (free-form input) tools, sent as functions

    def upstream_name(self, name: str, namespace: str | None) -> str:
        return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


@dataclass(slots=True)
class ResponsesPlan:
    """The upstream request and what the answer's translation needs."""

    body: dict[str, Any]
    stream: bool
    echo: dict[str, Any]  # request fields the response object repeats
    names: ToolNames
    prompt_chars: int
    dropped: list[str] = field(default_factory=list)  # fields we could not honour (warned once)

    def json_object_fallback(self) -> dict[str, Any] | None:
        """The request in JSON mode with its schema in a system message, for an upstream that refuses
        ``json_schema`` (resources/format_fallback.py), as /api/chat's plan offers."""
        return schema_in_json_mode(self.body)

    def shape(self, model: str) -> ResponseShape:
        """What shapes the answer's translation, ``model`` being the name the client used."""
        return ResponseShape(model, self.echo, self.names, self.prompt_chars)


@dataclass(frozen=True, slots=True)
class ResponseShape:
    """What shapes one request's Response object, whole or streamed (as ReplyShape does for Ollama's)."""

    model: str  # as the client named it
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the Response object repeats
    names: ToolNames = field(default_factory=ToolNames)  # how the client declared its tools
    prompt_chars: int = 0  # the prompt's size, for the usage estimate when the upstream sends none


def responses_to_chat(
    body: dict[str, Any], facts: ModelFacts, upstream_id: str, rules: RequestRules = DEFAULT_RULES
) -> ResponsesPlan:
    """Build the chat completion request for a ``/v1/responses`` body (the model already resolved)."""
    for key in ("previous_response_id", "conversation"):
        if body.get(key) is not None:
            raise InvalidRequest(STATELESS.format(field=key))
    if body.get("background") is True:
        raise Unsupported("'background' responses need a stored response; this server is stateless")
    if "completion" not in facts.capabilities:
        raise Unsupported(f"the model {upstream_id!r} does not support generating text (an embedding model?)")
    stream = _bool(body, "stream") is True
    dropped: list[str] = []
    names = ToolNames()
    tools = _tools(body.get("tools"), names, dropped)
    messages, chars = _Messages(rules.limits, names).build(body.get("instructions"), body.get("input"))
    out: dict[str, Any] = {"model": upstream_id, "messages": messages, "stream": stream}
    out.update(rules.stream_options(stream))
    if tools:
        if "tools" not in facts.capabilities:
            raise Unsupported(f"the model {upstream_id!r} does not support tools")
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), names, dropped)
        if choice is not None:
            out["tool_choice"] = choice
        parallel = _bool(body, "parallel_tool_calls")
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    _sampling(body, facts, out, dropped)
    _reasoning(body.get("reasoning"), facts, upstream_id, out, dropped)
    fmt = _text_format(body.get("text"), dropped)
    if fmt is not None:
        out["response_format"] = fmt
        if fmt["type"] == "json_object":
            mention_json(messages)  # as /api/chat's format "json": OpenAI's JSON mode needs the word
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["user"] = user
    unknown = sorted(k for k in body if k not in _KNOWN and k not in _IGNORED)
    dropped.extend(unknown)
    return ResponsesPlan(out, stream, echo_fields(body), names, chars, dropped)


_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "max_output_tokens",
        "reasoning",
        "text",
        "user",
        "previous_response_id",
        "conversation",
        "background",
    }
)


def echo_fields(body: dict[str, Any]) -> dict[str, Any]:
    """What a Response object repeats from its request (the SDK requires tools, tool_choice and
    parallel_tool_calls); values of the wrong type are already refused, so they are copied as sent."""
    text = _dict(body.get("text"))
    fmt = text.get("format") if isinstance(text.get("format"), dict) else {"type": "text"}
    reasoning = _dict(body.get("reasoning"))
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    instructions = body.get("instructions")
    metadata = body.get("metadata")
    return {
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": body.get("max_output_tokens"),
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "text": {"format": fmt},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": tools,
        "truncation": "disabled",
        "metadata": metadata if isinstance(metadata, dict) else {},
        "user": body.get("user") if isinstance(body.get("user"), str) else None,
    }


# -- input ----------------------------------------------------------------------------------------------


class _Messages:
    """Responses input items -> chat messages, keeping tool calls next to their results."""

    def __init__(self, limits: Limits, names: ToolNames) -> None:
        self._limits = limits
        self._names = names
        self.out: list[dict[str, Any]] = []
        self._chars = 0
        self._images = 0
        # call ids of the last assistant message not answered yet (a dict: in order, each found in O(1))
        self._pending: dict[str, None] = {}

    def build(self, instructions: object, raw: object) -> tuple[list[dict[str, Any]], int]:
        if instructions is not None:
            if not isinstance(instructions, str):
                raise InvalidRequest("invalid value for 'instructions': expected a string")
            if instructions:
                self._add_text(instructions)
                self.out.append({"role": "system", "content": instructions})
        if isinstance(raw, str):
            self._add_text(raw)
            self.out.append({"role": "user", "content": raw})
        elif isinstance(raw, list):
            if len(raw) > self._limits.max_messages:
                raise TooLarge(f"too many input items (limit {self._limits.max_messages})")
            for item, where in _objects(raw, "input"):
                self._item(item, where)
            self._close_unanswered()
        elif raw is None:
            raise InvalidRequest("missing required parameter: 'input'")
        else:
            raise InvalidRequest("invalid value for 'input': expected a string or an array of items")
        if not self.out:
            raise InvalidRequest("invalid value for 'input': the conversation is empty")
        return self.out, self._chars

    def _item(self, item: dict[str, Any], where: str) -> None:
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            self._message(item, where)
        elif kind in ("function_call", "custom_tool_call"):
            self._call(item, where, custom=kind == "custom_tool_call")
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._output(item, where)
        elif kind == "reasoning":
            return  # the chat completions API has no input field for reasoning: dropped (docs/api.md)
        elif kind == "item_reference":
            raise InvalidRequest(STATELESS.format(field=f"{where} (item_reference)"))
        elif (
            isinstance(kind, str) and kind in _HOSTED_CALL_ITEMS and not any(k in item for k in _CONTENT_KEYS)
        ):
            # A hosted tool's call replayed as history (web_search_call, Codex sends them back): the message
            # that follows carries what the model saw, so it is skipped, as Ollama skips web_search_call.
            return
        else:
            raise Unsupported(f"unsupported input item type {kind!r} at '{where}'")

    def _message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(
                f"invalid value for '{where}.role': expected 'user', 'assistant', 'system' or 'developer'"
            )
        content = self._content(item.get("content"), f"{where}.content", role)
        if role == "assistant":
            text = content if isinstance(content, str) else ""
            last = self.out[-1] if self.out else None
            if self._pending and last is not None and last.get("tool_calls"):
                # An assistant message replayed between a call and its output stays in the call's message,
                # so the tool result can follow the call as chat completions requires.
                last["content"] = "\n".join(t for t in (last.get("content") or "", text) if t)
                return
            self._close_unanswered()
            self.out.append({"role": "assistant", "content": text})
            return
        self._close_unanswered()
        # "developer" is OpenAI's newer name for system; llama.cpp and older servers know only "system".
        self.out.append({"role": "system" if role == "developer" else role, "content": content})

    def _content(self, raw: object, where: str, role: str) -> str | list[dict[str, Any]]:
        if isinstance(raw, str):
            self._add_text(raw)
            return raw
        if not isinstance(raw, list):
            raise InvalidRequest(f"invalid value for '{where}': expected a string or an array of parts")
        parts: list[dict[str, Any]] = []
        for part, pw in _objects(raw, where):
            kind = part.get("type")
            if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
                text = part.get("text")
                if not isinstance(text, str):
                    raise InvalidRequest(f"invalid value for '{pw}.text': expected a string")
                self._add_text(text)
                parts.append({"type": "text", "text": text})
            elif kind == "refusal":
                text = part.get("refusal")
                if isinstance(text, str):
                    self._add_text(text)
                    parts.append({"type": "text", "text": text})
            elif kind == "input_image":
                if role not in ("user", "system", "developer"):
                    raise InvalidRequest(f"invalid value for '{pw}': images are only allowed in user input")
                parts.append(self._image(part, pw))
            elif kind == "input_file":
                raise Unsupported(f"'{pw}': file inputs are not supported by this server")
            else:
                raise InvalidRequest(f"invalid value for '{pw}.type': unsupported content part {kind!r}")
        if all(p["type"] == "text" for p in parts):
            return "".join(p["text"] for p in parts)  # plain text: every backend takes a string
        return parts

    def _image(self, part: dict[str, Any], where: str) -> dict[str, Any]:
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            if part.get("file_id") is not None:
                raise Unsupported(f"'{where}.file_id': uploaded files are not supported; send image_url")
            raise InvalidRequest(f"missing required parameter: '{where}.image_url'")
        self._images += 1
        if self._images > self._limits.max_images:
            raise TooLarge(f"too many images (limit {self._limits.max_images} per request)")
        if url.startswith("data:") and len(url) * 3 // 4 > self._limits.max_image_bytes:
            raise TooLarge(f"'{where}' is too large (limit {self._limits.max_image_bytes} bytes)")
        image: dict[str, Any] = {"url": url}
        detail = part.get("detail")
        if detail in ("auto", "low", "high"):
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}

    def _call(self, item: dict[str, Any], where: str, *, custom: bool) -> None:
        call_id = item.get("call_id")
        name = item.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"missing required parameter: '{where}.call_id'")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"missing required parameter: '{where}.name'")
        if custom:
            text = item.get("input")
            arguments = orjson.dumps({"input": text if isinstance(text, str) else ""}).decode()
        else:
            raw_args = item.get("arguments")
            arguments = raw_args if isinstance(raw_args, str) else ""
        self._add_text(arguments)
        namespace = item.get("namespace")
        upstream = self._names.upstream_name(name, namespace if isinstance(namespace, str) else None)
        call = {"id": call_id, "type": "function", "function": {"name": upstream, "arguments": arguments}}
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant" and (self._pending or not last.get("tool_calls")):
            last.setdefault("tool_calls", []).append(call)
            if not last.get("content"):
                last["content"] = None
        else:
            self._close_unanswered()
            self.out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        self._pending[call_id] = None

    def _output(self, item: dict[str, Any], where: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"missing required parameter: '{where}.call_id'")
        raw = item.get("output")
        if isinstance(raw, str):
            self._add_text(raw)
            text = raw
        elif isinstance(raw, list):
            content = self._content(raw, f"{where}.output", "tool")
            text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        else:
            raise InvalidRequest(
                f"invalid value for '{where}.output': expected a string or an array of parts"
            )
        if call_id in self._pending:
            del self._pending[call_id]
            self.out.append({"role": "tool", "tool_call_id": call_id, "content": text})
            return
        # A result for a call this history does not contain: chat completions refuses an orphan tool message.
        self._close_unanswered()
        self.out.append(cast("dict[str, Any]", orphan_result(call_id, text)))

    def _close_unanswered(self) -> None:
        """Chat completions refuses a tool call left without a result; an empty result closes it."""
        self.out.extend(cast("list[dict[str, Any]]", unanswered_results(self._pending)))
        self._pending.clear()

    def _add_text(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > self._limits.max_text_chars:
            raise TooLarge(f"input is too long (limit {self._limits.max_text_chars} characters in all)")


# -- tools and options ----------------------------------------------------------------------------------


def _tools(raw: object, names: ToolNames, dropped: list[str]) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest("invalid value for 'tools': expected an array")
    out: list[dict[str, Any]] = []
    for tool, where in _objects(raw, "tools"):
        kind = tool.get("type")
        if kind == "namespace":
            namespace = tool.get("name")
            members = tool.get("tools")
            if not isinstance(namespace, str) or not namespace or not isinstance(members, list):
                raise InvalidRequest(f"invalid value for '{where}': a namespace needs a name and tools")
            for member, member_where in _objects(members, f"{where}.tools"):
                out.append(_function(member, member_where, names, namespace))
        elif kind in ("function", "custom"):
            out.append(_function(tool, where, names, None))
        elif isinstance(kind, str) and (kind in BUILTIN_TOOLS or kind.startswith("web_search")):
            dropped.append(f"tools: {_hosted(kind)} (a hosted tool; this backend has none)")
        else:
            raise InvalidRequest(f"invalid value for '{where}.type': unsupported tool type {kind!r}")
    return out


def _hosted(kind: object) -> str:
    """A hosted tool's type as a fixed word: the warned-once names must not grow with what clients send."""
    if isinstance(kind, str) and kind.startswith("web_search"):
        return "web_search"
    return kind if isinstance(kind, str) and kind in BUILTIN_TOOLS else "another type"


def _function(tool: dict[str, Any], where: str, names: ToolNames, namespace: str | None) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"missing required parameter: '{where}.name'")
    upstream = names.upstream_name(name, namespace)
    if namespace:
        names.namespaced[upstream] = (namespace, name)
    function: dict[str, Any] = {"name": upstream}
    description = tool.get("description")
    if isinstance(description, str) and description:
        function["description"] = description
    if tool.get("type") == "custom":
        # A free-form tool (Codex's apply_patch): one string argument, restored as a custom_tool_call.
        names.custom.add(upstream)
        function["parameters"] = {
            "type": "object",
            "properties": {"input": {"type": "string", "description": "The tool's free-form input."}},
            "required": ["input"],
        }
        return {"type": "function", "function": function}
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest(f"invalid value for '{where}.parameters': expected an object")
    function["parameters"] = parameters if parameters else {"type": "object", "properties": {}}
    strict = tool.get("strict")
    if isinstance(strict, bool):
        function["strict"] = strict
    return {"type": "function", "function": function}


def _tool_choice(raw: object, names: ToolNames, dropped: list[str]) -> str | dict[str, Any] | None:
    if raw is None or raw in ("auto", "none", "required"):
        return raw
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind in ("function", "custom") and isinstance(raw.get("name"), str):
            namespace = raw.get("namespace")
            name = names.upstream_name(raw["name"], namespace if isinstance(namespace, str) else None)
            return {"type": "function", "function": {"name": name}}
        if kind == "allowed_tools":
            mode = raw.get("mode")
            dropped.append("tool_choice: allowed_tools (all declared tools stay allowed)")
            return "required" if mode == "required" else "auto"
        dropped.append(f"tool_choice: {_hosted(kind)} (a hosted tool)")
        return None
    raise InvalidRequest("invalid value for 'tool_choice': expected 'auto', 'none', 'required' or an object")


def _sampling(body: dict[str, Any], facts: ModelFacts, out: dict[str, Any], dropped: list[str]) -> None:
    out.update(
        sampling_values(
            body,
            reasoning=facts.reasoning,
            dropped=dropped,
            invalid="invalid value for '{}': expected a number",
            note="{} (reasoning models take no sampling parameters)",
        )
    )
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidRequest("invalid value for 'max_output_tokens': expected a positive integer")
        out["max_completion_tokens" if facts.reasoning else "max_tokens"] = limit


def _reasoning(
    raw: object, facts: ModelFacts, upstream_id: str, out: dict[str, Any], dropped: list[str]
) -> None:
    """``reasoning.effort`` fitted to the model's family (translate/effort.py), as /v1/chat/completions does:
    Ollama takes every effort for any model, OpenAI's families refuse the values they do not list."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise InvalidRequest("invalid value for 'reasoning': expected an object")
    effort = raw.get("effort")
    if effort is None:
        return
    if effort not in _EFFORTS:
        raise InvalidRequest(f"invalid value for 'reasoning.effort': expected one of {', '.join(_EFFORTS)}")
    if not facts.reasoning:
        dropped.append("reasoning.effort (not a reasoning model)")
        return
    fitted = effort_for_request(upstream_id, effort)
    if fitted is not None:
        out["reasoning_effort"] = fitted


def _text_format(raw: object, dropped: list[str]) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("invalid value for 'text': expected an object")
    if raw.get("verbosity") is not None:
        dropped.append("text.verbosity")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise InvalidRequest("invalid value for 'text.format': expected an object")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name = fmt.get("name")
        schema = fmt.get("schema")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("missing required parameter: 'text.format.name'")
        if not isinstance(schema, dict):
            raise InvalidRequest("missing required parameter: 'text.format.schema'")
        spec: dict[str, Any] = {"name": name, "schema": schema}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        return {"type": "json_schema", "json_schema": spec}
    raise InvalidRequest(
        "invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema'"
    )


def _objects(items: list[Any], where: str) -> Iterator[tuple[dict[str, Any], str]]:
    """The items of an array of objects, each with its path for errors (``where[i]``); an item that is not
    an object is a 400 naming it, when the walk reaches it."""
    for index, item in enumerate(items):
        path = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"invalid value for '{path}': expected an object")
        yield item, path


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequest(f"invalid value for '{key}': expected true or false")
