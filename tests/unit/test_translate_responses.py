"""OpenAI Responses <-> chat completions: one table row per rule (translate/responses_*.py).

Every Response object and stream event the translators write is validated against the ``openai`` SDK's own
pydantic models (the event class picked by its ``type``), so a missing or mistyped field fails here."""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from falcon_ollama.catalog_config import CatalogConfig, ModelFacts
from falcon_ollama.errors import InvalidRequest, ProxyError, TooLarge, Unsupported, UpstreamProtocolError
from falcon_ollama.limits import Limits
from falcon_ollama.translate.responses_request import (
    ResponseShape,
    ResponsesPlan,
    ToolNames,
    responses_to_chat,
)
from falcon_ollama.translate.responses_response import (
    ResponsesStreamTranslator,
    StreamMarks,
    completion_to_response,
    failed_event,
)
from falcon_ollama.translate.rules import RequestRules

CHAT = CatalogConfig().facts_for("gpt-4o")
REASONING = CatalogConfig().facts_for("o4-mini")
NO_TOOLS = ModelFacts(8192, ("completion",), "x")
FN = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
_EVENT_CLASSES: dict[str, Any] = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}


def plan(body: dict[str, Any], facts: ModelFacts = CHAT, limits: Limits | None = None) -> ResponsesPlan:
    rules = RequestRules() if limits is None else RequestRules(limits=limits)
    return responses_to_chat({"model": "m", **body}, facts, "up", rules)


# -- requests -------------------------------------------------------------------------------------------

