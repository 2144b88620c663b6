"""Request validation and error answers in the exact shape the OpenAI API uses.

The checks mirror the real API's 4xx answers (messages, parameters and codes) closely enough that a proxy
request OpenAI would reject is rejected here too; that is what makes the fake useful for catching
translation bugs before they reach a real upstream.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from ._types import FakeConfig, FullAnswer

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLES_TEXT = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'"
_PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")
_PART_TYPES_TEXT = "'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'"
_IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_DATA_URL_HINT = (
    "Expected a base64-encoded data URL with an image MIME type "
    "(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got "
)
EMBEDDING_INPUT_INVALID = (
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
)
_BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. "
    "If you have trouble figuring out how to fix this, please contact us through our help center at "
    "help.openai.com.)"
)
_NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if "
    "you're accessing the API from your browser and are prompted for a username and password. You can "
    "obtain an API key from https://platform.openai.com/account/api-keys."
)


# The request fields OpenAI's API reference lists; anything else is refused as unrecognized.
CHAT_PARAMS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
        "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_retention",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store",
        "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "verbosity", "web_search_options",
    }
)  # fmt: skip
EMBEDDING_PARAMS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


# -- error helpers --------------------------------------------------------------------------------------


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> FullAnswer:
    return FullAnswer(status, error_body(message, type_, param, code), headers=headers)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(param: str, expected: str, value: Any) -> FullAnswer:
    return error(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing(param: str) -> FullAnswer:
    return error(
        400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def invalid_value(param: str, value: Any, supported: str) -> FullAnswer:
    return error(
        400,
        f"Invalid value: '{value}'. Supported values are: {supported}.",
        param=param,
        code="invalid_value",
    )


def empty_array(param: str) -> FullAnswer:
    return error(
        400,
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param=param,
        code="empty_array",
    )


def unrecognized(data: dict[str, Any], known: frozenset[str]) -> FullAnswer | None:
    """OpenAI's 400 for the first request field it does not know."""
    unknown = next((key for key in data if key not in known), None)
    if unknown is None:
        return None
    return error(400, f"Unrecognized request argument supplied: {unknown}")


def bad_json() -> FullAnswer:
    return error(400, _BAD_JSON_MESSAGE)


def model_not_found(model: str) -> FullAnswer:
    return error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
    )


def not_found(method: str, path: str) -> FullAnswer:
    return error(404, f"Invalid URL ({method} {path})")


def not_allowed(method: str, path: str, allowed: str) -> FullAnswer:
    return error(
        405,
        f"Method {method} is not allowed for {path}. Allowed: {allowed}.",
        code="method_not_allowed",
        headers=(("Allow", allowed),),
    )


def mask_key(key: str) -> str:
    """Mask a key the way OpenAI echoes it in 401 messages (a few characters each side)."""
    if len(key) <= 8:
        return "***"
    return f"{key[:5]}***{key[-3:]}"


