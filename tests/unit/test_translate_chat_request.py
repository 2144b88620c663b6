"""Ollama ``/api/chat`` and ``/api/generate`` requests -> OpenAI requests: one table row per rule
(translate/chat_request.py). Models are built from explicit facts, so every capability is visible here."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import orjson
import pytest

from falcon_ollama.catalog_config import DEFAULT_FACTS, ModelEntry, ModelFacts
from falcon_ollama.errors import ProxyError
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.translate.chat_request import (
    JSON_INSTRUCTION,
    SCHEMA_INSTRUCTION,
    ChatPlan,
    ollama_to_openai,
    parse_common,
    synthesized_call_id,
)
from falcon_ollama.translate.context import encode_context
from falcon_ollama.translate.rules import RequestRules


def model(upstream_id: str, *capabilities: str, reasoning: bool = False) -> ModelEntry:
    return ModelEntry(
        name=f"{upstream_id}:latest",
        upstream_id=upstream_id,
        facts=ModelFacts(128000, capabilities, "test", reasoning=reasoning),
        created=None,
    )


GPT4O = model("gpt-4o", "completion", "tools", "vision")
GPT5 = model("gpt-5", "completion", "tools", "vision", "thinking", reasoning=True)
GPT5_ROUTED = model("openai/GPT-5-mini", "completion", "tools", "thinking", reasoning=True)
O3 = model("o3", "completion", "tools", "vision", "thinking", reasoning=True)
R1 = model("deepseek-r1", "completion", "thinking")  # thinks, but is not an OpenAI reasoning model
GPT51 = model("gpt-5.1", "completion", "tools", "vision", "thinking", reasoning=True)
GPT52 = model("gpt-5.2", "completion", "tools", "vision", "thinking", reasoning=True)
# A model nothing describes (a vLLM / llama.cpp reasoning model the catalog does not list): default facts.
UNKNOWN = ModelEntry(name="qwen3-8b:latest", upstream_id="qwen3-8b", facts=DEFAULT_FACTS, created=None)
PLAIN = model("llama3.2", "completion")  # no tools
EMBED = model("text-embedding-3-small", "embedding")
CODER = model("codestral", "completion", "insert")

PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
JPEG_B64 = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 16).decode()
USER = {"role": "user", "content": "hi"}


def chat(entry: ModelEntry = GPT4O, *, include_usage: bool = False, **fields: Any) -> ChatPlan:
    body: dict[str, Any] = {"model": "requested", "messages": [USER], "stream": False}
    body.update(fields)
    return ollama_to_openai("chat", body, entry, "requested", RequestRules(include_usage=include_usage))


def generate(entry: ModelEntry = GPT4O, *, include_usage: bool = False, **fields: Any) -> ChatPlan:
    body: dict[str, Any] = {"model": "requested", "prompt": "hi", "stream": False}
    body.update(fields)
    return ollama_to_openai("generate", body, entry, "requested", RequestRules(include_usage=include_usage))


def error_of(call: Any, *args: Any, **kwargs: Any) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        call(*args, **kwargs)
    assert status_of(info.value) == 400
    return info.value


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def openai_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


SYNTH_1_0_WEATHER = synthesized_call_id(1, 0, "get_weather")
SYNTH_1_1_TIME = synthesized_call_id(1, 1, "get_time")


# --- the whole plan for a plain chat ------------------------------------------------------------------------


def test_plain_chat_plan_exact() -> None:
    plan = chat(messages=[{"role": "system", "content": "Be brief."}, USER], options={"temperature": 0.5})
    assert plan == ChatPlan(
        path="chat/completions",
        body={
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "stream": False,
            "temperature": 0.5,
        },
        stream=False,
        emit_thinking=False,
        logprobs=False,
        prompt_chars=len("Be brief.") + len("hi") + 2 * 16 + 12,  # text, 4 tokens a message, 3 to reply
        dropped=[],
        history=None,
    )


# --- messages -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param(
            [
                {"role": "SYSTEM", "content": "s"},
                {"role": "User", "content": "u"},
                {"role": "Assistant", "content": "a"},
            ],
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
            ],
            id="roles-lower-cased",
        ),
        pytest.param(
            [{"role": "user"}, {"role": "assistant", "content": None}],
            [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
            id="missing-content-is-empty-string",
        ),
        pytest.param(
            [{"role": "user", "content": "what is this?", "images": [PNG_B64]}],
            [
                {
                    "role": "user",
                    "content": [text_part("what is this?"), image_part("data:image/png;base64," + PNG_B64)],
                }
            ],
            id="image-becomes-parts-text-first",
        ),
        pytest.param(
            [{"role": "user", "content": "", "images": [JPEG_B64, "data:image/webp;base64,UklGRg=="]}],
            [
                {
                    "role": "user",
                    "content": [
                        text_part(""),
                        image_part("data:image/jpeg;base64," + JPEG_B64),
                        image_part("data:image/webp;base64,UklGRg=="),
                    ],
                }
            ],
            id="two-images-data-uri-kept",
        ),
        pytest.param(
            [{"role": "user", "content": "no images", "images": []}],
            [{"role": "user", "content": "no images"}],
            id="empty-images-plain-content",
        ),
        pytest.param(
            [USER, {"role": "assistant", "content": "answer", "thinking": "let me think"}],
            [USER, {"role": "assistant", "content": "answer"}],
            id="assistant-thinking-dropped",
        ),
        pytest.param(
            [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}},
                        }
                    ],
                },
                {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"},
            ],
            [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [openai_call("call_abc", "get_weather", '{"city":"Tokyo"}')],
                },
                {"role": "tool", "tool_call_id": "call_abc", "content": "11 degrees"},
            ],
            id="tool-call-object-arguments-to-json-string-id-kept",
        ),
        pytest.param(
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}],
                },
                {"role": "tool", "content": "ok", "tool_call_id": "c1"},
            ],
            [
                USER,
                {"role": "assistant", "content": "", "tool_calls": [openai_call("c1", "f", '{"a": 1}')]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
            id="string-arguments-kept-verbatim",
        ),
        pytest.param(
            [
                USER,
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "now"}}]},
                {"role": "tool", "content": "12:00"},
            ],
            [
                USER,
                {"role": "assistant", "content": "", "tool_calls": [openai_call("c1", "now", "{}")]},
                {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
            ],
            id="missing-arguments-empty-object",
        ),
        pytest.param(
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                        {"id": "", "function": {"name": "get_time", "arguments": {}}},
                    ],
                },
                {"role": "tool", "content": "20C"},
                {"role": "tool", "content": "noon"},
            ],
            [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        openai_call(SYNTH_1_0_WEATHER, "get_weather", '{"city":"Paris"}'),
                        openai_call(SYNTH_1_1_TIME, "get_time", "{}"),
                    ],
                },
                {"role": "tool", "tool_call_id": SYNTH_1_0_WEATHER, "content": "20C"},
                {"role": "tool", "tool_call_id": SYNTH_1_1_TIME, "content": "noon"},
            ],
            id="missing-ids-synthesized-tool-results-take-first-pending",
        ),
        pytest.param(
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"function": {"name": "get_weather", "arguments": {}}},
                        {"function": {"name": "get_time", "arguments": {}}},
                    ],
                },
                {"role": "tool", "content": "noon", "tool_name": "get_time"},
                {"role": "tool", "content": "20C", "tool_name": "get_weather"},
            ],
            [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        openai_call(SYNTH_1_0_WEATHER, "get_weather", "{}"),
                        openai_call(SYNTH_1_1_TIME, "get_time", "{}"),
                    ],
                },
                {"role": "tool", "tool_call_id": SYNTH_1_1_TIME, "content": "noon"},
                {"role": "tool", "tool_call_id": SYNTH_1_0_WEATHER, "content": "20C"},
            ],
            id="tool-result-matched-by-tool-name",
        ),
        pytest.param(
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"function": {"name": "get_weather", "arguments": {}}},
                        {"function": {"name": "get_time", "arguments": {}}},
                    ],
                },
                {"role": "tool", "content": "noon", "name": "get_time"},
                {"role": "tool", "content": "20C"},
            ],
            [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        openai_call(SYNTH_1_0_WEATHER, "get_weather", "{}"),
                        openai_call(SYNTH_1_1_TIME, "get_time", "{}"),
                    ],
                },
                {"role": "tool", "tool_call_id": SYNTH_1_1_TIME, "content": "noon"},
                {"role": "tool", "tool_call_id": SYNTH_1_0_WEATHER, "content": "20C"},
            ],
            id="tool-result-matched-by-openai-name-then-first-pending",
        ),
        pytest.param(
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "a", "function": {"name": "f", "arguments": {}}},
                        {"id": "b", "function": {"name": "f", "arguments": {}}},
                    ],
                },
                {"role": "tool", "content": "second", "tool_call_id": "b", "tool_name": "f"},
                {"role": "tool", "content": "first", "tool_name": "f"},
            ],
            [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [openai_call("a", "f", "{}"), openai_call("b", "f", "{}")],
                },
                {"role": "tool", "tool_call_id": "b", "content": "second"},
                {"role": "tool", "tool_call_id": "a", "content": "first"},
            ],
            id="tool-result-matched-by-tool-call-id-first",
        ),
        pytest.param(
            [
                USER,
                {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
                {"role": "tool", "content": "x", "tool_call_id": "elsewhere"},
            ],
            [
                USER,
                {"role": "assistant", "content": "", "tool_calls": [openai_call("a", "f", "{}")]},
                {"role": "tool", "tool_call_id": "elsewhere", "content": "x"},
                {"role": "tool", "tool_call_id": "a", "content": ""},  # the unanswered call, closed
            ],
            id="unknown-tool-call-id-kept-as-sent",
        ),
        pytest.param(
            [USER, {"role": "tool", "content": "11 degrees", "tool_name": "get_weather"}],
            [USER, {"role": "user", "content": "Tool result from get_weather:\n11 degrees"}],
            id="tool-result-without-pending-call-becomes-user",
        ),
        pytest.param(
            [USER, {"role": "Tool", "content": "42"}],
            [USER, {"role": "user", "content": "Tool result:\n42"}],
            id="tool-result-without-pending-call-or-name",
        ),
        pytest.param(
            [
                USER,
                {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
                {"role": "tool", "content": "one"},
                {"role": "tool", "content": "two", "tool_name": "f"},
            ],
            [
                USER,
                {"role": "assistant", "content": "", "tool_calls": [openai_call("a", "f", "{}")]},
                {"role": "tool", "tool_call_id": "a", "content": "one"},
                {"role": "user", "content": "Tool result from f:\ntwo"},
            ],
            id="each-call-answered-once",
        ),
        pytest.param(
            [
                USER,
                {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
                {"role": "assistant", "tool_calls": [{"id": "b", "function": {"name": "f"}}]},
                {"role": "tool", "content": "r"},
            ],
            [
                USER,
                {"role": "assistant", "content": "", "tool_calls": [openai_call("a", "f", "{}")]},
                {"role": "tool", "tool_call_id": "a", "content": ""},  # never answered: closed
                {"role": "assistant", "content": "", "tool_calls": [openai_call("b", "f", "{}")]},
                {"role": "tool", "tool_call_id": "b", "content": "r"},
            ],
            id="pending-calls-are-the-latest-assistants",
        ),
        pytest.param(
            [{"role": "developer", "content": "d"}, USER],
            [{"role": "developer", "content": "d"}, USER],
            id="other-roles-passed-through",
        ),
    ],
)
def test_messages(messages: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert chat(messages=messages).body["messages"] == expected


def test_synthesized_ids_are_deterministic() -> None:
    assistant = {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {}}}]}
    messages = [USER, assistant, {"role": "tool", "content": "x"}]
    first = chat(messages=messages).body["messages"]
    second = chat(messages=[dict(m) for m in messages]).body["messages"]
    assert first == second
    call_id = first[1]["tool_calls"][0]["id"]
    assert re.fullmatch(r"call_[0-9a-f]{24}", call_id)
    assert first[2]["tool_call_id"] == call_id
    # another position or name gives another id
    assert synthesized_call_id(1, 0, "get_weather") == call_id
    assert len({call_id, synthesized_call_id(3, 0, "get_weather"), synthesized_call_id(1, 0, "x")}) == 3


def test_prompt_chars_counts_message_text() -> None:
    messages = [
        {"role": "system", "content": "abcd"},
        {"role": "user", "content": "éé", "images": [PNG_B64]},
        {"role": "assistant", "content": None},
        {"role": "tool", "content": "xyz"},
    ]
    # the text as sent (a tool result that answers no call is sent as "Tool result:\nxyz"), then the template:
    # 16 characters (4 tokens) a message and 12 (3 tokens) to prime the reply
    assert chat(messages=messages).prompt_chars == 4 + 2 + 0 + len("Tool result:\nxyz") + 4 * 16 + 12


def test_prompt_chars_count_the_whole_prompt() -> None:
    """Tool definitions and the calls the assistant made are part of what the model reads (issue 12)."""
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    messages = [
        USER,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "9"},
    ]
    plan = chat(messages=messages, tools=[tool])
    text = len("hi") + len('{"city":"Paris"}') + len("9")
    assert plan.prompt_chars == text + len(json.dumps([tool], separators=(",", ":"))) + 3 * 16 + 12


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ("hi", "invalid value for 'messages': expected an array"),
        ({"role": "user"}, "invalid value for 'messages': expected an array"),
        (["hi"], "invalid value for 'messages[0]': expected an object"),
        ([USER, {"content": "x"}], "invalid value for 'messages[1].role': expected a string"),
        ([{"role": "", "content": "x"}], "invalid value for 'messages[0].role': expected a string"),
        ([{"role": 5, "content": "x"}], "invalid value for 'messages[0].role': expected a string"),
        ([{"role": "user", "content": 5}], "invalid value for 'messages[0].content': expected a string"),
        (
            [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
            "invalid value for 'messages[0].content': expected a string",
        ),
        (
            [{"role": "user", "content": "x", "images": PNG_B64}],
            "invalid value for 'images': expected an array of base64 strings",
        ),
        (
            [{"role": "user", "content": "x", "images": ["not base64!"]}],
            "invalid image input: image 0 is not valid base64",
        ),
        (
            [{"role": "user", "content": "x", "images": [PNG_B64, 7]}],
            "invalid image input: image 1 must be a non-empty base64 string",
        ),
        (
            [USER, {"role": "assistant", "tool_calls": {"function": {"name": "f"}}}],
            "invalid value for 'messages[1].tool_calls': expected an array",
        ),
        (
            [USER, {"role": "assistant", "tool_calls": ["f"]}],
            "invalid value for 'messages[1].tool_calls[0]': expected a function call",
        ),
        (
            [USER, {"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}],
            "invalid value for 'messages[1].tool_calls[0]': expected a function call",
        ),
        (
            [
                USER,
                {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}, {"id": "b"}]},
            ],
            "invalid value for 'messages[1].tool_calls[1]': expected a function call",
        ),
    ],
)
def test_invalid_messages_are_400(messages: Any, message: str) -> None:
    assert error_of(chat, messages=messages).message == message


# --- tools --------------------------------------------------------------------------------------------------

WEATHER_TOOL_OLLAMA = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "$defs": None,
            "items": None,
            "required": ["city"],
            "properties": {
                "city": {"type": "string", "description": "City", "enum": None},
                "days": {
                    "type": ["integer", "null"],
                    "items": None,
                    "anyOf": [{"type": "integer", "x": None}],
                },
            },
        },
    },
}
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {
                "city": {"type": "string", "description": "City"},
                "days": {"type": ["integer", "null"], "anyOf": [{"type": "integer"}]},
            },
        },
    },
}


@pytest.mark.parametrize(
    ("entry", "tools", "expected"),
    [
        pytest.param(GPT4O, [WEATHER_TOOL_OLLAMA], [WEATHER_TOOL_OPENAI], id="nulls-cleaned"),
        pytest.param(
            GPT4O,
            [{"function": {"name": "now"}}],
            [{"type": "function", "function": {"name": "now"}}],
            id="type-function-added",
        ),
        pytest.param(GPT4O, [], None, id="empty-array-omitted"),
        pytest.param(GPT4O, None, None, id="null-omitted"),
        pytest.param(PLAIN, [], None, id="empty-array-ok-without-tools-capability"),
    ],
)
def test_tools(entry: ModelEntry, tools: Any, expected: list[dict[str, Any]] | None) -> None:
    body = chat(entry, tools=tools).body
    if expected is None:
        assert "tools" not in body
    else:
        assert body["tools"] == expected


@pytest.mark.parametrize(
    ("entry", "tools", "message"),
    [
        (PLAIN, [WEATHER_TOOL_OLLAMA], "llama3.2:latest does not support tools"),
        (R1, [WEATHER_TOOL_OLLAMA], "deepseek-r1:latest does not support tools"),
        (GPT4O, "get_weather", "invalid value for 'tools': expected an array"),
        (GPT4O, {"function": {"name": "f"}}, "invalid value for 'tools': expected an array"),
        (GPT4O, [{"function": {}}], "invalid value for 'tools[0]': expected a function tool"),
        (GPT4O, [WEATHER_TOOL_OLLAMA, "f"], "invalid value for 'tools[1]': expected a function tool"),
        (
            GPT4O,
            [{"type": "function", "name": "f"}],
            "invalid value for 'tools[0]': expected a function tool",
        ),
    ],
)
def test_invalid_tools_are_400(entry: ModelEntry, tools: Any, message: str) -> None:
    assert error_of(chat, entry, tools=tools).message == message


# --- capabilities -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "entry", "fields", "message"),
    [
        (chat, EMBED, {}, '"requested" does not support chat'),
        (chat, EMBED, {"think": True}, '"requested" does not support chat'),
        (generate, EMBED, {}, '"requested" does not support generate'),
        (chat, GPT4O, {"think": True}, '"requested" does not support thinking'),
        (chat, GPT4O, {"think": "high"}, '"requested" does not support thinking'),
        (chat, PLAIN, {"think": "max"}, '"requested" does not support thinking'),
        (generate, GPT4O, {"think": True}, '"requested" does not support thinking'),
        (generate, GPT4O, {"think": "low"}, '"requested" does not support thinking'),
        (generate, GPT4O, {"suffix": "}"}, "gpt-4o:latest does not support insert"),
    ],
)
def test_capability_errors(call: Any, entry: ModelEntry, fields: dict[str, Any], message: str) -> None:
    assert error_of(call, entry, **fields).message == message


def test_capability_error_names_the_model_as_requested() -> None:
    body = {"model": "My-Alias", "messages": [USER], "think": True}
    assert error_of(ollama_to_openai, "chat", body, GPT4O, "My-Alias").message == (
        '"My-Alias" does not support thinking'
    )


# --- format -------------------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
JSON_SYSTEM = {"role": "system", "content": JSON_INSTRUCTION}


@pytest.mark.parametrize(
    ("fmt", "messages", "response_format", "expected_messages"),
    [
        pytest.param(
            "json", [USER], {"type": "json_object"}, [JSON_SYSTEM, USER], id="json-adds-instruction"
        ),
        pytest.param(
            "json",
            [{"role": "user", "content": "Answer in JSON please"}],
            {"type": "json_object"},
            [{"role": "user", "content": "Answer in JSON please"}],
            id="json-mentioned-by-user",
        ),
        pytest.param(
            "json",
            [{"role": "system", "content": "reply with json"}, USER],
            {"type": "json_object"},
            [{"role": "system", "content": "reply with json"}, USER],
            id="json-mentioned-by-system-lowercase",
        ),
        pytest.param(
            "json",
            [{"role": "user", "content": "describe as Json", "images": [PNG_B64]}],
            {"type": "json_object"},
            [
                {
                    "role": "user",
                    "content": [
                        text_part("describe as Json"),
                        image_part("data:image/png;base64," + PNG_B64),
                    ],
                }
            ],
            id="json-mentioned-in-text-part",
        ),
        pytest.param(
            "json",
            [{"role": "user", "content": "look", "images": [PNG_B64]}],
            {"type": "json_object"},
            [
                JSON_SYSTEM,
                {
                    "role": "user",
                    "content": [text_part("look"), image_part("data:image/png;base64," + PNG_B64)],
                },
            ],
            id="json-not-mentioned-with-image",
        ),
        pytest.param(None, [USER], None, [USER], id="null-no-format"),
        pytest.param("", [USER], None, [USER], id="empty-string-no-format"),
        pytest.param(
            SCHEMA,
            [USER],
            {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA, "strict": False}},
            [USER],
            id="schema-default-name",
        ),
        pytest.param(
            {**SCHEMA, "title": "Weather Report!"},
            [USER],
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "Weather_Report_",
                    "schema": {**SCHEMA, "title": "Weather Report!"},
                    "strict": False,
                },
            },
            [USER],
            id="schema-name-from-title-sanitized",
        ),
        pytest.param(
            {**SCHEMA, "title": "a" * 80},
            [USER],
            {
                "type": "json_schema",
                "json_schema": {"name": "a" * 64, "schema": {**SCHEMA, "title": "a" * 80}, "strict": False},
            },
            [USER],
            id="schema-name-at-most-64",
        ),
        pytest.param(
            {**SCHEMA, "title": 5},
            [USER],
            {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": {**SCHEMA, "title": 5}, "strict": False},
            },
            [USER],
            id="schema-title-not-string",
        ),
        pytest.param(
            {**SCHEMA, "title": ""},
            [USER],
            {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": {**SCHEMA, "title": ""}, "strict": False},
            },
            [USER],
            id="schema-title-empty",
        ),
    ],
)
def test_format(
    fmt: Any,
    messages: list[dict[str, Any]],
    response_format: dict[str, Any] | None,
    expected_messages: list[dict[str, Any]],
) -> None:
    body = chat(format=fmt, messages=messages).body
    assert body.get("response_format") == response_format
    assert ("response_format" in body) is (response_format is not None)
    assert body["messages"] == expected_messages


SCHEMA_TEXT = '{"type":"object","properties":{"age":{"type":"integer"}},"required":["age"]}'


@pytest.mark.parametrize(
    ("messages", "expected_messages"),
    [
        pytest.param(
            [USER],
            [{"role": "system", "content": f"{SCHEMA_INSTRUCTION}\n{SCHEMA_TEXT}"}, USER],
            id="new-system",
        ),
        pytest.param(
            [{"role": "system", "content": "Be brief."}, USER],
            [{"role": "system", "content": f"Be brief.\n\n{SCHEMA_INSTRUCTION}\n{SCHEMA_TEXT}"}, USER],
            id="appended-to-the-system-message",
        ),
    ],
)
def test_schema_fallback_is_json_mode_with_the_schema_stated(
    messages: list[dict[str, Any]], expected_messages: list[dict[str, Any]]
) -> None:
    """For upstreams that refuse json_schema (issue 12): the same request, in JSON mode, schema in words."""
    plan = chat(format=SCHEMA, messages=messages, options={"temperature": 0})
    sent = orjson.dumps(plan.body)
    fallback = plan.json_object_fallback()
    assert fallback == {
        **plan.body,
        "messages": expected_messages,
        "response_format": {"type": "json_object"},
    }
    assert orjson.dumps(plan.body) == sent  # the first request is left as it was
    assert fallback["temperature"] == 0


@pytest.mark.parametrize("fmt", [None, "json"])
def test_no_fallback_without_a_schema(fmt: Any) -> None:
    assert chat(format=fmt, messages=[USER]).json_object_fallback() is None


def test_generate_gets_the_schema_fallback_too() -> None:
    fallback = generate(prompt="x", format=SCHEMA).json_object_fallback()
    assert fallback is not None and fallback["messages"][0]["content"].endswith(SCHEMA_TEXT)


def test_an_empty_schema_is_json_mode() -> None:
    """Ollama (llamaServerChatResponseFormat) passes ``{}`` on as a schema that any JSON value meets."""
    plan = chat(format={}, messages=[USER])
    assert plan.body["response_format"] == {"type": "json_object"}
    assert "json" in str(plan.body["messages"]).lower()  # OpenAI wants the word in the messages for JSON mode


@pytest.mark.parametrize("fmt", ["xml", "JSON", 5, ["json"], True])
def test_invalid_format_is_400(fmt: Any) -> None:
    assert error_of(chat, format=fmt).message == 'invalid format: expected "json" or a valid JSON schema'


# --- think --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "think", "effort", "emit_thinking"),
    [
        pytest.param(GPT4O, None, None, False, id="non-thinking-unset"),
        pytest.param(GPT4O, False, None, False, id="non-thinking-false-accepted"),
        pytest.param(GPT5, None, None, True, id="gpt5-unset-upstream-default"),
        pytest.param(GPT5, True, None, True, id="gpt5-true-upstream-default"),
        pytest.param(GPT5, False, "minimal", False, id="gpt5-false-minimal"),
        pytest.param(GPT5, "low", "low", True, id="gpt5-low"),
        pytest.param(GPT5, "medium", "medium", True, id="gpt5-medium"),
        pytest.param(GPT5, "high", "high", True, id="gpt5-high"),
        pytest.param(GPT5, "max", "high", True, id="gpt5-max-is-high"),
        pytest.param(GPT5_ROUTED, False, "minimal", False, id="gpt5-behind-provider-prefix-false-minimal"),
        pytest.param(O3, False, None, False, id="o-series-false-nothing"),
        pytest.param(O3, True, None, True, id="o-series-true-nothing"),
        pytest.param(O3, "low", "low", True, id="o-series-low"),
        pytest.param(O3, "max", "high", True, id="o-series-max-is-high"),
        pytest.param(R1, None, None, True, id="thinking-model-unset-emits"),
        pytest.param(R1, True, None, True, id="thinking-model-true"),
        pytest.param(R1, "high", None, True, id="thinking-model-level-no-effort"),
        pytest.param(R1, False, None, False, id="thinking-model-false-no-thinking"),
        # gpt-5.1 refuses 'minimal' and does not reason unless asked; gpt-5.2 has 'xhigh'
        pytest.param(GPT51, False, "none", False, id="gpt51-false-none"),
        pytest.param(GPT51, True, "medium", True, id="gpt51-true-turns-reasoning-on"),
        pytest.param(GPT51, "max", "high", True, id="gpt51-max-is-high"),
        pytest.param(GPT52, False, "none", False, id="gpt52-false-none"),
        pytest.param(GPT52, "max", "xhigh", True, id="gpt52-max-is-xhigh"),
        # unknown facts: never refused, no effort sent, reasoning relayed if the upstream sends it
        pytest.param(UNKNOWN, True, None, True, id="unknown-true-passed-on"),
        pytest.param(UNKNOWN, "high", None, True, id="unknown-level-passed-on"),
        pytest.param(UNKNOWN, None, None, True, id="unknown-unset-relays-reasoning"),
        pytest.param(UNKNOWN, False, None, False, id="unknown-false"),
    ],
)
def test_think(entry: ModelEntry, think: Any, effort: str | None, emit_thinking: bool) -> None:
    for plan in (chat(entry, think=think), generate(entry, think=think)):
        assert plan.body.get("reasoning_effort") == effort
        assert ("reasoning_effort" in plan.body) is (effort is not None)
        assert plan.emit_thinking is emit_thinking


@pytest.mark.parametrize(
    ("think", "message"),
    [
        ("xhigh", 'invalid think value: "xhigh" (must be "high", "medium", "low", "max", true, or false)'),
        ("HIGH", 'invalid think value: "HIGH" (must be "high", "medium", "low", "max", true, or false)'),
        ("", 'invalid think value: "" (must be "high", "medium", "low", "max", true, or false)'),
        ("none", 'invalid think value: "none" (must be "high", "medium", "low", "max", true, or false)'),
    ],
)
def test_invalid_think_is_400_with_ollamas_text(think: Any, message: str) -> None:
    # validated before capabilities: the same text for every model
    for entry in (GPT4O, GPT5, EMBED):
        assert error_of(chat, entry, think=think).message == message
        assert error_of(generate, entry, think=think).message == message


@pytest.mark.parametrize("think", [1, 0, ["high"], {"level": "high"}])
def test_think_of_another_type_is_400(think: Any) -> None:
    """Ollama's ThinkValue.UnmarshalJSON words a value that is neither a boolean nor a string this way."""
    assert error_of(parse_common, {"think": think}).message == (
        'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'
    )