REQUESTS: list[tuple[str, dict[str, Any], ModelFacts, dict[str, Any]]] = [
    ("string input", {"input": "hi"}, CHAT, {"messages": [{"role": "user", "content": "hi"}]}),
    (
        "instructions become the first system message",
        {"input": "hi", "instructions": "be brief"},
        CHAT,
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]},
    ),
    (
        "roles and text parts; developer -> system",
        {
            "input": [
                {"role": "developer", "content": "rules"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "b"}]},
                {"role": "system", "content": "s"},
            ]
        },
        CHAT,
        {
            "messages": [
                {"role": "system", "content": "rules"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "system", "content": "s"},
            ]
        },
    ),
    (
        "image parts keep url and detail",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                    ],
                }
            ]
        },
        CHAT,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                        },
                    ],
                }
            ]
        },
    ),
    (
        "function call and output; reasoning items dropped; text between merged into the call message",
        {
            "input": [
                {"role": "user", "content": "go"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"role": "assistant", "content": "calling"},
                {"type": "function_call_output", "call_id": "c1", "output": "done"},
            ]
        },
        CHAT,
        {
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": "calling",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "done"},
            ]
        },
    ),
    (
        "parallel calls share one assistant message; an unanswered call gets an empty result",
        {
            "input": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "two calls"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "x"}],
                },
                {"role": "user", "content": "next"},
            ]
        },
        CHAT,
        {
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": "two calls",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "c2", "content": "x"},
                {"role": "tool", "tool_call_id": "c1", "content": ""},
                {"role": "user", "content": "next"},
            ]
        },
    ),
    (
        "an output for an unknown call becomes user text",
        {"input": [{"type": "function_call_output", "call_id": "zz", "output": "r"}]},
        CHAT,
        {"messages": [{"role": "user", "content": "Tool result (zz):\nr"}]},
    ),
    (
        "function tools keep strict; namespace members flattened; custom tools take one string",
        {
            "input": "x",
            "tools": [
                {**FN, "strict": True, "description": "d"},
                {
                    "type": "namespace",
                    "name": "crm",
                    "description": "c",
                    "tools": [{"type": "function", "name": "g"}],
                },
                {"type": "custom", "name": "apply_patch", "description": "patch"},
            ],
            "tool_choice": {"type": "function", "name": "g", "namespace": "crm"},
            "parallel_tool_calls": False,
        },
        CHAT,
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "description": "d",
                        "parameters": FN["parameters"],
                        "strict": True,
                    },
                },
                {
                    "type": "function",
                    "function": {"name": "crm__g", "parameters": {"type": "object", "properties": {}}},
                },
                {
                    "type": "function",
                    "function": {
                        "name": "apply_patch",
                        "description": "patch",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "input": {"type": "string", "description": "The tool's free-form input."}
                            },
                            "required": ["input"],
                        },
                    },
                },
            ],
            "tool_choice": {"type": "function", "function": {"name": "crm__g"}},
            "parallel_tool_calls": False,
        },
    ),
    (
        "sampling and max_output_tokens for a chat model",
        {"input": "x", "temperature": 0.2, "top_p": 0.9, "max_output_tokens": 50},
        CHAT,
        {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50},
    ),
    (
        "reasoning model: effort passed, sampling dropped, max_completion_tokens",
        {
            "input": "x",
            "temperature": 0.2,
            "max_output_tokens": 50,
            "reasoning": {"effort": "high", "summary": "auto"},
        },
        REASONING,
        {"reasoning_effort": "high", "max_completion_tokens": 50},
    ),
    (
        "Ollama's effort words map to the highest OpenAI level",
        {"input": "x", "reasoning": {"effort": "max"}},
        REASONING,
        {"reasoning_effort": "high"},
    ),
    (
        "json_schema -> response_format",
        {
            "input": "x",
            "text": {
                "format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": True}
            },
        },
        CHAT,
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": True},
            }
        },
    ),
    (
        "json_object -> response_format",
        {"input": "json please", "text": {"format": {"type": "json_object"}}},
        CHAT,
        {
            "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "json please"}],
        },
    ),
    (
        "json_object with no message saying JSON: a system line that does (OpenAI's rule, as /api/chat)",
        {"input": "hi", "instructions": "be brief", "text": {"format": {"type": "json_object"}}},
        CHAT,
        {
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Respond with a JSON object."},
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
        },
    ),
    (
        "json_object: 'JSON' in instructions is enough",
        {"input": "hi", "instructions": "Answer in JSON", "text": {"format": {"type": "json_object"}}},
        CHAT,
        {"messages": [{"role": "system", "content": "Answer in JSON"}, {"role": "user", "content": "hi"}]},
    ),
    (
        "a hosted tool's call replayed as history is skipped (Ollama skips web_search_call)",
        {
            "input": [
                {"role": "user", "content": "news?"},
                {
                    "type": "web_search_call",
                    "id": "ws_1",
                    "status": "completed",
                    "action": {"type": "search"},
                },
                {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"]},
                {"role": "assistant", "content": "here"},
            ]
        },
        CHAT,
        {"messages": [{"role": "user", "content": "news?"}, {"role": "assistant", "content": "here"}]},
    ),
    (
        "stream asks for usage",
        {"input": "x", "stream": True},
        CHAT,
        {"stream": True, "stream_options": {"include_usage": True}},
    ),
    (
        "accepted and not forwarded",
        {
            "input": "x",
            "store": True,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k",
            "metadata": {"a": "b"},
            "user": "u",
            "truncation": "auto",
            "service_tier": "auto",
        },
        CHAT,
        {"user": "u"},
    ),
]