def auth_error(cfg: FakeConfig, authorization: str | None) -> FullAnswer | None:
    """OpenAI's 401 when an API key is configured and the request does not carry it."""
    expected = cfg.api_key
    if expected is None:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token == expected:
        return None
    if not token:
        return error(401, _NO_KEY_MESSAGE)
    return error(
        401,
        f"Incorrect API key provided: {mask_key(token)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- request validation ---------------------------------------------------------------------------------


class Conversation:
    """What the chat handler needs to know about the validated messages."""

    __slots__ = ("last_role", "last_text", "last_turn", "mentions_json", "prompt_tokens", "tool_output")

    def __init__(
        self,
        prompt_tokens: int,
        last_role: str,
        last_text: str,
        mentions_json: bool,
        last_turn: str = "",
        tool_output: str = "",
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.last_role = last_role
        self.last_text = last_text
        self.mentions_json = mentions_json
        # The last user/assistant/tool message's (role, text), skipping system messages after it (Claude
        # Code ends its requests with one): what a scripted tool call looks at.
        self.last_turn = last_turn
        self.tool_output = tool_output  # the last tool message's text


def check_messages(messages: Any) -> FullAnswer | Conversation:
    if messages is None:
        return missing("messages")
    if not isinstance(messages, list):
        return invalid_type("messages", "an array of objects", messages)
    if not messages:
        return empty_array("messages")
    tokens = 0
    unanswered: list[str] = []
    answerable: list[str] = []
    in_tool_run = False
    mentions_json = False
    last_role = ""
    last_text = ""
    last_turn = ""
    tool_output = ""
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            return invalid_type(where, "an object", message)
        role = message.get("role")
        if role is None:
            return missing(f"{where}.role")
        if role not in _ROLES:
            return invalid_value(f"{where}.role", role, _ROLES_TEXT)
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id is None:
                return missing(f"{where}.tool_call_id")
            if not in_tool_run:
                return error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    param=f"{where}.role",
                )
            if call_id not in answerable:
                return error(
                    400,
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous "
                    "message.",
                    param=f"{where}.tool_call_id",
                )
            if call_id in unanswered:
                unanswered.remove(call_id)
        else:
            if unanswered:
                return unanswered_calls(i, unanswered)
            in_tool_run = False
        content = message.get("content")
        text = ""
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            checked = check_parts(content, where, role)
            if isinstance(checked, FullAnswer):
                return checked
            text = checked
        elif content is None:
            if role != "assistant":
                if "content" not in message:
                    return missing(f"{where}.content")
                return error(
                    400, "Invalid value for 'content': expected a string, got null.", param=f"{where}.content"
                )
        else:
            return invalid_type(f"{where}.content", "one of a string or array of objects", content)
        if role == "assistant":
            calls = check_assistant_calls(message.get("tool_calls"), where)
            if isinstance(calls, FullAnswer):
                return calls
            unanswered = calls
            answerable = list(calls)
            in_tool_run = bool(calls)
        tokens += 3 + len(text.split())
        if not mentions_json and "json" in text.lower():
            mentions_json = True
        last_role = role
        last_text = text
        if role not in ("system", "developer"):
            last_turn = role
        if role == "tool":
            tool_output = text
    if unanswered:
        return unanswered_calls(len(messages), unanswered)
    return Conversation(tokens, last_role, last_text, mentions_json, last_turn, tool_output)


def unanswered_calls(index: int, ids: list[str]) -> FullAnswer:
    return error(
        400,
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(ids)}",
        param=f"messages.[{index}].role",
    )


def check_parts(parts: list[Any], where: str, role: str) -> FullAnswer | str:
    if not parts:
        return empty_array(f"{where}.content")
    texts: list[str] = []
    for j, part in enumerate(parts):
        pw = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            return invalid_type(pw, "an object", part)
        kind = part.get("type")
        if kind is None:
            return missing(f"{pw}.type")
        if kind not in _PART_TYPES:
            return invalid_value(f"{pw}.type", kind, _PART_TYPES_TEXT)
        if kind == "text":
            text = part.get("text")
            if text is None:
                return missing(f"{pw}.text")
            if not isinstance(text, str):
                return invalid_type(f"{pw}.text", "a string", text)
            texts.append(text)
        elif kind == "image_url":
            if role != "user":
                return error(
                    400,
                    f"Invalid '{where}'. Image URLs are only allowed for messages with role 'user', but "
                    f"this message with role '{role}' contains an image URL.",
                    param=where,
                    code="invalid_value",
                )
            image = part.get("image_url")
            if image is None:
                return missing(f"{pw}.image_url")
            if not isinstance(image, dict):
                return invalid_type(f"{pw}.image_url", "an object", image)
            url = image.get("url")
            if url is None:
                return missing(f"{pw}.image_url.url")
            if not isinstance(url, str):
                return invalid_type(f"{pw}.image_url.url", "a string", url)
            detail = image.get("detail")
            if detail is not None and detail not in ("auto", "low", "high"):
                return invalid_value(f"{pw}.image_url.detail", detail, "'auto', 'low', and 'high'")
            problem = check_image_url(url, f"{pw}.image_url.url")
            if problem is not None:
                return problem
    return " ".join(texts)


def bad_image_url(param: str, what: str) -> FullAnswer:
    return error(400, f"Invalid '{param}'. {_DATA_URL_HINT}{what}.", param=param, code="invalid_value")


def check_image_url(url: str, param: str) -> FullAnswer | None:
    if url.startswith(("https://", "http://")):
        return None
    if not url.startswith("data:"):
        return bad_image_url(param, "a value without the 'data:' prefix")
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return bad_image_url(param, "a value that is not base64-encoded")
    mime = header[: -len(";base64")].lower()
    if mime not in _IMAGE_MIME_TYPES:
        return bad_image_url(param, f"unsupported MIME type '{mime}'")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return bad_image_url(param, "invalid base64 data")
    is_image = data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    if not is_image:
        return error(
            400,
            "You uploaded an unsupported image. Please make sure your image is below 20 MB in size and is "
            "of one the following formats: ['png', 'jpeg', 'gif', 'webp'].",
            code="invalid_image_format",
        )
    return None