# --- stream, keep_alive, logprobs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "include_usage", "stream", "stream_options"),
    [
        pytest.param({}, True, True, {"include_usage": True}, id="default-stream-with-usage"),
        pytest.param({}, False, True, None, id="default-stream-usage-disabled"),
        pytest.param({"stream": None}, True, True, {"include_usage": True}, id="null-is-default"),
        pytest.param({"stream": True}, True, True, {"include_usage": True}, id="stream-true"),
        pytest.param({"stream": True}, False, True, None, id="stream-true-usage-disabled"),
        pytest.param({"stream": False}, True, False, None, id="non-stream-never-stream-options"),
    ],
)
def test_stream(
    fields: dict[str, Any], include_usage: bool, stream: bool, stream_options: dict[str, Any] | None
) -> None:
    for kind in ("chat", "generate"):
        body = {"model": "m", "messages": [USER], "prompt": "hi", **fields}
        plan = ollama_to_openai(kind, body, GPT4O, "m", RequestRules(include_usage=include_usage))
        assert plan.stream is stream
        assert plan.body["stream"] is stream
        assert plan.body.get("stream_options") == stream_options
        assert ("stream_options" in plan.body) is (stream_options is not None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stream": "yes"}, "invalid value for 'stream': expected true or false"),
        ({"stream": 1}, "invalid value for 'stream': expected true or false"),
        ({"keep_alive": "abc"}, 'time: invalid duration "abc"'),
        ({"keep_alive": "5"}, 'time: missing unit in duration "5"'),
        ({"keep_alive": "5x"}, 'time: unknown unit "x" in duration "5x"'),
        ({"keep_alive": ""}, 'time: invalid duration ""'),
        ({"keep_alive": True}, "Unsupported type: 'bool'"),
        ({"keep_alive": []}, "Unsupported type: '[]interface {}'"),
        ({"keep_alive": {"s": 1}}, "Unsupported type: 'map[string]interface {}'"),
        ({"logprobs": "yes"}, "invalid value for 'logprobs': expected true or false"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs must be between 0 and 20"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs must be between 0 and 20"),
        ({"logprobs": True, "top_logprobs": 2.5}, "top_logprobs must be between 0 and 20"),
        ({"logprobs": True, "top_logprobs": True}, "top_logprobs must be between 0 and 20"),
        ({"logprobs": True, "top_logprobs": "3"}, "top_logprobs must be between 0 and 20"),
        ({"top_logprobs": 99}, "top_logprobs must be between 0 and 20"),
    ],
)
def test_common_field_errors(fields: dict[str, Any], message: str) -> None:
    assert error_of(parse_common, fields).message == message
    assert error_of(chat, **fields).message == message
    assert error_of(generate, **fields).message == message