@pytest.mark.parametrize(("name", "body", "facts", "expected"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request(name: str, body: dict[str, Any], facts: ModelFacts, expected: dict[str, Any]) -> None:
    out = plan(body, facts).body
    assert out["model"] == "up"
    for key, value in expected.items():
        assert out[key] == value, key
    for absent in ("store", "include", "prompt_cache_key", "metadata", "truncation"):
        assert absent not in out
    if facts.reasoning:
        assert "temperature" not in out and "max_tokens" not in out


def test_json_object_fallback_states_the_schema() -> None:
    """For an upstream that refuses json_schema: JSON mode, the schema in the (first) system message."""
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "n", "schema": schema}
    request = plan({"input": "hi", "instructions": "be brief", "text": {"format": fmt}})
    fallback = request.json_object_fallback()
    assert fallback is not None
    assert fallback["response_format"] == {"type": "json_object"}
    system, user = fallback["messages"]
    assert system["content"].startswith("be brief\n\n") and system["content"].endswith(
        orjson.dumps(schema).decode()
    )
    assert user == {"role": "user", "content": "hi"}
    assert plan({"input": "hi", "text": {"format": {"type": "json_object"}}}).json_object_fallback() is None
    assert plan({"input": "hi"}).json_object_fallback() is None


# (upstream id, reasoning.effort as sent, reasoning_effort upstream; None: not sent). Ollama accepts every
# effort for any model; each OpenAI family refuses the values it does not list (translate/effort.py).
EFFORTS: list[tuple[str, str, str | None]] = [
    ("o4-mini", "none", None),  # the o-series cannot switch reasoning off
    ("o4-mini", "minimal", "low"),
    ("o4-mini", "max", "high"),
    ("o4-mini", "ultra", "high"),
    ("gpt-5", "none", "minimal"),
    ("gpt-5", "xhigh", "high"),
    ("gpt-5", "minimal", "minimal"),
    ("gpt-5.1", "minimal", "none"),
    ("gpt-5.1", "xhigh", "high"),
    ("gpt-5.2", "max", "xhigh"),
    ("gpt-5-pro", "medium", "high"),
    ("gpt-5-pro", "none", None),
    ("o1-mini", "low", None),  # takes no effort at all
]


@pytest.mark.parametrize(("upstream_id", "effort", "expected"), EFFORTS)
def test_effort_is_fitted_to_the_family(upstream_id: str, effort: str, expected: str | None) -> None:
    body = {"model": "m", "input": "x", "reasoning": {"effort": effort}}
    out = responses_to_chat(body, REASONING, upstream_id).body
    assert out.get("reasoning_effort") == expected


def test_dropped_fields_are_reported() -> None:
    dropped = plan(
        {"input": "x", "tools": [{"type": "web_search"}, FN], "text": {"verbosity": "low"}, "frobnicate": 1},
        REASONING,
    ).dropped
    assert any("web_search" in d for d in dropped)
    assert "text.verbosity" in dropped and "frobnicate" in dropped


ERRORS: list[tuple[dict[str, Any], ModelFacts, type[ProxyError], str]] = [
    ({"input": "x", "previous_response_id": "resp_1"}, CHAT, InvalidRequest, "stateless"),
    ({"input": "x", "conversation": "conv_1"}, CHAT, InvalidRequest, "stateless"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, CHAT, InvalidRequest, "stateless"),
    ({"input": "x", "background": True}, CHAT, Unsupported, "background"),
    ({}, CHAT, InvalidRequest, "'input'"),
    ({"input": 3}, CHAT, InvalidRequest, "'input'"),
    ({"input": []}, CHAT, InvalidRequest, "empty"),
    ({"input": [{"role": "tool", "content": "x"}]}, CHAT, InvalidRequest, "input[0].role"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        CHAT,
        Unsupported,
        "file",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        CHAT,
        Unsupported,
        "file_id",
    ),
    ({"input": [{"type": "function_call", "name": "f"}]}, CHAT, InvalidRequest, "call_id"),
    (  # a result the model would need: refused, not lost
        {
            "input": [
                {"type": "computer_call_output", "call_id": "c", "output": {"type": "computer_screenshot"}}
            ]
        },
        CHAT,
        Unsupported,
        "computer_call_output",
    ),
    ({"input": [{"type": "mystery", "content": "x"}]}, CHAT, Unsupported, "mystery"),
    # only hosted tools' calls are skipped: any other unknown item could be input the model should read
    ({"input": [{"type": "input_text", "text": "say B"}]}, CHAT, Unsupported, "input_text"),
    ({"input": [{"type": "local_shell_call", "action": {}}]}, CHAT, Unsupported, "local_shell_call"),
    ({"input": [{"type": ["x"]}]}, CHAT, Unsupported, "['x']"),  # not a string: refused, not a crash
    ({"input": [{"type": {"a": 1}}]}, CHAT, Unsupported, "{'a': 1}"),
    ({"input": [{"id": "x"}]}, CHAT, Unsupported, "None"),
    ({"input": "x", "tools": [FN]}, NO_TOOLS, Unsupported, "tools"),
    ({"input": "x"}, CatalogConfig().facts_for("text-embedding-3-small"), Unsupported, "embedding"),
    ({"input": "x", "tools": [{"type": "bogus"}]}, CHAT, InvalidRequest, "tools[0].type"),
    ({"input": "x", "reasoning": {"effort": "extreme"}}, REASONING, InvalidRequest, "reasoning.effort"),
    (
        {"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
        CHAT,
        InvalidRequest,
        "schema",
    ),
    ({"input": "x", "max_output_tokens": 0}, CHAT, InvalidRequest, "max_output_tokens"),
    ({"input": "x", "temperature": "hot"}, CHAT, InvalidRequest, "temperature"),
    ({"input": "x", "stream": "yes"}, CHAT, InvalidRequest, "stream"),
]


@pytest.mark.parametrize(("body", "facts", "kind", "fragment"), ERRORS)
def test_request_errors(
    body: dict[str, Any], facts: ModelFacts, kind: type[ProxyError], fragment: str
) -> None:
    with pytest.raises(kind) as info:
        plan(body, facts)
    assert fragment in info.value.message


def test_limits() -> None:
    small = Limits(max_messages=2, max_text_chars=10, max_images=1)
    with pytest.raises(TooLarge):
        plan({"input": [{"role": "user", "content": "a"}] * 3}, limits=small)
    with pytest.raises(TooLarge):
        plan({"input": "x" * 11}, limits=small)
    image = {"type": "input_image", "image_url": "https://example.com/a.png"}
    with pytest.raises(TooLarge):
        plan({"input": [{"role": "user", "content": [image, image]}]}, limits=small)


def test_echo_fields_make_a_valid_response_object() -> None:
    p = plan(
        {"input": "x", "tools": [FN], "tool_choice": "required", "text": {"format": {"type": "json_object"}}}
    )
    answer = _completion({"role": "assistant", "content": "{}"}, "stop")
    response = completion_to_response(answer, ResponseShape("m", p.echo, p.names, prompt_chars=1))
    parsed = Response.model_validate(response)
    assert parsed.tool_choice == "required"
    assert parsed.tools[0].type == "function"
    assert (
        parsed.text is not None
        and parsed.text.format is not None
        and parsed.text.format.type == "json_object"
    )


# -- whole answers --------------------------------------------------------------------------------------


def _completion(message: dict[str, Any], finish: str, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "x", "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


NAMES = ToolNames(namespaced={"crm__find": ("crm", "find")}, custom={"apply_patch"})
USAGE = {
    "prompt_tokens": 10,
    "completion_tokens": 5,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
ANSWERS: list[tuple[str, bytes, list[str], str, dict[str, Any]]] = [
    (
        "text",
        _completion({"role": "assistant", "content": "hi"}, "stop", USAGE),
        ["message"],
        "completed",
        {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
    ),
    (
        "reasoning first",
        _completion({"role": "assistant", "content": "hi", "reasoning_content": "hmm"}, "stop"),
        ["reasoning", "message"],
        "completed",
        {"input_tokens": 1, "output_tokens": 2},
    ),
    (
        "max tokens",
        _completion({"role": "assistant", "content": "hi"}, "length"),
        ["message"],
        "incomplete",
        {},
    ),
    (
        "calls: plain, namespaced, custom",
        _completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                    {"id": "c2", "type": "function", "function": {"name": "crm__find", "arguments": "{}"}},
                    {
                        "id": "c3",
                        "type": "function",
                        "function": {"name": "apply_patch", "arguments": '{"input":"*** x"}'},
                    },
                ],
            },
            "tool_calls",
        ),
        ["function_call", "function_call", "custom_tool_call"],
        "completed",
        {},
    ),
]


@pytest.mark.parametrize(
    ("name", "payload", "types", "status", "usage"), ANSWERS, ids=[a[0] for a in ANSWERS]
)
def test_completion_to_response(
    name: str, payload: bytes, types: list[str], status: str, usage: dict[str, Any]
) -> None:
    echo = plan({"input": "x"}).echo
    response = completion_to_response(payload, ResponseShape("m", echo, NAMES, prompt_chars=4))
    parsed = Response.model_validate(response)
    assert [item.type for item in parsed.output] == types
    assert parsed.status == status
    assert parsed.usage is not None
    for key, value in usage.items():
        assert getattr(parsed.usage, key) == value
    if name == "text":
        assert parsed.usage.input_tokens_details.cached_tokens == 4
        assert parsed.usage.output_tokens_details.reasoning_tokens == 2
    if status == "incomplete":
        assert parsed.incomplete_details is not None
        assert parsed.incomplete_details.reason == "max_output_tokens"
    if name.startswith("calls"):
        plain, namespaced, custom = response["output"]
        assert plain == {**plain, "call_id": "c1", "name": "f", "arguments": '{"a":1}'}
        assert (namespaced.get("namespace"), namespaced["name"]) == ("crm", "find")
        assert custom == {**custom, "call_id": "c3", "name": "apply_patch", "input": "*** x"}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"nope", "not JSON"),
        (b"[]", "not an object"),
        (b'{"choices": []}', "without choices"),
        (b'{"error": {"message": "boom"}}', "boom"),
    ],
)
def test_completion_errors(payload: bytes, fragment: str) -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        completion_to_response(payload, ResponseShape("m"))
    assert fragment in info.value.message