def check_assistant_calls(calls: Any, where: str) -> FullAnswer | list[str]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        return invalid_type(f"{where}.tool_calls", "an array", calls)
    ids: list[str] = []
    for k, call in enumerate(calls):
        cw = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            return invalid_type(cw, "an object", call)
        call_id = call.get("id")
        if call_id is None:
            return missing(f"{cw}.id")
        if not isinstance(call_id, str):
            return invalid_type(f"{cw}.id", "a string", call_id)
        if call.get("type") is None:
            return missing(f"{cw}.type")
        function = call.get("function")
        if function is None:
            return missing(f"{cw}.function")
        if not isinstance(function, dict):
            return invalid_type(f"{cw}.function", "an object", function)
        for name in ("name", "arguments"):
            value = function.get(name)
            if value is None:
                return missing(f"{cw}.function.{name}")
            if not isinstance(value, str):
                return invalid_type(f"{cw}.function.{name}", "a string", value)
        ids.append(call_id)
    return ids


def samples_freely(model: str, effort: Any) -> bool:
    """OpenAI's reasoning guide: gpt-5.1 and later take temperature, top_p and logprobs only at effort
    ``none`` (their default); the other reasoning models never do."""
    return "none" in accepted_efforts(model) and effort in (None, "none")


def check_sampling(data: dict[str, Any], reasoning: bool, model: str) -> FullAnswer | None:
    fixed = reasoning and not samples_freely(model, data.get("reasoning_effort"))
    for name in ("presence_penalty", "frequency_penalty", "stop"):
        value = data.get(name)
        if value is not None and reasoning:
            return error(
                400,
                f"Unsupported parameter: '{name}' is not supported with this model.",
                param=name,
                code="unsupported_parameter",
            )
    for name, high in (("temperature", 2), ("top_p", 1)):
        value = data.get(name)
        if value is None:
            continue
        if not is_number(value):
            return invalid_type(name, "a number", value)
        if fixed and value != 1:
            return error(
                400,
                f"Unsupported value: '{name}' does not support {value} with this model. Only the default "
                "(1) value is supported.",
                param=name,
                code="unsupported_value",
            )
        if value > high:
            return error(
                400,
                f"Invalid '{name}': decimal above maximum value. Expected a value <= {high}, but got "
                f"{value} instead.",
                param=name,
                code="decimal_above_max_value",
            )
        if value < 0:
            return error(
                400,
                f"Invalid '{name}': decimal below minimum value. Expected a value >= 0, but got {value} "
                "instead.",
                param=name,
                code="decimal_below_min_value",
            )
    effort = data.get("reasoning_effort")
    if effort is not None:
        if not reasoning:
            return error(400, "Unrecognized request argument supplied: reasoning_effort")
        allowed = accepted_efforts(model)
        if effort not in allowed:
            text = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'" if allowed else "none"
            if effort in ("none", "minimal", "low", "medium", "high", "xhigh"):
                # OpenAI's words, as recorded from the API for gpt-5.1 and 'minimal'
                return error(
                    400,
                    f"Unsupported value: '{effort}' is not supported with the '{model}' model. "
                    f"Supported values are: {text}.",
                    param="reasoning_effort",
                    code="unsupported_value",
                )
            return invalid_value("reasoning_effort", effort, text)
    return None


def accepted_efforts(model: str) -> tuple[str, ...]:
    """The reasoning efforts OpenAI's API reference lists for a model family (read 2026-12)."""
    base = model.lower().rsplit("/", 1)[-1]
    if base.startswith(("o1-mini", "o1-preview")):
        return ()
    if base.startswith("gpt-5-pro"):
        return ("high",)
    if "codex" in base:
        return ("low", "medium", "high", "xhigh") if "codex-max" in base else ("low", "medium", "high")
    if base.startswith("gpt-5.1"):
        return ("none", "low", "medium", "high")
    if base.startswith("gpt-5.") and base[6:7].isdigit():
        return ("none", "low", "medium", "high", "xhigh")
    if base.startswith("gpt-5"):
        return ("minimal", "low", "medium", "high")
    return ("low", "medium", "high")