@pytest.mark.parametrize(
    ("keep_alive", "seconds"),
    [(None, None), ("5m", 300.0), (300, 300.0), (0, 0.0), (-1, float("inf")), ("-1m", float("inf"))],
)
def test_keep_alive_is_parsed_not_sent(keep_alive: Any, seconds: float | None) -> None:
    assert parse_common({"keep_alive": keep_alive}).keep_alive == seconds
    assert "keep_alive" not in chat(keep_alive=keep_alive).body


@pytest.mark.parametrize(
    ("entry", "fields", "expected", "dropped"),
    [
        pytest.param(GPT4O, {"logprobs": True}, {"logprobs": True}, [], id="logprobs"),
        pytest.param(
            GPT4O,
            {"logprobs": True, "top_logprobs": 5},
            {"logprobs": True, "top_logprobs": 5},
            [],
            id="top-logprobs",
        ),
        pytest.param(
            GPT4O,
            {"logprobs": True, "top_logprobs": 20},
            {"logprobs": True, "top_logprobs": 20},
            [],
            id="top-logprobs-max",
        ),
        pytest.param(
            GPT4O, {"logprobs": True, "top_logprobs": 0}, {"logprobs": True}, [], id="top-logprobs-0"
        ),
        pytest.param(GPT4O, {"logprobs": False, "top_logprobs": 5}, {}, [], id="logprobs-off"),
        pytest.param(GPT4O, {"top_logprobs": 5}, {}, [], id="top-logprobs-alone"),
        pytest.param(
            GPT5,
            {"logprobs": True, "top_logprobs": 3},
            {},
            ["logprobs (not supported by reasoning models)"],
            id="reasoning-model-dropped",
        ),
    ],
)
def test_logprobs(
    entry: ModelEntry, fields: dict[str, Any], expected: dict[str, Any], dropped: list[str]
) -> None:
    plan = chat(entry, **fields)
    assert {k: v for k, v in plan.body.items() if k in ("logprobs", "top_logprobs")} == expected
    assert plan.logprobs is bool(expected)
    assert plan.dropped == dropped