# -- streams --------------------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {"id": "x", "object": "chat.completion.chunk", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


def events_of(data: bytes) -> list[dict[str, Any]]:
    """Parse the SSE bytes, check the framing, and validate each event with the SDK's model for its type."""
    events = []
    for frame in data.split(b"\n\n"):
        if not frame:
            continue
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        event = orjson.loads(data_line[len(b"data: ") :])
        assert event_line[len(b"event: ") :].decode() == event["type"]
        _EVENT_CLASSES[event["type"]].model_validate(event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def run_stream(payloads: list[bytes], names: ToolNames = NAMES) -> list[dict[str, Any]]:
    translator = ResponsesStreamTranslator(
        ResponseShape("m", plan({"input": "x"}).echo, names, prompt_chars=8)
    )
    out = b"".join(translator.feed(p) for p in payloads) + translator.finish()
    return events_of(out)


TEXT_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
REASONING_EVENTS = [
    "response.output_item.added",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_summary_part.done",
    "response.output_item.done",
]
CALL_START = [
    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
]
STREAMS: list[tuple[str, list[bytes], list[str], str]] = [
    (
        "text",
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "a"}),
            chunk({"content": "b"}),
            chunk(finish="stop"),
            chunk(usage={"prompt_tokens": 3, "completion_tokens": 2}),
        ],
        [*TEXT_EVENTS, "response.completed"],
        "completed",
    ),
    (
        "reasoning then text",
        [
            chunk({"reasoning_content": "r"}),
            chunk({"content": "a"}),
            chunk({"content": "b"}),
            chunk(finish="stop"),
        ],
        [*REASONING_EVENTS, *TEXT_EVENTS, "response.completed"],
        "completed",
    ),
    (
        "max tokens",
        [chunk({"content": "a"}), chunk({"content": "b"}), chunk(finish="length")],
        [*TEXT_EVENTS, "response.incomplete"],
        "incomplete",
    ),
    (
        "function call streamed",
        [
            chunk({"tool_calls": CALL_START}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
            chunk(finish="tool_calls"),
        ],
        [
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ],
        "completed",
    ),
    (
        "custom tool call",
        [
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c9",
                            "function": {"name": "apply_patch", "arguments": '{"input":"p"}'},
                        }
                    ]
                }
            ),
            chunk(finish="tool_calls"),
        ],
        [
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed",
        ],
        "completed",
    ),
    ("empty answer", [chunk(finish="stop")], ["response.completed"], "completed"),
]


