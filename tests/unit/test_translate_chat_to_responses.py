"""The "responses" upstream dialect's pure translators: chat completions request -> Responses request, and
Responses answers (whole, streamed) -> chat completions. Payloads marked "OpenAI's example" are from OpenAI's
API reference and guides (platform.openai.com/docs/api-reference/responses, .../responses-streaming,
guides/function-calling, guides/reasoning), read 2026-12."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from falcon_ollama.translate.chat_to_responses import (
    ResponsesAnswerError,
    ResponsesStreamToChat,
    chat_to_responses,
    response_to_chat,
)

USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("chat", "expected"),
    [
        # messages -> input items
        (
            {"messages": [{"role": "system", "content": "be brief"}, USER]},
            {
                "input": [
                    {"type": "message", "role": "system", "content": "be brief"},
                    {"type": "message", "role": "user", "content": "hi"},
                ]
            },
        ),
        (
            {"messages": [{"role": "developer", "content": "x"}]},
            {"input": [{"type": "message", "role": "developer", "content": "x"}]},
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is it?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        ],
                    }
                ]
            },
            {
                "input": [
                    {
                        "type": "message",
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "what is it?"},
                            {
                                "type": "input_image",
                                "image_url": "data:image/png;base64,AAAA",
                                "detail": "auto",
                            },
                        ],
                    }
                ]
            },
        ),
        (
            {
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a":1}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                    {"role": "assistant", "content": "it is 42"},
                ]
            },
            {
                "input": [
                    {"type": "message", "role": "user", "content": "hi"},
                    {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a":1}'},
                    {"type": "function_call_output", "call_id": "call_1", "output": "42"},
                    {"type": "message", "role": "assistant", "content": "it is 42"},
                ]
            },
        ),
        # tools, tool_choice
        (
            {
                "messages": [USER],
                "tools": [
                    {"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
            },
            {
                "tools": [
                    {
                        "type": "function",
                        "name": "f",
                        "strict": False,
                        "description": "d",
                        "parameters": {"type": "object", "properties": {}},
                    }
                ],
                "tool_choice": {"type": "function", "name": "f"},
            },
        ),
        ({"messages": [USER], "tool_choice": "required"}, {"tool_choice": "required"}),
        # response_format -> text.format
        (
            {"messages": [USER], "response_format": {"type": "json_object"}},
            {"text": {"format": {"type": "json_object"}}},
        ),
        (
            {
                "messages": [USER],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": True},
                },
            },
            {
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "n",
                        "schema": {"type": "object"},
                        "strict": True,
                    }
                }
            },
        ),
        # limits, sampling, effort
        ({"messages": [USER], "max_tokens": 99}, {"max_output_tokens": 99}),
        ({"messages": [USER], "max_completion_tokens": 77}, {"max_output_tokens": 77}),
        ({"messages": [USER], "temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2, "top_p": 0.9}),
        ({"messages": [USER], "stream": True, "stream_options": {"include_usage": True}}, {"stream": True}),
        ({"model": "gpt-5", "messages": [USER]}, {"reasoning": {"summary": "auto"}}),
        (
            {"model": "gpt-5", "messages": [USER], "reasoning_effort": "high"},
            {"reasoning": {"effort": "high", "summary": "auto"}},
        ),
        (
            {"model": "gpt-5", "messages": [USER], "reasoning_effort": "minimal"},
            {"reasoning": {"effort": "minimal"}},
        ),
        (
            {"model": "gpt-5.1", "messages": [USER], "reasoning_effort": "none"},
            {"reasoning": {"effort": "none"}},
        ),
        ({"model": "gpt-5.1", "messages": [USER]}, {}),  # does not reason unless asked
        ({"model": "o4-mini", "messages": [USER]}, {"reasoning": {"summary": "auto"}}),
        ({"model": "gpt-4o", "messages": [USER]}, {}),
        (
            {"model": "qwen3", "messages": [USER], "reasoning_effort": "low"},
            {"reasoning": {"effort": "low", "summary": "auto"}},
        ),
    ],
)
def test_request(chat: dict[str, Any], expected: dict[str, Any]) -> None:
    body = chat_to_responses(chat).body
    assert body["store"] is False
    for key, value in expected.items():
        assert body[key] == value, key
    if "reasoning" not in expected:
        assert "reasoning" not in body
    for absent in ("messages", "max_tokens", "max_completion_tokens", "response_format", "stream_options"):
        assert absent not in body


def test_request_drops_what_responses_has_no_place_for() -> None:
    plan = chat_to_responses({"messages": [USER], "stop": ["x"], "seed": 1, "frequency_penalty": 0.5})
    assert plan.dropped == ["stop", "seed", "frequency_penalty"]
    assert not {"stop", "seed", "frequency_penalty"} & plan.body.keys()


def test_request_summaries_off() -> None:
    body = chat_to_responses({"model": "gpt-5", "messages": [USER]}, summaries=False).body
    assert "reasoning" not in body


# OpenAI's example: the create-response answer (API reference)
OPENAI_TEXT_RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "In a peaceful grove beneath a silver moon...",
                    "annotations": [],
                }
            ],
        }
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 123,
    },
    "user": None,
    "metadata": {},
}
# OpenAI's examples: a function_call output item (function-calling guide), a reasoning item with a summary
# (reasoning guide)
OPENAI_CALL = {
    "type": "function_call",
    "id": "fc_12345xyz",
    "call_id": "call_12345xyz",
    "name": "get_weather",
    "arguments": '{"location":"Paris, France"}',
}
OPENAI_REASONING = {
    "id": "rs_6876cf02e0bc8192b74af0fb64b715ff06fa2fcced15a5ac",
    "type": "reasoning",
    "summary": [
        {
            "type": "summary_text",
            "text": "**Answering a simple question**\n\nI'm looking at a straightforward question.",
        }
    ],
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**OPENAI_TEXT_RESPONSE, **changes}


@pytest.mark.parametrize(
    ("response", "message", "finish", "usage"),
    [
        (
            OPENAI_TEXT_RESPONSE,
            {"role": "assistant", "content": "In a peaceful grove beneath a silver moon..."},
            "stop",
            {
                "prompt_tokens": 36,
                "completion_tokens": 87,
                "total_tokens": 123,
                "completion_tokens_details": {"reasoning_tokens": 0},
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        ),
        (
            _with(output=[OPENAI_CALL], usage=None),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_12345xyz",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Paris, France"}'},
                    }
                ],
            },
            "tool_calls",
            None,
        ),
        (
            _with(
                output=[OPENAI_REASONING, *OPENAI_TEXT_RESPONSE["output"]],
                usage={
                    "input_tokens": 5,
                    "output_tokens": 9,
                    "output_tokens_details": {"reasoning_tokens": 4},
                },
            ),
            {
                "role": "assistant",
                "content": "In a peaceful grove beneath a silver moon...",
                "reasoning_content": OPENAI_REASONING["summary"][0]["text"],
            },
            "stop",
            {
                "prompt_tokens": 5,
                "completion_tokens": 9,
                "total_tokens": 14,
                "completion_tokens_details": {"reasoning_tokens": 4},
            },
        ),
        (
            _with(status="incomplete", incomplete_details={"reason": "max_output_tokens"}, usage=None),
            {"role": "assistant", "content": "In a peaceful grove beneath a silver moon..."},
            "length",
            None,
        ),
        (
            _with(status="incomplete", incomplete_details={"reason": "content_filter"}, usage=None),
            {"role": "assistant", "content": "In a peaceful grove beneath a silver moon..."},
            "content_filter",
            None,
        ),
        (
            _with(
                output=[
                    {
                        "type": "message",
                        "id": "m",
                        "role": "assistant",
                        "content": [{"type": "refusal", "refusal": "no"}],
                    }
                ],
                usage=None,
            ),
            {"role": "assistant", "content": "", "refusal": "no"},
            "stop",
            None,
        ),
    ],
)
def test_answer(response: dict[str, Any], message: dict[str, Any], finish: str, usage: Any) -> None:
    chat = response_to_chat(response)
    assert chat["object"] == "chat.completion"
    assert chat["id"] == response["id"] and chat["model"] == response["model"]
    assert chat["choices"] == [{"index": 0, "message": message, "finish_reason": finish}]
    assert chat.get("usage") == usage


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            _with(status="failed", error={"code": "server_error", "message": "The model failed."}),
            "The model failed.",
        ),
        ({"object": "response"}, "not a Responses object"),
        ([], "not a Responses object"),
    ],
)
def test_answer_failures(response: Any, error: str) -> None:
    with pytest.raises(ResponsesAnswerError, match=error):
        response_to_chat(response)


def _events(*events: dict[str, Any]) -> list[dict[str, Any]]:
    convert = ResponsesStreamToChat()
    out: list[dict[str, Any]] = []
    for number, event in enumerate(events):
        out.extend(orjson.loads(c) for c in convert.feed(orjson.dumps({**event, "sequence_number": number})))
    return out


CREATED = {
    "type": "response.created",
    "response": {"id": "resp_1", "model": "gpt-5", "created_at": 7, "output": []},
}


def _done(status: str = "completed", **response: Any) -> dict[str, Any]:
    return {
        "type": f"response.{status}",
        "response": {"id": "resp_1", "status": status, "output": [], **response},
    }


def test_stream_text_and_reasoning_summaries() -> None:
    chunks = _events(
        CREATED,
        {"type": "response.in_progress", "response": {}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "summary": []},
        },
        {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "summary_index": 0, "part": {}},
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "summary_index": 0,
            "delta": "**A**",
        },
        {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "summary_index": 1, "part": {}},
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "summary_index": 1,
            "delta": "b",
        },
        # OpenAI's example (streaming reference): a text delta
        {
            "type": "response.output_text.delta",
            "item_id": "msg_123",
            "output_index": 0,
            "content_index": 0,
            "delta": "In",
        },
        {"type": "response.output_text.done", "item_id": "msg_123", "text": "In"},
        _done(
            usage={
                "input_tokens": 3,
                "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 2},
                "total_tokens": 8,
            }
        ),
    )
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "**A**\n\nb"
    assert "".join(d.get("content", "") for d in deltas) == "In"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "total_tokens": 8,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert {c["id"] for c in chunks} == {"resp_1"} and {c["model"] for c in chunks} == {"gpt-5"}


def test_stream_function_calls() -> None:
    # OpenAI's example (function-calling guide, streaming): output_item.added then arguments deltas
    chunks = _events(
        CREATED,
        {
            "type": "response.output_item.added",
            "response_id": "resp_1234xyz",
            "output_index": 0,
            "item": {
                "type": "function_call",
                "id": "fc_1234xyz",
                "call_id": "call_1234xyz",
                "name": "get_current_weather",
                "arguments": "",
            },
        },
        {
            "type": "response.function_call_arguments.delta",
            "response_id": "resp_1234xyz",
            "item_id": "fc_1234xyz",
            "output_index": 0,
            "delta": '{"',
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1234xyz",
            "output_index": 0,
            "delta": 'a":1}',
        },
        {"type": "response.function_call_arguments.done", "item_id": "fc_1234xyz", "arguments": '{"a":1}'},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {
                "type": "function_call",
                "id": "fc_2",
                "call_id": "call_2",
                "name": "g",
                "arguments": "",
            },
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_2",
            "output_index": 1,
            "delta": "{}",
        },
        _done(),
    )
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "call_1234xyz",
        "type": "function",
        "function": {"name": "get_current_weather", "arguments": ""},
    }
    assert [c["index"] for c in calls] == [0, 0, 0, 1, 1]
    assert "".join(c["function"]["arguments"] for c in calls if c["index"] == 0) == '{"a":1}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_incomplete_is_length() -> None:
    chunks = _events(CREATED, _done("incomplete", incomplete_details={"reason": "max_output_tokens"}))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}},
            "boom",
        ),
        # OpenAI's example (streaming reference): the error event
        (
            {"type": "error", "code": "ERR_SOMETHING", "message": "Something went wrong", "param": None},
            "Something went wrong",
        ),
        ({"type": "error"}, "the upstream reported an error"),
    ],
)
def test_stream_failures(event: dict[str, Any], message: str) -> None:
    convert = ResponsesStreamToChat()
    convert.feed(orjson.dumps(CREATED))
    with pytest.raises(ResponsesAnswerError, match=message):
        convert.feed(orjson.dumps(event))
    assert not convert.done


@pytest.mark.parametrize("payload", [b"not json", b"[1]"])
def test_stream_garbage(payload: bytes) -> None:
    with pytest.raises(ResponsesAnswerError):
        ResponsesStreamToChat().feed(payload)


def test_stream_done_only_at_the_end() -> None:
    convert = ResponsesStreamToChat()
    convert.feed(orjson.dumps(CREATED))
    assert not convert.done
    convert.feed(orjson.dumps(_done()))
    assert convert.done