# --- options through the request ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "options", "params", "dropped"),
    [
        pytest.param(
            GPT4O,
            {"num_predict": 50, "top_k": 3, "temperature": 0.1, "stop": "x"},
            {"max_tokens": 50, "temperature": 0.1, "stop": ["x"]},
            ["top_k"],
            id="chat-model",
        ),
        pytest.param(
            GPT5,
            {"num_predict": 50, "top_k": 3, "temperature": 0.1},
            {"max_completion_tokens": 50},
            ["top_k", "temperature (not supported by reasoning models)"],
            id="reasoning-model",
        ),
    ],
)
def test_options_in_the_body(
    entry: ModelEntry, options: dict[str, Any], params: dict[str, Any], dropped: list[str]
) -> None:
    for plan in (chat(entry, options=options), generate(entry, options=options)):
        assert {k: v for k, v in plan.body.items() if k not in ("model", "messages", "stream")} == params
        assert plan.dropped == dropped


def test_invalid_options_are_400() -> None:
    assert error_of(chat, options={"top_k": "x"}).message == 'option "top_k" must be of type integer'
    assert error_of(generate, options="x").message == "invalid value for 'options': expected an object"


# --- generate -----------------------------------------------------------------------------------------------

HISTORY = [
    {"role": "system", "content": "Old system."},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
]