@pytest.mark.parametrize(("name", "payloads", "types", "status"), STREAMS, ids=[s[0] for s in STREAMS])
def test_stream(name: str, payloads: list[bytes], types: list[str], status: str) -> None:
    events = run_stream(payloads)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", *types]
    final = Response.model_validate(events[-1]["response"])
    assert final.status == status
    assert final.id == events[0]["response"]["id"]
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert added == [e["output_index"] for e in done] == list(range(len(final.output)))
    assert [e["item"] for e in done] == [item.model_dump(exclude_unset=True) for item in final.output]
    if name == "text":
        assert final.output_text == "ab"
        assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (3, 2)
    if name == "function call streamed":
        assert events[-3]["arguments"] == '{"a":1}'
        assert final.output[0].type == "function_call" and final.output[0].call_id == "c1"


def test_two_parallel_calls_get_their_own_items() -> None:
    events = run_stream(
        [
            chunk({"tool_calls": CALL_START}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 1, "id": "c2", "function": {"name": "crm__find", "arguments": "{}"}}
                    ]
                }
            ),
            chunk(finish="tool_calls"),
        ]
    )
    final = events[-1]["response"]["output"]
    assert [(i["call_id"], i["name"], i.get("namespace")) for i in final] == [
        ("c1", "f", None),
        ("c2", "find", "crm"),
    ]