def check_logprobs(data: dict[str, Any], reasoning: bool) -> FullAnswer | int | None:
    """``reasoning``: whether the model refuses logprobs (see :func:`samples_freely`)."""
    """None when logprobs are off, else how many top_logprobs each token should carry."""
    wanted = data.get("logprobs")
    top = data.get("top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        return invalid_type("logprobs", "a boolean", wanted)
    if top is not None:
        if not is_int(top):
            return invalid_type("top_logprobs", "an integer", top)
        if not 0 <= top <= 20:
            above = top > 20
            side, bound = ("above maximum", "<= 20") if above else ("below minimum", ">= 0")
            return error(
                400,
                f"Invalid 'top_logprobs': integer {side} value. Expected a value {bound}, but got {top} "
                "instead.",
                param="top_logprobs",
                code="integer_above_max_value" if above else "integer_below_min_value",
            )
        if not wanted:
            return error(
                400,
                "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is "
                "used.",
                param="top_logprobs",
            )
    if not wanted:
        return None
    if reasoning:
        return error(
            400,
            "Unsupported parameter: 'logprobs' is not supported with this model.",
            param="logprobs",
            code="unsupported_parameter",
        )
    return top or 0


# Models' own completion limits the fake enforces, as OpenAI refuses more (recorded for gpt-4o in
# tests/fixtures/real/openai/errors.json, max_tokens_above_model_output; 16384 for gpt-4o-mini too).
OUTPUT_LIMITS = (("gpt-4o-mini", 16384), ("gpt-4o", 16384))


def output_limit(model: str) -> int | None:
    if "realtime" in model or "audio" in model:
        return None
    return next((limit for prefix, limit in OUTPUT_LIMITS if model.startswith(prefix)), None)


def check_limit(data: dict[str, Any], reasoning: bool, model: str = "") -> FullAnswer | int | None:
    limit: int | None = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = data.get(name)
        if value is None:
            continue
        if name == "max_tokens" and reasoning:
            return error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        if not is_int(value):
            return invalid_type(name, "an integer", value)
        if value < 1:
            return error(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} "
                "instead.",
                param=name,
                code="integer_below_min_value",
            )
        most = output_limit(model)
        if most is not None and value > most:
            return error(
                400,
                f"{name} is too large: {value}. This model supports at most {most} completion tokens, "
                f"whereas you provided {value}.",
                param=name,
                code="invalid_value",
            )
        limit = value if limit is None else min(limit, value)
    return limit


class ToolPlan:
    __slots__ = ("choice", "forced", "tools")

    def __init__(self, tools: list[tuple[str, Any]], choice: Any, forced: str | None) -> None:
        self.tools = tools
        self.choice = choice
        self.forced = forced


def check_tools(data: dict[str, Any]) -> FullAnswer | ToolPlan:
    tools = data.get("tools")
    functions: list[tuple[str, Any]] = []
    if tools is not None:
        if not isinstance(tools, list):
            return invalid_type("tools", "an array", tools)
        if not tools:
            return empty_array("tools")
        for k, tool in enumerate(tools):
            tw = f"tools[{k}]"
            if not isinstance(tool, dict):
                return invalid_type(tw, "an object", tool)
            kind = tool.get("type")
            if kind is None:
                return missing(f"{tw}.type")
            if kind == "custom":
                continue
            if kind != "function":
                return invalid_value(f"{tw}.type", kind, "'function' and 'custom'")
            function = tool.get("function")
            if function is None:
                return missing(f"{tw}.function")
            if not isinstance(function, dict):
                return invalid_type(f"{tw}.function", "an object", function)
            name = function.get("name")
            if name is None:
                return missing(f"{tw}.function.name")
            if not isinstance(name, str):
                return invalid_type(f"{tw}.function.name", "a string", name)
            if not _NAME_RE.match(name):
                return error(
                    400,
                    f"Invalid '{tw}.function.name': string does not match pattern. Expected a string that "
                    "matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    param=f"{tw}.function.name",
                    code="invalid_value",
                )
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                return invalid_type(f"{tw}.function.parameters", "an object", parameters)
            functions.append((name, parameters))
    choice = data.get("tool_choice")
    forced: str | None = None
    if choice is not None:
        if tools is None:
            return error(
                400,
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                param="tool_choice",
            )
        if isinstance(choice, str):
            if choice not in ("none", "auto", "required"):
                return invalid_value("tool_choice", choice, "'none', 'auto', and 'required'")
        elif isinstance(choice, dict):
            function = choice.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            if choice.get("type") != "function" or not isinstance(name, str):
                return missing("tool_choice.function.name")
            if all(name != tool_name for tool_name, _ in functions):
                return error(
                    400,
                    f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
                    param="tool_choice",
                    code="invalid_value",
                )
            forced = name
        else:
            return invalid_type("tool_choice", "one of a string or an object", choice)
    parallel = data.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        return invalid_type("parallel_tool_calls", "a boolean", parallel)
    return ToolPlan(functions, choice, forced)