@pytest.mark.parametrize(
    ("fields", "messages", "history", "dropped"),
    [
        pytest.param(
            {"prompt": "Why?"},
            [{"role": "user", "content": "Why?"}],
            [{"role": "user", "content": "Why?"}],
            [],
            id="prompt-only",
        ),
        pytest.param(
            {"prompt": "Why?", "system": "Be brief."},
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}],
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}],
            [],
            id="system-and-prompt",
        ),
        pytest.param(
            {"prompt": "Why?", "system": "", "suffix": "", "template": ""},
            [{"role": "user", "content": "Why?"}],
            [{"role": "user", "content": "Why?"}],
            [],
            id="go-client-empty-strings",
        ),
        pytest.param(
            {"prompt": "What is this?", "images": [PNG_B64]},
            [
                {
                    "role": "user",
                    "content": [text_part("What is this?"), image_part("data:image/png;base64," + PNG_B64)],
                }
            ],
            [{"role": "user", "content": "What is this?"}],
            [],
            id="images-on-the-prompt",
        ),
        pytest.param(
            {"prompt": "And 3+3?", "context": encode_context(HISTORY)},
            [*HISTORY, {"role": "user", "content": "And 3+3?"}],
            [*HISTORY, {"role": "user", "content": "And 3+3?"}],
            [],
            id="context-decoded-into-history",
        ),
        pytest.param(
            {"prompt": "And 3+3?", "context": encode_context(HISTORY), "system": "New system."},
            [
                {"role": "system", "content": "New system."},
                *HISTORY[1:],
                {"role": "user", "content": "And 3+3?"},
            ],
            [
                {"role": "system", "content": "New system."},
                *HISTORY[1:],
                {"role": "user", "content": "And 3+3?"},
            ],
            [],
            id="system-replaces-the-contexts-system",
        ),
        pytest.param(
            {"prompt": "And 3+3?", "context": [128006, 882, 128007]},
            [{"role": "user", "content": "And 3+3?"}],
            [{"role": "user", "content": "And 3+3?"}],
            ["context (not written by falcon-ollama)"],
            id="foreign-context-reported",
        ),
        pytest.param(
            {"prompt": "x", "context": []},
            [{"role": "user", "content": "x"}],
            [{"role": "user", "content": "x"}],
            [],
            id="empty-context-is-no-context",
        ),
        pytest.param(
            {"prompt": "x", "context": None},
            [{"role": "user", "content": "x"}],
            [{"role": "user", "content": "x"}],
            [],
            id="null-context-is-no-context",
        ),
        pytest.param(
            {"prompt": "x", "template": "{{ .Prompt }}", "options": {"top_k": 1}},
            [{"role": "user", "content": "x"}],
            [{"role": "user", "content": "x"}],
            ["template", "top_k"],
            id="template-dropped-first",
        ),
        pytest.param(
            {"prompt": "x", "raw": True},
            [{"role": "user", "content": "x"}],
            None,
            [],
            id="raw-no-context-returned",
        ),
        pytest.param(
            {"prompt": "x", "raw": True, "context": []},
            [{"role": "user", "content": "x"}],
            None,
            [],
            id="raw-with-empty-context-allowed",
        ),
        pytest.param(
            {"prompt": "x", "raw": False, "system": "s"},
            [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
            [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
            [],
            id="raw-false",
        ),
    ],
)
def test_generate(
    fields: dict[str, Any],
    messages: list[dict[str, Any]],
    history: list[dict[str, str]] | None,
    dropped: list[str],
) -> None:
    plan = generate(**fields)
    assert plan.path == "chat/completions"
    assert plan.body["messages"] == messages
    assert plan.body["model"] == "gpt-4o"
    assert plan.history == history
    assert plan.dropped == dropped
    text = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in messages]
    assert plan.prompt_chars == sum(map(len, text)) + 16 * len(messages) + 12


