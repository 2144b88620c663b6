"""The Anthropic Messages translation, table by table: request -> chat completion, answers -> message/SSE."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from falcon_ollama.catalog_config import ModelFacts
from falcon_ollama.errors import InvalidRequest, ProxyError, TooLarge, UpstreamProtocolError
from falcon_ollama.translate.anthropic_request import estimate_input_tokens, messages_to_openai
from falcon_ollama.translate.anthropic_response import MessageStream, completion_to_message, error_type

CHAT = ModelFacts(128000, ("completion", "tools", "vision"), "gpt-4o")
REASONING = ModelFacts(200000, ("completion", "tools", "thinking"), "o4", reasoning=True)
HI = [{"role": "user", "content": "hi"}]


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": HI, **fields}


# --- request ----------------------------------------------------------------------------------------------

REQUEST_CASES: list[tuple[str, dict[str, Any], ModelFacts, dict[str, Any], tuple[str, ...]]] = [
    ("plain", request(), CHAT, {"model": "up", "max_tokens": 64, "messages": HI}, ()),
    (
        "reasoning model: max_completion_tokens, sampling dropped",
        request(temperature=0.2, top_p=0.5),
        REASONING,
        {"max_completion_tokens": 64},
        ("temperature", "top_p"),
    ),
    ("sampling kept", request(temperature=0.2, top_p=0.5), CHAT, {"temperature": 0.2, "top_p": 0.5}, ()),
    ("top_k dropped", request(top_k=3), CHAT, {}, ("top_k",)),
    ("stop sequences", request(stop_sequences=["a", "b"]), CHAT, {"stop": ["a", "b"]}, ()),
    (
        "more stop sequences than OpenAI takes: the first 4, as /api/chat",
        request(stop_sequences=["a", "b", "c", "d", "e", "f"]),
        CHAT,
        {"stop": ["a", "b", "c", "d"]},
        ("stop_sequences (beyond the first 4)",),
    ),
    # reasoning models refuse 'stop': dropped with a warning, not a 400 from the upstream
    ("stop on a reasoning model", request(stop_sequences=["a"]), REASONING, {}, ("stop_sequences",)),
    (
        "stream asks for usage",
        request(stream=True),
        CHAT,
        {"stream": True, "stream_options": {"include_usage": True}},
        (),
    ),
    (
        "system string",
        request(system="be brief"),
        CHAT,
        {"messages": [{"role": "system", "content": "be brief"}, *HI]},
        (),
    ),
    (
        "system blocks, cache_control and metadata ignored",
        request(
            system=[
                {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "b"},
            ],
            metadata={"user_id": "x"},
            context_management={"edits": []},
        ),
        CHAT,
        {"messages": [{"role": "system", "content": "a\n\nb"}, *HI]},
        (),
    ),
    (
        "role system inside messages",
        request(messages=[*HI, {"role": "system", "content": [{"type": "text", "text": "remember"}]}]),
        CHAT,
        {"messages": [*HI, {"role": "system", "content": "remember"}]},
        (),
    ),
    (
        "budget -> low",
        request(thinking={"type": "enabled", "budget_tokens": 1024}),
        REASONING,
        {"reasoning_effort": "low"},
        (),
    ),
    (
        "budget -> medium",
        request(thinking={"type": "enabled", "budget_tokens": 8000}),
        REASONING,
        {"reasoning_effort": "medium"},
        (),
    ),
    (
        "budget -> high",
        request(thinking={"type": "enabled", "budget_tokens": 32000}),
        REASONING,
        {"reasoning_effort": "high"},
        (),
    ),
    (
        "effort wins over budget",
        request(thinking={"type": "enabled", "budget_tokens": 32000}, output_config={"effort": "low"}),
        REASONING,
        {"reasoning_effort": "low"},
        (),
    ),
    ("adaptive: backend default", request(thinking={"type": "adaptive"}), REASONING, {}, ()),
    (
        "thinking on a chat model",
        request(thinking={"type": "enabled", "budget_tokens": 2048}),
        CHAT,
        {},
        ("thinking",),
    ),
    (
        "tools, $schema stripped, additionalProperties kept, any -> required",
        request(
            tools=[
                {
                    "name": "f",
                    "description": "d",
                    "input_schema": {"$schema": "x", "type": "object", "additionalProperties": False},
                    "cache_control": {"type": "ephemeral"},
                }
            ],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        ),
        CHAT,
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "additionalProperties": False},
                        "description": "d",
                    },
                }
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
        (),
    ),
    (
        "server tools dropped",
        request(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        CHAT,
        {},
        ("tools[web_search]",),
    ),
    (
        # the warned-once names are fixed words: a client cannot grow them with types of its own
        "unknown tool types dropped under one name",
        request(tools=[{"type": "zz_1", "name": "a"}, {"type": "zz_2", "name": "b"}]),
        CHAT,
        {},
        ("tools[other types]", "tools[other types]"),
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "facts", "expected", "dropped"), REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES]
)
def test_request(
    name: str, body: dict[str, Any], facts: ModelFacts, expected: dict[str, Any], dropped: tuple[str, ...]
) -> None:
    plan = messages_to_openai(body, facts, "up")
    out: dict[str, Any] = dict(plan.body)
    for key, value in expected.items():
        assert out[key] == value, key
    assert plan.dropped == dropped
    assert ("max_tokens" in out) != ("max_completion_tokens" in out)
    assert "top_k" not in out and "metadata" not in out and "thinking" not in out
    if not facts.reasoning:
        assert "reasoning_effort" not in out


DISABLED = {"type": "disabled"}
# thinking: disabled is Ollama's think=false: the family's off switch (translate/effort.py, as /api/chat sends
# it), winning over output_config.effort, and the answer's thinking hidden.
THINK_CASES: list[tuple[str, dict[str, Any], ModelFacts, str, str | None, bool]] = [
    (
        "disabled, o-series: no off switch, nothing sent",
        request(thinking=DISABLED),
        REASONING,
        "o4-mini",
        None,
        False,
    ),
    ("disabled, gpt-5: minimal", request(thinking=DISABLED), REASONING, "gpt-5", "minimal", False),
    ("disabled, gpt-5.1: none", request(thinking=DISABLED), REASONING, "gpt-5.1", "none", False),
    (
        "disabled wins over effort",
        request(thinking=DISABLED, output_config={"effort": "high"}),
        REASONING,
        "gpt-5",
        "minimal",
        False,
    ),
    ("disabled on a chat model: nothing sent", request(thinking=DISABLED), CHAT, "gpt-4o", None, False),
    (
        "effort alone, clamped for the family",
        request(output_config={"effort": "max"}),
        REASONING,
        "gpt-5.2",
        "xhigh",
        True,
    ),
    ("absent: the default", request(), REASONING, "gpt-5", None, True),
]


@pytest.mark.parametrize(
    ("name", "body", "facts", "upstream", "effort", "emit"), THINK_CASES, ids=[c[0] for c in THINK_CASES]
)
def test_thinking_disabled(
    name: str, body: dict[str, Any], facts: ModelFacts, upstream: str, effort: str | None, emit: bool
) -> None:
    plan = messages_to_openai(body, facts, upstream)
    assert plan.body.get("reasoning_effort") == effort and plan.emit_thinking is emit
    assert plan.dropped == ()


def test_conversation_with_tools_images_and_documents() -> None:
    png = base64.b64encode(b"png").decode()
    text = base64.b64encode(b"plain text").decode()
    body = request(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                    {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "bad"},
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                        ],
                    },
                    {
                        "type": "document",
                        "title": "T",
                        "source": {"type": "base64", "media_type": "text/plain", "data": text},
                    },
                ],
            },
        ]
    )
    messages = messages_to_openai(body, CHAT, "up").body["messages"]
    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "one"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: bad"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                {"type": "text", "text": "T\n\nplain text"},
            ],
        },
    ]


ERROR_CASES: list[tuple[dict[str, Any], type[ProxyError], str]] = [
    ({"model": "m", "messages": HI}, InvalidRequest, "max_tokens: Field required"),
    (request(max_tokens=0), InvalidRequest, "max_tokens: must be a positive integer"),
    (request(max_tokens=True), InvalidRequest, "max_tokens: must be a positive integer"),
    ({"model": "m", "max_tokens": 5}, InvalidRequest, "messages: Field required"),
    (request(messages="hi"), InvalidRequest, "messages: must be an array"),
    (request(messages=[]), InvalidRequest, "messages: at least one message is required"),
    (request(messages=[{"role": "tool", "content": "x"}]), InvalidRequest, "messages.0.role"),
    (request(messages=[{"role": "user", "content": 5}]), InvalidRequest, "messages.0.content"),
    (
        request(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        InvalidRequest,
        "messages.0.content.0.text",
    ),
    (
        request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                        }
                    ],
                }
            ]
        ),
        InvalidRequest,
        "messages.0.content.0.source.media_type",
    ),
    (
        request(
            messages=[
                {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": []}]}
            ]
        ),
        InvalidRequest,
        "messages.0.content.0.input",
    ),
    (request(system=5), InvalidRequest, "system: must be a string"),
    (request(tools=[{"name": "f"}]), InvalidRequest, "tools.0.input_schema"),
    (
        request(tools=[{"name": "f", "input_schema": {}}], tool_choice={"type": "sometimes"}),
        InvalidRequest,
        "tool_choice.type",
    ),
    (request(thinking={"type": "enabled"}), InvalidRequest, "thinking.budget_tokens"),
    (request(thinking={"type": "on"}), InvalidRequest, "thinking.type"),
    (request(output_config={"effort": "huge"}), InvalidRequest, "output_config.effort"),
    (request(temperature="hot"), InvalidRequest, "temperature: must be a number"),
    (request(stream="yes"), InvalidRequest, "stream: must be a boolean"),
    (request(stop_sequences="x"), InvalidRequest, "stop_sequences"),
]


@pytest.mark.parametrize(("body", "kind", "message"), ERROR_CASES)
def test_request_errors(body: dict[str, Any], kind: type[ProxyError], message: str) -> None:
    with pytest.raises(kind) as info:
        messages_to_openai(body, REASONING, "up")
    assert info.value.message.startswith(message)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}]},
            [{"role": "assistant", "content": ""}],
        ),
        ({"role": "user", "content": []}, [{"role": "user", "content": ""}]),
        (
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "a",
                        "content": [{"type": "tool_reference", "tool_name": "x"}],
                    }
                ],
            },
            # no call in this history: the result is user text (translate/tool_history.py)
            [{"role": "user", "content": 'Tool result (a):\n{"type":"tool_reference","tool_name":"x"}'}],
        ),
        (
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a"}]},
            [{"role": "user", "content": "Tool result (a):\n"}],
        ),
    ],
)
def test_edge_turns(message: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert messages_to_openai(request(messages=[message]), CHAT, "up").body["messages"] == expected


def call(*ids: str) -> dict[str, Any]:
    """An assistant turn calling ``f`` once per id."""
    return {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": i, "name": "f", "input": {}} for i in ids],
    }


def results(*ids: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": i} for i in ids]}


def sent_call(*ids: str) -> dict[str, Any]:
    calls = [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def tool(call_id: str, content: str = "") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


NEVER_MIND = {"role": "user", "content": "never mind"}
# Histories chat completions refuses and Claude Code sends when a tool call is interrupted: repaired as
# /api/chat and /v1/responses repair them (translate/tool_history.py).
TOOL_HISTORY_CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        "interrupted call: closed by an empty result before the user's text",
        [*HI, call("toolu_1"), NEVER_MIND],
        [*HI, sent_call("toolu_1"), tool("toolu_1"), NEVER_MIND],
    ),
    ("call last in the history", [*HI, call("toolu_1")], [*HI, sent_call("toolu_1"), tool("toolu_1")]),
    (
        "one result for two calls",
        [*HI, call("a", "b"), results("b")],
        [*HI, sent_call("a", "b"), tool("b", "b"), tool("a")],
    ),
    (
        "a result for no call becomes user text",
        [*HI, results("ghost")],
        [*HI, {"role": "user", "content": "Tool result (ghost):\nghost"}],
    ),
    (
        "an orphan among answers waits until the answers are all in",
        [*HI, call("a", "b"), results("a", "ghost", "b"), NEVER_MIND],
        [
            *HI,
            sent_call("a", "b"),
            tool("a", "a"),
            tool("b", "b"),
            {"role": "user", "content": "Tool result (ghost):\nghost"},
            NEVER_MIND,
        ],
    ),
    (
        "a call answered twice: the second answer is user text",
        [*HI, call("a"), results("a", "a")],
        [*HI, sent_call("a"), tool("a", "a"), {"role": "user", "content": "Tool result (a):\na"}],
    ),
    (
        "a paired history is unchanged",
        [*HI, call("a"), results("a"), call("b"), results("b")],
        [*HI, sent_call("a"), tool("a", "a"), sent_call("b"), tool("b", "b")],
    ),
]


@pytest.mark.parametrize(
    ("name", "history", "expected"), TOOL_HISTORY_CASES, ids=[c[0] for c in TOOL_HISTORY_CASES]
)
def test_tool_histories_repaired(name: str, history: list[dict[str, Any]], expected: list[Any]) -> None:
    assert messages_to_openai(request(messages=history), CHAT, "up").body["messages"] == expected


PDF = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
OTHER_DOCUMENT = "document blocks that are not text (PDF, URL)"
OTHER_BLOCK = "content blocks of other types (search_result...)"
SEARCH_RESULT = {
    "type": "search_result",
    "source": "https://x",
    "title": "t",
    "content": [{"type": "text", "text": "found"}],
}
# Blocks with no form upstream are skipped (as Ollama skips them), never a 400: once a PDF is in a Claude Code
# history, every later turn resends it.
SKIPPED_CASES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], tuple[str, ...]]] = [
    (
        "a PDF beside text",
        [{"role": "user", "content": [PDF, {"type": "text", "text": "summarise"}]}],
        [{"role": "user", "content": "summarise"}],
        (OTHER_DOCUMENT,),
    ),
    (
        "a URL document",
        [
            {
                "role": "user",
                "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}],
            }
        ],
        [{"role": "user", "content": ""}],
        (OTHER_DOCUMENT,),
    ),
    (
        "a PDF inside a tool result",
        [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "a",
                        "content": [{"type": "text", "text": "r"}, PDF],
                    }
                ],
            },
        ],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "a", "content": "r"},
        ],
        (OTHER_DOCUMENT,),
    ),
    (
        "a search_result and an unknown block in a user turn",
        [
            {
                "role": "user",
                "content": [SEARCH_RESULT, {"type": "text", "text": "q"}, {"type": "newer_thing"}],
            }
        ],
        [{"role": "user", "content": "q"}],
        (OTHER_BLOCK,),
    ),
    (
        "an unknown block in an assistant turn",
        [{"role": "assistant", "content": [{"type": "newer_thing"}, {"type": "text", "text": "ok"}]}],
        [{"role": "assistant", "content": "ok"}],
        (OTHER_BLOCK,),
    ),
]


@pytest.mark.parametrize(
    ("name", "history", "expected", "dropped"), SKIPPED_CASES, ids=[c[0] for c in SKIPPED_CASES]
)
def test_blocks_without_equivalent_are_skipped(
    name: str, history: list[dict[str, Any]], expected: list[Any], dropped: tuple[str, ...]
) -> None:
    plan = messages_to_openai(request(messages=history), CHAT, "up")
    assert plan.body["messages"] == expected and plan.dropped == dropped


def test_limits() -> None:
    with pytest.raises(TooLarge):
        messages_to_openai(request(messages=HI * 3), CHAT, "up", max_messages=2)
    image = {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    with pytest.raises(TooLarge):
        messages_to_openai(
            request(messages=[{"role": "user", "content": [image] * 3}]), CHAT, "up", max_images=2
        )


def b64_image(size: int) -> dict[str, Any]:
    data = base64.b64encode(b"x" * size).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def long_result(text: str) -> list[dict[str, Any]]:
    return [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": text}]},
    ]


# The bounds /api/chat and /v1/responses apply: 10 characters of text in all, images of 30 bytes.
SIZE_CASES: list[tuple[str, list[dict[str, Any]], str | None]] = [
    ("text within the bound", [{"role": "user", "content": "x" * 10}], None),
    ("a string turn", [{"role": "user", "content": "x" * 11}], "messages are too long (limit 10"),
    ("spread over turns", [{"role": "user", "content": "x" * 6}] * 2, "messages are too long"),
    ("a tool result", long_result("x" * 11), "messages are too long"),
    ("an image within the bound", [{"role": "user", "content": [b64_image(30)]}], None),
    (
        "an image too large",
        [{"role": "user", "content": [b64_image(31)]}],
        "messages.0.content.0.source.data is too large (limit 30 bytes)",
    ),
]


@pytest.mark.parametrize(("name", "history", "error"), SIZE_CASES, ids=[c[0] for c in SIZE_CASES])
def test_size_limits(name: str, history: list[dict[str, Any]], error: str | None) -> None:
    def translate() -> object:
        return messages_to_openai(
            request(messages=history), CHAT, "up", max_text_chars=10, max_image_bytes=30
        )

    if error is None:
        translate()
        return
    with pytest.raises(TooLarge) as info:
        translate()
    assert info.value.message.startswith(error)


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        ({"messages": [{"role": "user", "content": "x" * 8}]}, 2 + 4),
        ({"system": "y" * 4, "messages": [{"role": "user", "content": "x" * 5}]}, 3 + 4),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, 1600 + 4),
        ({"messages": "bad", "tools": [{"name": "ab", "description": "cd", "input_schema": {}}]}, 2),
    ],
)
def test_estimate(body: dict[str, Any], tokens: int) -> None:
    assert estimate_input_tokens(body) == tokens


# --- response -----------------------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str, usage: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"choices": [{"message": message, "finish_reason": finish}], "usage": usage or {}})


@pytest.mark.parametrize(
    ("message", "finish", "content", "stop"),
    [
        ({"content": "hi"}, "stop", [{"type": "text", "text": "hi"}], "end_turn"),
        ({"content": "hi"}, "length", [{"type": "text", "text": "hi"}], "max_tokens"),
        ({"content": ""}, "content_filter", [], "refusal"),
        (
            {"content": "ok", "reasoning_content": "think"},
            "stop",
            [{"type": "thinking", "thinking": "think", "signature": ""}, {"type": "text", "text": "ok"}],
            "end_turn",
        ),
        (
            {"content": None, "reasoning": "r"},
            "stop",
            [{"type": "thinking", "thinking": "r", "signature": ""}],
            "end_turn",
        ),
        (
            {
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
                ],
            },
            "tool_calls",
            [{"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}],
            "tool_use",
        ),
        (
            {
                "content": None,
                "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": ""}}],
            },
            "stop",  # some backends say "stop" with tool calls
            [{"type": "tool_use", "id": "toolu_msg_1_0", "name": "f", "input": {}}],
            "tool_use",
        ),
        (  # cut at max_tokens: the raw arguments kept (as /api/chat keeps them), max_tokens says why
            {
                "content": None,
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a": "Par'}}],
            },
            "length",
            [{"type": "tool_use", "id": "c", "name": "f", "input": {"raw": '{"a": "Par'}}],
            "max_tokens",
        ),
        (  # JSON that is not an object: wrapped, as on /api/chat
            {"content": None, "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]},
            "tool_calls",
            [{"type": "tool_use", "id": "c", "name": "f", "input": {"value": [1]}}],
            "tool_use",
        ),
    ],
)
def test_completion_to_message(message: dict[str, Any], finish: str, content: list[Any], stop: str) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}
    out = completion_to_message(completion(message, finish, usage), "asked", "msg_1")
    assert out["content"] == content and out["stop_reason"] == stop and out["model"] == "asked"
    assert out["usage"] == {
        "input_tokens": 6,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4,
    }


def test_hidden_thinking() -> None:
    """thinking: disabled: a reasoning the upstream sends anyway is not shown, whole or streamed."""
    body = completion({"content": "ok", "reasoning_content": "think"}, "stop")
    out = completion_to_message(body, "m", "msg_1", emit_thinking=False)
    assert out["content"] == [{"type": "text", "text": "ok"}]
    stream = MessageStream("m", "msg_1", emit_thinking=False)
    data = b"".join(
        stream.feed(c) for c in [chunk({"reasoning_content": "r"}), chunk({"content": "a"}, "stop")]
    )
    got = events(data + stream.finish())
    assert [d["content_block"]["type"] for n, d in got if n == "content_block_start"] == ["text"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"choices": []}',
        completion(
            {"content": None, "tool_calls": [{"function": {"name": "f", "arguments": 5}}]}, "tool_calls"
        ),
    ],
)
def test_completion_protocol_errors(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        completion_to_message(body, "m", "msg_1")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (529, "overloaded_error"),
        (502, "api_error"),
        (500, "api_error"),
    ],
)
def test_error_types(status: int, kind: str) -> None:
    assert error_type(status) == kind


# --- stream -------------------------------------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None
) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return orjson.dumps({"choices": choices, "usage": usage})


def events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in data.split(b"\n\n")[:-1]:
        name, payload = frame.split(b"\n")
        out.append((name.removeprefix(b"event: ").decode(), orjson.loads(payload.removeprefix(b"data: "))))
    return out


def run(chunks: list[bytes]) -> tuple[list[tuple[str, dict[str, Any]]], MessageStream]:
    stream = MessageStream("asked", "msg_1", input_estimate=7)
    data = b"".join(stream.feed(c) for c in chunks) + stream.finish()
    return events(data), stream


def test_stream_thinking_text_tools() -> None:
    got, stream = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "r0 "}),
            chunk({"reasoning": "r1 "}),
            chunk({"content": "hi"}),
            chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
            chunk(
                {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}]}
            ),
            chunk({}, finish="tool_calls"),
            chunk(usage={"prompt_tokens": 12, "completion_tokens": 9}),
        ]
    )
    shape = [
        (n, d.get("index"), (d.get("content_block") or d.get("delta") or {}).get("type")) for n, d in got
    ]
    assert shape == [
        ("message_start", None, None),
        ("ping", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert got[0][1]["message"]["usage"] == {"input_tokens": 7, "output_tokens": 0}  # the estimate, up front
    assert got[9][1]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}
    assert got[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert got[-2][1]["usage"]["input_tokens"] == 12 and got[-2][1]["usage"]["output_tokens"] == 9
    assert stream.counts() == (12, 9)


def test_stream_cut_tool_call_is_max_tokens() -> None:
    """The stream relays cut arguments as they came and, like the whole answer, says max_tokens."""
    got, _ = run(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"a": "Par'}}
                    ]
                }
            ),
            chunk({}, finish="length"),
        ]
    )
    deltas = [d["delta"] for n, d in got if n == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": '{"a": "Par'}]
    assert got[-2][1]["delta"]["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    ("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")]
)
def test_stream_stop_reasons_and_no_usage(finish: str, stop: str) -> None:
    got, stream = run([chunk({"content": "a"}), chunk({}, finish=finish)])
    assert got[-2][1]["delta"]["stop_reason"] == stop
    assert got[-2][1]["usage"]["input_tokens"] == 7  # no usage chunk: the estimate stands
    assert got[-2][1]["usage"]["output_tokens"] == 1  # and the output is estimated, as on /api/chat
    assert stream.counts() == (7, 1)


@pytest.mark.parametrize(
    ("chunks", "tokens"),
    [
        # whole text / 4, rounded up: thinking, text and tool arguments all count (not the role event)
        (
            [
                chunk({"role": "assistant", "content": ""}),
                chunk({"reasoning_content": "x" * 9}),
                chunk({"content": "y" * 10}),
                chunk(
                    {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}
                ),
            ],
            6,
        ),
        # one event a token (llama.cpp), some empty: the events outnumber characters / 4
        (
            [
                chunk({"content": "ab"}),
                chunk({"content": ""}),
                chunk({"content": ""}),
                chunk({"content": "c"}),
            ],
            4,
        ),
        (
            [chunk({"content": "abcd"}, usage={"prompt_tokens": 3, "completion_tokens": 42})],
            42,
        ),  # the upstream's
    ],
)
def test_stream_output_estimate_without_usage(chunks: list[bytes], tokens: int) -> None:
    got, stream = run([*chunks, chunk({}, finish="stop")])
    assert got[-2][1]["usage"]["output_tokens"] == tokens and stream.counts()[1] == tokens


def test_stream_empty_answer_still_frames() -> None:
    got, _ = run([chunk({}, finish="stop")])
    assert [n for n, _ in got] == ["message_start", "ping", "message_delta", "message_stop"]


def test_stream_incomplete_and_errors() -> None:
    stream = MessageStream("m", "msg_1")
    stream.feed(chunk({"content": "a"}))
    with pytest.raises(UpstreamProtocolError):
        stream.finish()  # cut before finish_reason
    failed = events(stream.fail("boom"))
    assert failed == [("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})]
    for bad in (b"nope", orjson.dumps({"error": {"message": "overloaded"}})):
        with pytest.raises(UpstreamProtocolError):
            MessageStream("m", "msg_1").feed(bad)
    interleaved = MessageStream("m", "msg_1")
    interleaved.feed(chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}))
    interleaved.feed(chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}))
    with pytest.raises(UpstreamProtocolError):
        interleaved.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
