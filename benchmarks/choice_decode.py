"""Decision 2: how to decode + validate the Ollama /api/chat request body (and encode replies).

Standalone benchmark (not a pytest file)::

    /work/venv/bin/python benchmarks/choice_decode.py           # ~1 min
    /work/venv/bin/python benchmarks/choice_decode.py --quick   # fewer repeats

Candidates (all produce a fully type-checked request with defaults applied, or raise an
error that names the offending field path):

  a. ``orjson.loads`` + hand-written validation functions over the dicts (in place; the
     result is typed as ``TypedDict``s; unknown keys are left alone and never read)
  b. ``msgspec.json.decode(body, type=ChatRequest)`` with ``msgspec.Struct`` types
  c. pydantic v2 ``BaseModel.model_validate_json`` (strict, and default lax mode), plus
     ``TypeAdapter(TypedDict).validate_json`` (validation only: TypedDicts have no defaults)
  d. ``orjson.loads`` + stdlib ``dataclasses(slots=True)`` built by hand-written checks

Reference rows: ``orjson.loads`` / ``msgspec.json.decode`` / ``json.loads`` without
validation.  Timing: ``timeit`` -- ``autorange`` picks the loop count (>= 0.2 s per
repeat), 7 repeats (3 with --quick), per-call min and median reported.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import platform
import statistics
import sys
import timeit
from importlib import metadata
from typing import (
    Any,
    Literal,
    NotRequired,  # pydantic needs typing_extensions.TypedDict on 3.11
)

import msgspec
import orjson
import pydantic
from typing_extensions import TypedDict

Role = Literal["system", "user", "assistant", "tool"]
ROLES = frozenset(("system", "user", "assistant", "tool"))


class RequestValidationError(ValueError):
    """Raised by the hand-written validators; message is '<path>: <problem>'."""


# ======================================================================================
# a. orjson + hand-written validation over dicts -> TypedDicts
# ======================================================================================


class ToolCallFunctionTD(TypedDict):
    name: str
    arguments: dict[str, Any]


class ToolCallTD(TypedDict):
    function: ToolCallFunctionTD


class MessageTD(TypedDict):
    role: Role
    content: str
    images: NotRequired[list[str] | None]
    tool_calls: NotRequired[list[ToolCallTD] | None]
    tool_name: NotRequired[str | None]
    thinking: NotRequired[str | None]


class ToolFunctionTD(TypedDict):
    name: str
    description: str
    parameters: dict[str, Any]


class ToolTD(TypedDict):
    type: str
    function: ToolFunctionTD


class OptionsTD(TypedDict, total=False):
    temperature: float
    top_p: float
    top_k: int
    num_predict: int
    num_ctx: int
    seed: int
    stop: str | list[str]
    presence_penalty: float
    frequency_penalty: float
    repeat_penalty: float


class ChatRequestTD(TypedDict):
    model: str
    messages: list[MessageTD]
    stream: bool
    format: NotRequired[str | dict[str, Any] | None]
    options: NotRequired[OptionsTD | None]
    keep_alive: NotRequired[float | str | None]
    think: NotRequired[bool | str | None]
    tools: NotRequired[list[ToolTD] | None]


_JSON_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _bad(path: str, expected: str, value: Any) -> RequestValidationError:
    return RequestValidationError(
        f"{path}: expected {expected}, got {_JSON_NAMES.get(type(value), type(value).__name__)}"
    )


_NUM = (int, float)
_OPTION_KINDS: dict[str, str] = {
    "temperature": "number",
    "top_p": "number",
    "presence_penalty": "number",
    "frequency_penalty": "number",
    "repeat_penalty": "number",
    "top_k": "integer",
    "num_predict": "integer",
    "num_ctx": "integer",
    "seed": "integer",
    "stop": "stop",
}


def _check_str_list(v: Any, path: str) -> None:
    """Slow path that names the bad element; callers format paths only when something is wrong."""
    if type(v) is not list:
        raise _bad(path, "array of strings", v)
    for i, s in enumerate(v):
        if type(s) is not str:
            raise _bad(f"{path}[{i}]", "string", s)


def _check_options(o: Any) -> None:
    if type(o) is not dict:
        raise _bad("options", "object", o)
    for key, kind in _OPTION_KINDS.items():  # unknown keys are ignored
        v = o.get(key)
        if v is None:
            continue
        if kind == "number":
            if type(v) not in _NUM:
                raise _bad(f"options.{key}", "number", v)
        elif kind == "integer":
            if type(v) is not int:
                raise _bad(f"options.{key}", "integer", v)
        elif type(v) is not str and (type(v) is not list or any(type(x) is not str for x in v)):
            _check_str_list(v, f"options.{key}")  # stop: str | list[str]


def _check_message(m: Any, i: int) -> None:
    if type(m) is not dict:
        raise _bad(f"messages[{i}]", "object", m)
    role = m.get("role")
    if type(role) is not str:
        raise _bad(f"messages[{i}].role", "string", role)
    if role not in ROLES:
        raise RequestValidationError(
            f"messages[{i}].role: expected one of system, user, assistant, tool, got {role!r}"
        )
    content = m.get("content")
    if content is None:
        m["content"] = ""
    elif type(content) is not str:
        raise _bad(f"messages[{i}].content", "string", content)
    if len(m) == 2:  # fast path: role + content only
        return
    v = m.get("images")
    if v is not None:
        if type(v) is not list:
            raise _bad(f"messages[{i}].images", "array of strings", v)
        for s in v:
            if type(s) is not str:
                _check_str_list(v, f"messages[{i}].images")
    v = m.get("tool_name")
    if v is not None and type(v) is not str:
        raise _bad(f"messages[{i}].tool_name", "string", v)
    v = m.get("thinking")
    if v is not None and type(v) is not str:
        raise _bad(f"messages[{i}].thinking", "string", v)
    tcs = m.get("tool_calls")
    if tcs is not None:
        if type(tcs) is not list:
            raise _bad(f"messages[{i}].tool_calls", "array", tcs)
        for j, tc in enumerate(tcs):
            if type(tc) is not dict:
                raise _bad(f"messages[{i}].tool_calls[{j}]", "object", tc)
            fn = tc.get("function")
            if type(fn) is not dict:
                raise _bad(f"messages[{i}].tool_calls[{j}].function", "object", fn)
            if type(fn.get("name")) is not str:
                raise _bad(f"messages[{i}].tool_calls[{j}].function.name", "string", fn.get("name"))
            args = fn.get("arguments")
            if args is None:
                fn["arguments"] = {}
            elif type(args) is not dict:
                raise _bad(f"messages[{i}].tool_calls[{j}].function.arguments", "object", args)


def _check_tool(t: Any, i: int) -> None:
    if type(t) is not dict:
        raise _bad(f"tools[{i}]", "object", t)
    typ = t.setdefault("type", "function")
    if type(typ) is not str:
        raise _bad(f"tools[{i}].type", "string", typ)
    fn = t.get("function")
    if type(fn) is not dict:
        raise _bad(f"tools[{i}].function", "object", fn)
    if type(fn.get("name")) is not str:
        raise _bad(f"tools[{i}].function.name", "string", fn.get("name"))
    d = fn.setdefault("description", "")
    if type(d) is not str:
        raise _bad(f"tools[{i}].function.description", "string", d)
    params = fn.setdefault("parameters", {})
    if type(params) is not dict:
        raise _bad(f"tools[{i}].function.parameters", "object", params)


def validate_chat_request(obj: Any) -> ChatRequestTD:
    """Validate an orjson-decoded /api/chat body in place; apply defaults; return it typed."""
    if type(obj) is not dict:
        raise _bad("$", "object", obj)
    if type(obj.get("model")) is not str:
        raise _bad("model", "string", obj.get("model"))
    msgs = obj.get("messages")
    if msgs is None:
        obj["messages"] = []
    elif type(msgs) is not list:
        raise _bad("messages", "array", msgs)
    else:
        for i, m in enumerate(msgs):
            _check_message(m, i)
    stream = obj.get("stream")
    if stream is None:
        obj["stream"] = True
    elif type(stream) is not bool:
        raise _bad("stream", "boolean", stream)
    v = obj.get("format")
    if v is not None and type(v) is not str and type(v) is not dict:
        raise _bad("format", "string or object", v)
    v = obj.get("options")
    if v is not None:
        _check_options(v)
    v = obj.get("keep_alive")
    if v is not None and type(v) not in _NUM and type(v) is not str:
        raise _bad("keep_alive", "number or string", v)
    v = obj.get("think")
    if v is not None and type(v) is not bool and type(v) is not str:
        raise _bad("think", "boolean or string", v)
    tools = obj.get("tools")
    if tools is not None:
        if type(tools) is not list:
            raise _bad("tools", "array", tools)
        for i, t in enumerate(tools):
            _check_tool(t, i)
    return obj  # type: ignore[return-value]


def decode_a(body: bytes) -> ChatRequestTD:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(f"$: invalid JSON: {exc}") from None
    return validate_chat_request(obj)


# ======================================================================================
# b. msgspec Structs
# ======================================================================================


class MToolCallFunction(msgspec.Struct, omit_defaults=True):
    name: str
    arguments: dict[str, Any] = {}


class MToolCall(msgspec.Struct, omit_defaults=True):
    function: MToolCallFunction


class MMessage(msgspec.Struct, omit_defaults=True):
    role: Role
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[MToolCall] | None = None
    tool_name: str | None = None
    thinking: str | None = None


class MToolFunction(msgspec.Struct, omit_defaults=True):
    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class MTool(msgspec.Struct, omit_defaults=True):
    function: MToolFunction
    type: str = "function"


class MOptions(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_predict: int | None = None
    num_ctx: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None


class MChatRequest(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    model: str
    messages: list[MMessage] = []
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: MOptions | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    tools: list[MTool] | None = None


_MSGSPEC_DECODER = msgspec.json.Decoder(MChatRequest)


# b'. the same, but images kept as raw JSON tokens (no 1 MB str is created; the translator
#     checks the token is a plain string and splices it into the outgoing data URL)
class MMessageRawImages(msgspec.Struct, omit_defaults=True):
    role: Role
    content: str = ""
    images: list[msgspec.Raw] | None = None
    tool_calls: list[MToolCall] | None = None
    tool_name: str | None = None
    thinking: str | None = None


class MChatRequestRawImages(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[MMessageRawImages] = []
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: MOptions | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    tools: list[MTool] | None = None


_MSGSPEC_DECODER_RAW = msgspec.json.Decoder(MChatRequestRawImages)


def decode_b(body: bytes) -> MChatRequest:
    return _MSGSPEC_DECODER.decode(body)  # raises msgspec.ValidationError / DecodeError


# ======================================================================================
# c. pydantic v2
# ======================================================================================


def _pydantic_models(strict: bool) -> type[pydantic.BaseModel]:
    cfg = pydantic.ConfigDict(strict=strict, extra="ignore")

    class PToolCallFunction(pydantic.BaseModel):
        model_config = cfg
        name: str
        arguments: dict[str, Any] = {}

    class PToolCall(pydantic.BaseModel):
        model_config = cfg
        function: PToolCallFunction

    class PMessage(pydantic.BaseModel):
        model_config = cfg
        role: Role
        content: str = ""
        images: list[str] | None = None
        tool_calls: list[PToolCall] | None = None
        tool_name: str | None = None
        thinking: str | None = None

    class PToolFunction(pydantic.BaseModel):
        model_config = cfg
        name: str
        description: str = ""
        parameters: dict[str, Any] = {}

    class PTool(pydantic.BaseModel):
        model_config = cfg
        type: str = "function"
        function: PToolFunction

    class POptions(pydantic.BaseModel):
        model_config = cfg
        temperature: float | None = None
        top_p: float | None = None
        top_k: int | None = None
        num_predict: int | None = None
        num_ctx: int | None = None
        seed: int | None = None
        stop: str | list[str] | None = None
        presence_penalty: float | None = None
        frequency_penalty: float | None = None
        repeat_penalty: float | None = None

    class PChatRequest(pydantic.BaseModel):
        model_config = cfg
        model: str
        messages: list[PMessage] = []
        stream: bool = True
        format: str | dict[str, Any] | None = None
        options: POptions | None = None
        keep_alive: float | str | None = None
        think: bool | str | None = None
        tools: list[PTool] | None = None

    return PChatRequest


PChatRequestStrict = _pydantic_models(strict=True)
PChatRequestLax = _pydantic_models(strict=False)


# TypedDicts cannot carry defaults, so for TypeAdapter every defaulted key must be NotRequired
# (the caller then has to cope with absent keys itself).
class _PAToolCallFunctionTD(TypedDict):
    name: str
    arguments: NotRequired[dict[str, Any]]


class _PAToolCallTD(TypedDict):
    function: _PAToolCallFunctionTD


class _PAMessageTD(TypedDict):
    role: Role
    content: NotRequired[str]
    images: NotRequired[list[str] | None]
    tool_calls: NotRequired[list[_PAToolCallTD] | None]
    tool_name: NotRequired[str | None]
    thinking: NotRequired[str | None]


class _PAToolFunctionTD(TypedDict):
    name: str
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]


class _PAToolTD(TypedDict):
    type: NotRequired[str]
    function: _PAToolFunctionTD


class _PAOptionsTD(TypedDict, total=False):
    temperature: float | None
    top_p: float | None
    top_k: int | None
    num_predict: int | None
    num_ctx: int | None
    seed: int | None
    stop: str | list[str] | None
    presence_penalty: float | None
    frequency_penalty: float | None
    repeat_penalty: float | None


class _PAChatRequestTD(TypedDict):
    model: str
    messages: NotRequired[list[_PAMessageTD]]
    stream: NotRequired[bool]
    format: NotRequired[str | dict[str, Any] | None]
    options: NotRequired[_PAOptionsTD | None]
    keep_alive: NotRequired[float | str | None]
    think: NotRequired[bool | str | None]
    tools: NotRequired[list[_PAToolTD] | None]


for _td in (
    _PAToolCallFunctionTD,
    _PAToolCallTD,
    _PAMessageTD,
    _PAToolFunctionTD,
    _PAToolTD,
    _PAOptionsTD,
    _PAChatRequestTD,
):
    _td.__pydantic_config__ = pydantic.ConfigDict(strict=True)  # type: ignore[attr-defined]
_TD_ADAPTER = pydantic.TypeAdapter(_PAChatRequestTD)


def decode_c_strict(body: bytes) -> pydantic.BaseModel:
    return PChatRequestStrict.model_validate_json(body)


def decode_c_lax(body: bytes) -> pydantic.BaseModel:
    return PChatRequestLax.model_validate_json(body)


def decode_c_typeadapter(body: bytes) -> _PAChatRequestTD:
    return _TD_ADAPTER.validate_json(body)


# ======================================================================================
# d. stdlib dataclasses + orjson + manual checks
# ======================================================================================


@dataclasses.dataclass(slots=True)
class DToolCallFunction:
    name: str
    arguments: dict[str, Any]


@dataclasses.dataclass(slots=True)
class DToolCall:
    function: DToolCallFunction


@dataclasses.dataclass(slots=True)
class DMessage:
    role: str
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[DToolCall] | None = None
    tool_name: str | None = None
    thinking: str | None = None


@dataclasses.dataclass(slots=True)
class DToolFunction:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclasses.dataclass(slots=True)
class DTool:
    type: str
    function: DToolFunction


@dataclasses.dataclass(slots=True)
class DOptions:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    num_predict: int | None = None
    num_ctx: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_penalty: float | None = None


@dataclasses.dataclass(slots=True)
class DChatRequest:
    model: str
    messages: list[DMessage]
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: DOptions | None = None
    keep_alive: float | str | None = None
    think: bool | str | None = None
    tools: list[DTool] | None = None


def _d_message(m: Any, i: int) -> DMessage:
    _check_message(m, i)  # same checks as (a); then build the object
    tcs = m.get("tool_calls")
    return DMessage(
        m["role"],
        m["content"],
        m.get("images"),
        [DToolCall(DToolCallFunction(tc["function"]["name"], tc["function"]["arguments"])) for tc in tcs]
        if tcs is not None
        else None,
        m.get("tool_name"),
        m.get("thinking"),
    )


def decode_d(body: bytes) -> DChatRequest:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(f"$: invalid JSON: {exc}") from None
    if type(obj) is not dict:
        raise _bad("$", "object", obj)
    model = obj.get("model")
    if type(model) is not str:
        raise _bad("model", "string", model)
    msgs = obj.get("messages")
    if msgs is None:
        msgs = []
    elif type(msgs) is not list:
        raise _bad("messages", "array", msgs)
    messages = [_d_message(m, i) for i, m in enumerate(msgs)]
    stream = obj.get("stream")
    if stream is None:
        stream = True
    elif type(stream) is not bool:
        raise _bad("stream", "boolean", stream)
    fmt = obj.get("format")
    if fmt is not None and type(fmt) is not str and type(fmt) is not dict:
        raise _bad("format", "string or object", fmt)
    o = obj.get("options")
    options = None
    if o is not None:
        _check_options(o)
        options = DOptions(**{k: o[k] for k in _OPTION_KINDS if k in o})
    ka = obj.get("keep_alive")
    if ka is not None and type(ka) not in _NUM and type(ka) is not str:
        raise _bad("keep_alive", "number or string", ka)
    think = obj.get("think")
    if think is not None and type(think) is not bool and type(think) is not str:
        raise _bad("think", "boolean or string", think)
    t = obj.get("tools")
    tools = None
    if t is not None:
        if type(t) is not list:
            raise _bad("tools", "array", t)
        tools = []
        for i, tool in enumerate(t):
            _check_tool(tool, i)
            f = tool["function"]
            tools.append(DTool(tool["type"], DToolFunction(f["name"], f["description"], f["parameters"])))
    return DChatRequest(model, messages, stream, fmt, options, ka, think, tools)


# ======================================================================================
# Bodies
# ======================================================================================

_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


def make_bodies() -> dict[str, bytes]:
    small = {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one or two sentences."},
            {
                "role": "user",
                "content": "Why is the sky blue? Please explain the physics in simple terms for a child.",
            },
        ],
        "stream": True,
        "options": {"temperature": 0.7, "num_predict": 128},
        "keep_alive": "5m",
    }
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant with tools. " * 8}
    ]
    for i in range(4):
        history += [
            {
                "role": "user",
                "content": f"Question {i}: what is the weather in Paris and what should I wear? " * 4,
            },
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
            },
            {
                "role": "tool",
                "content": '{"temp_c": 11, "conditions": "light rain"}',
                "tool_name": "get_weather",
            },
            {
                "role": "assistant",
                "content": "It is 11C with light rain in Paris, so wear a light waterproof jacket "
                "and bring an umbrella; layers are a good idea because it may warm up later. " * 3,
                "thinking": "The user asked about the weather, I called the tool.",
            },
        ]
    history += [{"role": "user", "content": "Thanks! And tomorrow? Answer as JSON. " * 4}] * 3
    medium = {
        "model": "llama3.2",
        "messages": history[:20],
        "stream": True,
        "format": {
            "type": "object",
            "properties": {"temp_c": {"type": "number"}, "advice": {"type": "string"}},
            "required": ["temp_c", "advice"],
        },
        "options": {
            "temperature": 0.2,
            "top_k": 40,
            "top_p": 0.9,
            "num_predict": 512,
            "stop": ["\n\n", "</s>"],
            "num_ctx": 8192,
            "seed": 42,
            "mirostat": 0,
            "unknown_future_option": True,
        },
        "keep_alive": 300,
        "think": "high",
        "tools": [_WEATHER_TOOL]
        + [
            {"type": "function", "function": {**_WEATHER_TOOL["function"], "name": f"tool_{j}"}}
            for j in range(5)
        ],
    }
    raw = os.urandom(768 * 1024)  # 768 KiB of bytes -> 1 MiB of base64
    image = {
        "model": "llava",
        "messages": [
            {
                "role": "user",
                "content": "What is in this picture?",
                "images": [base64.b64encode(raw).decode()],
            },
        ],
        "stream": False,
        "format": "json",
        "think": False,
    }
    return {"small": orjson.dumps(small), "medium": orjson.dumps(medium), "image_1MB": orjson.dumps(image)}


# ======================================================================================
# Correctness: every candidate must accept the bodies and reject the same bad ones
# ======================================================================================

CANDIDATES = {
    "a. orjson + hand-written checks -> TypedDict": decode_a,
    "b. msgspec Struct (typed decode)": decode_b,
    "c. pydantic BaseModel strict": decode_c_strict,
    "c. pydantic BaseModel lax (default)": decode_c_lax,
    "c. pydantic TypeAdapter(TypedDict) strict*": decode_c_typeadapter,
    "d. orjson + checks -> dataclasses(slots)": decode_d,
}
REFERENCES = {
    "ref: json.loads (stdlib, no validation)": json.loads,
    "ref: orjson.loads (no validation)": orjson.loads,
    "ref: msgspec.json.decode (untyped)": msgspec.json.decode,
}

BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    (
        "messages[1].content is a number",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": 42}]},
    ),
    ("model missing", {"messages": []}),
    ("role not allowed", {"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
    ("options.temperature is a string", {"model": "m", "options": {"temperature": "0.7"}}),
    ("options.stop is a number", {"model": "m", "options": {"stop": 5}}),
    ("keep_alive is an array", {"model": "m", "keep_alive": [5]}),
    ("think is a number", {"model": "m", "think": 1}),
    ("stream is a string", {"model": "m", "stream": "yes"}),
    (
        "tool_calls[0].function.arguments is a string",
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                }
            ],
        },
    ),
    ("images[0] is a number", {"model": "m", "messages": [{"role": "user", "content": "", "images": [1]}]}),
]
_ERRORS = (RequestValidationError, msgspec.ValidationError, msgspec.DecodeError, pydantic.ValidationError)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}  [pydantic, {exc.error_count()} error(s)]"
    return str(exc)


def check_semantics(bodies: dict[str, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {"accepted": {}, "rejections": {}, "examples": {}}
    for name, fn in CANDIDATES.items():
        ok = []
        for bname, body in bodies.items():
            r = fn(body)
            stream = r["stream"] if isinstance(r, dict) else r.stream
            ok.append(f"{bname}:stream={stream}")
        out["accepted"][name] = ok
        rejected = []
        for label, bad in BAD_BODIES:
            try:
                fn(orjson.dumps(bad))
                rejected.append((label, "ACCEPTED"))
            except _ERRORS as exc:
                rejected.append((label, _one_line(exc)))
        out["rejections"][name] = rejected
    # defaults applied?
    tiny = b'{"model":"m","messages":[{"role":"user"}]}'
    for name, fn in CANDIDATES.items():
        r = fn(tiny)
        if isinstance(r, dict):
            content = r["messages"][0].get("content", "<absent>")
            out["examples"][name] = f"stream={r.get('stream', '<absent>')}, content={content!r}"
        else:
            out["examples"][name] = f"stream={r.stream}, content={r.messages[0].content!r}"
    return out


# ======================================================================================
# Timing
# ======================================================================================


def bench(fn, arg, repeat: int) -> tuple[float, float, int]:
    t = timeit.Timer(lambda: fn(arg))
    number, _ = t.autorange()  # loop count so that one repeat takes >= 0.2 s
    times = [x / number * 1e6 for x in t.repeat(repeat=repeat, number=number)]
    return min(times), statistics.median(times), number


def response_chunks() -> dict[str, Any]:
    chunk = {
        "model": "llama3.2",
        "created_at": "2026-11-26T10:00:00.123456789Z",
        "message": {"role": "assistant", "content": " the"},
        "done": False,
    }
    final = {
        "model": "llama3.2",
        "created_at": "2026-11-26T10:00:01.987654321Z",
        "message": {"role": "assistant", "content": ""},
        "done_reason": "stop",
        "done": True,
        "total_duration": 1987654321,
        "load_duration": 1234567,
        "prompt_eval_count": 26,
        "prompt_eval_duration": 130000000,
        "eval_count": 48,
        "eval_duration": 1700000000,
    }
    return {"stream chunk (~130 B)": chunk, "final chunk (~330 B)": final}


class SMessage(msgspec.Struct):
    role: str
    content: str


class SChunk(msgspec.Struct):
    model: str
    created_at: str
    message: SMessage
    done: bool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()
    repeat = 3 if args.quick else 7

    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"nproc={os.cpu_count()}, CPU={cpu}, Python {platform.python_version()}")
    print(
        "versions:",
        ", ".join(f"{d} {metadata.version(d)}" for d in ("orjson", "msgspec", "pydantic", "pydantic_core")),
    )

    bodies = make_bodies()
    print("bodies:", ", ".join(f"{k} = {len(v):,} B" for k, v in bodies.items()))

    sem = check_semantics(bodies)
    print("\n== semantics: every candidate accepts the 3 bodies; bad bodies and their error messages ==")
    for name, rej in sem["rejections"].items():
        print(f"  {name}")
        for label, msg in rej:
            print(f"      {label:45} -> {msg}")
    print('\n== defaults for {"model":"m","messages":[{"role":"user"}]} ==')
    for name, ex in sem["examples"].items():
        print(f"  {name:50} {ex}")

    results: dict[str, Any] = {"decode": {}, "encode": {}}
    print(f"\n== decode + validate, us per call (timeit autorange, {repeat} repeats: min / median) ==")
    names = list(CANDIDATES) + list(REFERENCES)
    print(f"{'candidate':52}" + "".join(f"{b:>24}" for b in bodies))
    for name in names:
        fn = CANDIDATES.get(name) or REFERENCES[name]
        row = []
        for bname, body in bodies.items():
            mn, med, number = bench(fn, body, repeat)
            results["decode"].setdefault(name, {})[bname] = {"min_us": mn, "median_us": med, "number": number}
            row.append(f"{mn:>10,.2f} / {med:>10,.2f}")
        print(f"{name:52}" + "".join(f"{c:>24}" for c in row), flush=True)

    print(f"\n== encode a response chunk, us per call ({repeat} repeats: min / median) ==")
    enc = msgspec.json.Encoder()
    chunks = response_chunks()
    encoders = {
        "orjson.dumps(dict)": orjson.dumps,
        "orjson.dumps(dict, OPT_APPEND_NEWLINE)  (NDJSON line)": lambda d: orjson.dumps(
            d, option=orjson.OPT_APPEND_NEWLINE
        ),
        "msgspec.json.encode(dict)": msgspec.json.encode,
        "msgspec Encoder().encode(dict)": enc.encode,
        "json.dumps(dict).encode()  (stdlib)": lambda d: json.dumps(d, separators=(",", ":")).encode(),
    }
    print(f"{'encoder':56}" + "".join(f"{c:>26}" for c in chunks))
    for name, fn in encoders.items():
        row = []
        for cname, obj in chunks.items():
            mn, med, _ = bench(fn, obj, repeat)
            results["encode"].setdefault(name, {})[cname] = {"min_us": mn, "median_us": med}
            row.append(f"{mn:>10,.3f} / {med:>10,.3f}")
        print(f"{name:56}" + "".join(f"{c:>26}" for c in row), flush=True)
    sc = SChunk(
        model="llama3.2",
        created_at="2026-11-26T10:00:00.123456789Z",
        message=SMessage(role="assistant", content=" the"),
        done=False,
    )
    assert msgspec.json.decode(enc.encode(sc)) == chunks["stream chunk (~130 B)"]
    mn, med, _ = bench(enc.encode, sc, repeat)
    results["encode"]["msgspec Encoder().encode(Struct)"] = {
        "stream chunk (~130 B)": {"min_us": mn, "median_us": med}
    }
    print(f"{'msgspec Encoder().encode(Struct)  (typed chunk)':56}{mn:>10,.3f} / {med:>10,.3f}")

    # what a candidate's output costs to turn into JSON again (e.g. format schema / tool params passthrough)
    print("\n== re-encode the decoded medium request (e.g. to log it or forward parts) ==")
    med_a = decode_a(bodies["medium"])
    med_b = decode_b(bodies["medium"])
    med_c = decode_c_strict(bodies["medium"])
    for name, fn, arg in [
        ("orjson.dumps(TypedDict result of a)", orjson.dumps, med_a),
        ("msgspec.json.encode(Struct result of b)", msgspec.json.encode, med_b),
        ("pydantic model_dump_json (c)", lambda m: m.model_dump_json(exclude_defaults=True), med_c),
    ]:
        mn, med, _ = bench(fn, arg, repeat)
        results["encode"][name] = {"medium": {"min_us": mn, "median_us": med}}
        print(f"  {name:52} {mn:>9,.2f} / {med:>9,.2f} us")

    # the 1 MB image request end to end: decode + validate, build the OpenAI message with a data URL,
    # serialise the upstream body with orjson
    print(
        "\n== 1 MB image: decode -> OpenAI image_url data URL -> orjson.dumps(upstream body), us per call =="
    )
    img_body = bodies["image_1MB"]

    def fwd_str(body: bytes) -> bytes:
        req = decode_b(body)
        m = req.messages[0]
        parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}]
        parts += [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + img}}
            for img in m.images or ()
        ]
        return orjson.dumps({"model": req.model, "messages": [{"role": m.role, "content": parts}]})

    def fwd_raw(body: bytes) -> bytes:
        req = _MSGSPEC_DECODER_RAW.decode(body)
        m = req.messages[0]
        parts: list[Any] = [{"type": "text", "text": m.content}]
        for img in m.images or ():
            tok = bytes(img)
            if tok[:1] != b'"' or b"\\" in tok:  # not a plain JSON string: fall back to a real decode
                tok = orjson.dumps(msgspec.json.decode(tok, type=str))
            parts.append(
                {
                    "type": "image_url",
                    "image_url": {"url": orjson.Fragment(b'"data:image/jpeg;base64,' + tok[1:])},
                }
            )
        return orjson.dumps({"model": req.model, "messages": [{"role": m.role, "content": parts}]})

    def fwd_dict(body: bytes) -> bytes:
        req = decode_a(body)
        m = req["messages"][0]
        parts: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}]
        parts += [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + img}}
            for img in m.get("images") or ()
        ]
        return orjson.dumps({"model": req["model"], "messages": [{"role": m["role"], "content": parts}]})

    assert (
        orjson.loads(fwd_raw(img_body)) == orjson.loads(fwd_str(img_body)) == orjson.loads(fwd_dict(img_body))
    )
    for name, fn in [
        ("a. orjson + checks, str image", fwd_dict),
        ("b. msgspec, str image", fwd_str),
        ("b'. msgspec, images as msgspec.Raw + orjson.Fragment", fwd_raw),
    ]:
        mn, med, _ = bench(fn, img_body, repeat)
        results["encode"]["image forward: " + name] = {"image_1MB": {"min_us": mn, "median_us": med}}
        print(f"  {name:56} {mn:>9,.1f} / {med:>9,.1f} us")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"bodies": {k: len(v) for k, v in bodies.items()}, "semantics": sem, **results}, f, indent=1
            )
    print("\n* TypeAdapter(TypedDict) validates types but cannot apply defaults (TypedDicts have none).")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