def test_generate_history_does_not_alias_the_request() -> None:
    plan = generate(prompt="q", format="json", system="Be brief.")
    assert plan.body["messages"] == [
        JSON_SYSTEM,
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q"},
    ]
    assert plan.body["response_format"] == {"type": "json_object"}
    # the JSON instruction is a request detail, not part of the conversation carried in the context
    assert plan.history == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"raw": True, "template": "{{ .Prompt }}"},
            "raw mode does not support template, system, or context",
        ),
        ({"raw": True, "system": "s"}, "raw mode does not support template, system, or context"),
        ({"raw": True, "context": [1, 2]}, "raw mode does not support template, system, or context"),
        ({"raw": "yes"}, "invalid value for 'raw': expected true or false"),
        ({"prompt": 5}, "invalid value for 'prompt': expected a string"),
        ({"system": ["s"]}, "invalid value for 'system': expected a string"),
        ({"suffix": 1}, "invalid value for 'suffix': expected a string"),
        ({"template": {}}, "invalid value for 'template': expected a string"),
        ({"images": PNG_B64}, "invalid value for 'images': expected an array of base64 strings"),
        ({"images": ["%%%"]}, "invalid image input: image 0 is not valid base64"),
        ({"format": "yaml"}, 'invalid format: expected "json" or a valid JSON schema'),
    ],
)
def test_generate_errors(fields: dict[str, Any], message: str) -> None:
    assert error_of(generate, **fields).message == message