def test_stream_cut_before_finish_raises_and_fail_frames_it() -> None:
    translator = ResponsesStreamTranslator(
        ResponseShape("m", plan({"input": "x"}).echo, NAMES, prompt_chars=8)
    )
    out = translator.feed(chunk({"content": "a"}))
    with pytest.raises(UpstreamProtocolError):
        translator.finish()
    events = events_of(out + translator.fail("the upstream closed the connection"))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "the upstream closed the connection"


CREATED = b'data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1"}}\n\n'
SPACED = b'data: {"sequence_number": 0, "response": {"id": "resp_2"}}\n\n'
LATER = b'data: {"sequence_number":7,"item":{"id":"msg_1"}}\n\ndata: {"sequence_number":8}\n\n'


@pytest.mark.parametrize(
    ("chunks", "response_id", "sequence"),
    [
        ([], None, -1),
        ([CREATED], "resp_1", 0),
        ([SPACED, LATER], "resp_2", 8),
        ([b'{"item":{"id":"msg_1"}}'], None, -1),  # an item id is not the response's
    ],
)
def test_stream_marks(chunks: list[bytes], response_id: str | None, sequence: int) -> None:
    marks = StreamMarks()
    for chunk in chunks:
        marks.observe(chunk)
    assert (marks.response_id, marks.sequence) == (response_id, sequence)


def test_failed_event_frames_a_forwarded_stream() -> None:
    """The frame ending a broken forwarded stream: a valid ``response.failed`` event, error and echo set."""
    echo = plan({"input": "x", "tools": [FN], "tool_choice": "required"}).echo
    frame = failed_event("llama3.2", echo, "the upstream went away", clock=lambda: 7)
    kind, data = frame.decode().removesuffix("\n\n").split("\n")
    assert kind == "event: response.failed"
    event = _EVENT_CLASSES["response.failed"].model_validate(orjson.loads(data.removeprefix("data: ")))
    response = event.response
    assert (response.status, response.model, response.created_at) == ("failed", "llama3.2", 7)
    assert response.error.code == "server_error" and response.error.message == "the upstream went away"
    assert response.tool_choice == "required" and response.output == []


@pytest.mark.parametrize(
    ("payload", "fragment"), [(b"{bad", "invalid JSON"), (b'{"error": {"message": "x"}}', "x")]
)
def test_stream_upstream_errors(payload: bytes, fragment: str) -> None:
    translator = ResponsesStreamTranslator(ResponseShape("m"))
    with pytest.raises(UpstreamProtocolError) as info:
        translator.feed(payload)
    assert fragment in info.value.message


def test_counts_estimate_without_usage() -> None:
    translator = ResponsesStreamTranslator(ResponseShape("m", prompt_chars=40))
    translator.feed(chunk({"content": "abcdefgh"}))
    assert translator.counts() == (10, 2)