# llama-cpp-python 0.3.36's words for a json_schema response format, traceback line included (its server
# puts one in every validation error): the shape of tests/fixtures/real/llamacpp's recording, another path.
LLAMACPP_JSON_SCHEMA_REFUSAL = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
    "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or "
    '\'json_object\'"}}\n\n  File "/opt/llama/lib/python3.11/site-packages/llama_cpp/server/app.py",'
    " line 376, in create_chat_completion\n    POST /v1/chat/completions"
)


def check_response_format(data: dict[str, Any], conversation: Conversation, cfg: FakeConfig) -> Any:
    """Returns a FullAnswer error, None (plain text), "json_object", or ("json_schema", schema)."""
    fmt = data.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        return invalid_type("response_format", "an object", fmt)
    kind = fmt.get("type")
    if kind is None:
        return missing("response_format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        if cfg.require_json_word and not conversation.mentions_json:
            return error(
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                "'json_object'.",
                param="messages",
            )
        return "json_object"
    if kind == "json_schema" and not cfg.accept_json_schema:
        return error(500, LLAMACPP_JSON_SCHEMA_REFUSAL, "internal_server_error")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if spec is None:
            return missing("response_format.json_schema")
        if not isinstance(spec, dict):
            return invalid_type("response_format.json_schema", "an object", spec)
        name = spec.get("name")
        if name is None:
            return missing("response_format.json_schema.name")
        if not isinstance(name, str):
            return invalid_type("response_format.json_schema.name", "a string", name)
        if not _NAME_RE.match(name):
            return error(
                400,
                "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                param="response_format.json_schema.name",
                code="invalid_value",
            )
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            return invalid_type("response_format.json_schema.schema", "an object", schema)
        return ("json_schema", schema)
    return invalid_value("response_format.type", kind, "'json_object', 'json_schema', and 'text'")


def legacy_prompts(prompt: Any) -> FullAnswer | list[str | list[int]]:
    if prompt is None:
        return missing("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(is_int(t) for t in prompt):
            return [prompt]
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(p, list) and p and all(is_int(t) for t in p) for p in prompt):
            return list(prompt)
    if isinstance(prompt, list) and not prompt:
        return empty_array("prompt")
    return invalid_type("prompt", "one of a string or array of strings or tokens", prompt)


def embedding_inputs(raw: Any) -> list[str | list[int]] | None:
    """The inputs as a list, or None when OpenAI would answer "'$.input' is invalid"."""
    if isinstance(raw, str):
        return [raw] if raw else None
    if not isinstance(raw, list) or not raw:
        return None
    if all(is_int(t) for t in raw):
        return [raw]
    out: list[str | list[int]] = []
    for item in raw:
        valid = isinstance(item, str) or (isinstance(item, list) and all(is_int(t) for t in item))
        if not valid or not item:
            return None
        out.append(item)
    return out


def context_exceeded(window: int, prompt: int, max_tokens: Any, *, chat: bool) -> FullAnswer:
    """llama-cpp-python's refusal of a prompt that does not fit its n_ctx (its server's errors.py): the
    completion figure is the request's max_tokens as Python prints it (``None`` when absent), and the param
    says "messages" on both routes."""
    asked = prompt + (max_tokens if isinstance(max_tokens, int) else 0)
    if chat:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested {asked} tokens "
            f"({prompt} in the messages, {max_tokens} in the completion). "
            "Please reduce the length of the messages or completion."
        )
    else:
        message = (
            f"This model's maximum context length is {window} tokens, however you requested {asked} tokens "
            f"({prompt} in your prompt; {max_tokens} for the completion). "
            "Please reduce your prompt; or completion length."
        )
    return error(400, message, param="messages", code="context_length_exceeded")