def test_raw_is_checked_before_capabilities() -> None:
    # Ollama rejects the combination before it looks at the model
    assert error_of(generate, EMBED, raw=True, system="s").message == (
        "raw mode does not support template, system, or context"
    )


@pytest.mark.parametrize(
    ("fields", "include_usage", "body", "dropped"),
    [
        pytest.param(
            {"prompt": "def add(a, b):", "suffix": "    return c"},
            True,
            {"model": "codestral", "prompt": "def add(a, b):", "suffix": "    return c", "stream": False},
            [],
            id="fill-in-the-middle",
        ),
        pytest.param(
            {"prompt": "", "suffix": "}", "stream": True, "options": {"num_predict": 32, "temperature": 0.2}},
            True,
            {
                "model": "codestral",
                "prompt": "",
                "suffix": "}",
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": 32,
                "temperature": 0.2,
            },
            [],
            id="streamed-with-options",
        ),
        pytest.param(
            {"prompt": "a", "suffix": "b", "stream": True, "template": "t", "options": {"mirostat": 1}},
            False,
            {"model": "codestral", "prompt": "a", "suffix": "b", "stream": True},
            ["template", "mirostat"],
            id="dropped-template-and-options",
        ),
    ],
)
def test_generate_with_suffix_uses_completions(
    fields: dict[str, Any], include_usage: bool, body: dict[str, Any], dropped: list[str]
) -> None:
    plan = generate(CODER, include_usage=include_usage, **fields)
    assert plan == ChatPlan(
        path="completions",
        body=body,
        stream=body["stream"],
        emit_thinking=False,
        logprobs=False,
        prompt_chars=len(fields["prompt"]) + len(fields["suffix"]),
        dropped=dropped,
        history=None,
    )


def test_chat_body_is_json_serializable() -> None:
    import orjson

    plan = chat(
        GPT5,
        messages=[
            {"role": "user", "content": "hi", "images": [PNG_B64]},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, None]}}}]},
            {"role": "tool", "content": "r"},
        ],
        tools=[WEATHER_TOOL_OLLAMA],
        format=SCHEMA,
        think="max",
        options={"num_predict": 5, "stop": ["\n"]},
        stream=True,
        include_usage=True,
    )
    assert orjson.loads(orjson.dumps(plan.body)) == plan.body
    assert plan.body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"a":[1,null]}'


@pytest.mark.parametrize("build", [chat, generate])
@pytest.mark.parametrize("flag", ["truncate", "shift"])
def test_truncate_and_shift_are_type_checked(build: Any, flag: str) -> None:
    assert build(**{flag: True}).body  # accepted (no upstream equivalent)
    assert error_of(build, **{flag: "yes"}).message == f"invalid value for '{flag}': expected true or false"


@pytest.mark.parametrize("build", [chat, generate])
def test_image_generation_fields_are_ignored(build: Any) -> None:
    """The SDKs still send Ollama's image-generation fields; a text model ignores them."""
    plan = build(width=512, height=512, steps=20)
    assert not {"width", "height", "steps"} & set(plan.body)
