"""/v1/messages and /v1/messages/count_tokens through real servers: the ``anthropic`` SDK and raw HTTP."""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from fake_openai import FakeUpstreamThread, Fault, expected_reasoning, expected_text
from falcon_ollama.access import ApiKeys
from tests.servers import ProxyThread

USER: list[Any] = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
# A 1x1 transparent PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def client(proxy: ProxyThread, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("api_key", "anything")
    return anthropic.Anthropic(base_url=proxy.url, max_retries=0, **kwargs)


def chat_requests(fake: FakeUpstreamThread) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path.endswith("/chat/completions")]


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs, checking the framing: exactly one event: and one data: line per event."""
    events = []
    assert body.endswith(b"\n\n")
    for frame in body[:-2].split(b"\n\n"):
        lines = frame.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), frame
        name = lines[0][len(b"event: ") :].decode()
        data = orjson.loads(lines[1][len(b"data: ") :])
        assert data["type"] == name
        events.append((name, data))
    return events


def raw_stream(proxy: ProxyThread, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/messages", json={"stream": True, **body}, timeout=30)


# --- the SDK -------------------------------------------------------------------------------------------


def test_create(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    message = client(proxy).messages.create(
        model="gpt-4o",
        max_tokens=100,
        messages=USER,
        stop_sequences=["END"],
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 5},  # this SDK no longer has them as arguments
    )
    assert message.type == "message" and message.role == "assistant" and message.model == "gpt-4o"
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == expected_text(8)  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 8 and message.usage.input_tokens == 4  # the fake: 1 word + 3
    sent = chat_requests(fake)[-1]
    assert sent["model"] == "gpt-4o" and sent["max_tokens"] == 100 and sent["temperature"] == 0.5
    assert sent["top_p"] == 0.9 and sent["stop"] == ["END"] and "top_k" not in sent and "stream" not in sent


def test_stop_sequences_cut_to_what_openai_takes(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    """OpenAI refuses more than 4 stop sequences; the first 4 go, as /api/chat sends them."""
    stops = ["S1", "S2", "S3", "S4", "S5", "S6"]
    client(proxy).messages.create(model="gpt-4o", max_tokens=10, messages=USER, stop_sequences=stops)
    assert chat_requests(fake)[-1]["stop"] == stops[:4]


def test_alias_and_max_tokens_stop_reason(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    message = client(proxy).messages.create(model="llama3.2", max_tokens=3, messages=USER)
    assert message.stop_reason == "max_tokens" and message.content[0].text == expected_text(3)  # type: ignore[union-attr]
    assert message.model == "llama3.2" and chat_requests(fake)[-1]["model"] == "gpt-4o-mini"


def test_stream_one_call_suffices(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    with client(proxy).messages.stream(model="gpt-4o", max_tokens=100, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected_text(8)
    assert (
        final.stop_reason == "end_turn" and final.usage.output_tokens == 8 and final.usage.input_tokens == 4
    )
    sent = chat_requests(fake)
    assert (
        len(sent) == 1 and sent[0]["stream"] is True and sent[0]["stream_options"] == {"include_usage": True}
    )


def test_stream_without_usage_estimates_output(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    """An upstream that sends no usage (llama.cpp; the fake with send_usage false): output_tokens is the
    estimate /api/chat gives for the same streamed answer, not 0."""
    fake.config.send_usage = False
    with client(proxy).messages.stream(model="gpt-4o", max_tokens=100, messages=USER) as stream:
        final = stream.get_final_message()
    ollama = httpx.post(
        f"{proxy.url}/api/chat", json={"model": "gpt-4o", "messages": USER, "stream": True}, timeout=30
    )
    eval_count = orjson.loads(ollama.content.splitlines()[-1])["eval_count"]
    assert final.usage.output_tokens == eval_count > 0


def test_tool_round_trip_with_streamed_arguments(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    sdk = client(proxy)
    question: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    fragments: list[str] = []
    with sdk.messages.stream(model="gpt-4o", max_tokens=100, messages=question, tools=[WEATHER]) as stream:  # type: ignore[list-item]
        fragments.extend(
            event.delta.partial_json
            for event in stream
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
        )
        final = stream.get_final_message()
    assert len(fragments) > 1  # the arguments arrived in pieces, as the upstream sent them
    assert final.stop_reason == "tool_use"
    (call,) = [b for b in final.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    assert call.id.startswith("call_")  # the upstream's id, kept
    tool = chat_requests(fake)[-1]["tools"][0]["function"]
    assert "$schema" not in tool["parameters"] and tool["parameters"]["additionalProperties"] is False

    followup = [
        *question,
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": [{"type": "text", "text": "sunny"}],
                },
            ],
        },
    ]
    answer = sdk.messages.create(model="gpt-4o", max_tokens=100, messages=followup, tools=[WEATHER])  # type: ignore[list-item]
    assert answer.stop_reason == "end_turn" and answer.content[0].text == expected_text(8)  # type: ignore[union-attr]
    sent = chat_requests(fake)[-1]["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["id"] == call.id
    assert orjson.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2:] == [{"role": "tool", "tool_call_id": call.id, "content": "sunny"}]


def test_tool_choice_and_error_result(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    sdk = client(proxy)
    forced = sdk.messages.create(
        model="gpt-4o",
        max_tokens=100,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    assert forced.stop_reason == "tool_use"
    sent = chat_requests(fake)[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    call = forced.content[-1]
    assert call.type == "tool_use"
    sdk.messages.create(
        model="gpt-4o",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "none"},
        messages=[
            *USER,
            {"role": "assistant", "content": [call.model_dump()]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "boom", "is_error": True},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    )
    sent = chat_requests(fake)[-1]
    assert sent["tool_choice"] == "none"
    assert sent["messages"][-2:] == [
        {"role": "tool", "tool_call_id": call.id, "content": "Error: boom"},
        {"role": "user", "content": "thanks"},  # after the result: chat completions wants results first
    ]


TOOLU_1 = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
TOOLU_2 = {**TOOLU_1, "id": "toolu_2"}


@pytest.mark.parametrize(
    "history",
    [
        # the user interrupted the call and typed instead (no tool_result)
        [{"role": "assistant", "content": [TOOLU_1]}, {"role": "user", "content": "never mind"}],
        # one result for two calls
        [
            {"role": "assistant", "content": [TOOLU_1, TOOLU_2]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"}],
            },
        ],
        # a result whose id matches no call
        [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "rain"}]}],
    ],
    ids=["unanswered", "one-result-two-calls", "orphan-result"],
)
def test_interrupted_tool_histories_are_answered(
    proxy: ProxyThread, fake: FakeUpstreamThread, history: list[Any]
) -> None:
    """The fake, like OpenAI, refuses unpaired tool calls and results with a 400; they are repaired first."""
    answer = client(proxy).messages.create(
        model="gpt-4o",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Paris?"}, *history],
    )
    assert answer.stop_reason in ("end_turn", "tool_use")
    assert chat_requests(fake)[-1]["messages"][0] == {"role": "user", "content": "weather in Paris?"}


def test_pdf_and_unknown_blocks_are_skipped(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    """A PDF (top level or in a tool result) or a search_result no longer fails the turn: it is left out."""
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    search = {
        "type": "search_result",
        "source": "https://x",
        "title": "t",
        "content": [{"type": "text", "text": "s"}],
    }
    answer = client(proxy).messages.create(
        model="gpt-4o",
        max_tokens=100,
        messages=[
            {"role": "user", "content": [pdf, search, {"type": "text", "text": "read it"}]},  # type: ignore[list-item]
            {"role": "assistant", "content": [TOOLU_1]},  # type: ignore[list-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [pdf]}],  # type: ignore[list-item]
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    sent = chat_requests(fake)[-1]["messages"]
    assert sent[0] == {"role": "user", "content": "read it"}
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": ""}


def test_cut_tool_arguments_keep_the_answer(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    """An answer cut at max_tokens inside a call's arguments is answered (was a 502 losing it all): the raw
    arguments kept as on /api/chat, stop_reason max_tokens so the client does not run the call."""
    cut = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me look.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"a": "Par'},
                        }
                    ],
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }
    fake.script(Fault(kind="status", status=200, body=cut, path="/v1/chat"))
    answer = client(proxy).messages.create(model="gpt-4o", max_tokens=7, messages=USER, tools=[WEATHER])  # type: ignore[list-item]
    assert answer.stop_reason == "max_tokens"
    text, call = answer.content
    assert text.type == "text" and text.text == "Let me look."
    assert call.type == "tool_use" and call.id == "call_1" and call.input == {"raw": '{"a": "Par'}


def test_system_and_image(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    message = client(proxy).messages.create(
        model="gpt-4o",
        max_tokens=100,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        metadata={"user_id": "u1"},
        messages=[
            {"role": "system", "content": "and kind"},  # type: ignore[list-item]  # Claude Code sends these
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                    },
                    {"type": "text", "text": "what is this?"},
                ],
            },
        ],
    )
    assert message.content[0].text == expected_text(8)  # type: ignore[union-attr]
    sent = chat_requests(fake)[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "be brief"}
    assert sent[1] == {"role": "system", "content": "and kind"}
    assert sent[2]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "doc"},
        {"type": "text", "text": "what is this?"},
    ]


def test_thinking(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    sdk = client(proxy)
    message = sdk.messages.create(
        model="o4-mini",
        max_tokens=1000,
        extra_body={"temperature": 1},
        thinking={"type": "enabled", "budget_tokens": 2000},
        messages=USER,
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == expected_reasoning()  # type: ignore[union-attr]
    sent = chat_requests(fake)[-1]
    assert sent["reasoning_effort"] == "low" and sent["max_completion_tokens"] == 1000
    assert "max_tokens" not in sent and "temperature" not in sent  # a reasoning model refuses them

    thoughts: list[str] = []
    with sdk.messages.stream(
        model="o4-mini",
        max_tokens=1000,
        thinking={"type": "adaptive"},
        output_config={"effort": "max"},
        messages=USER,
    ) as stream:
        thoughts.extend(
            event.delta.thinking
            for event in stream
            if event.type == "content_block_delta" and event.delta.type == "thinking_delta"
        )
        final = stream.get_final_message()
    assert "".join(thoughts) == expected_reasoning()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert chat_requests(fake)[-1]["reasoning_effort"] == "high"


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_disabled_hides_reasoning_and_wins_over_effort(
    proxy: ProxyThread, fake: FakeUpstreamThread, stream: bool
) -> None:
    """As /api/chat with think=false: o4-mini has no off switch, so no effort goes (not the 'high' asked in
    output_config), and the reasoning the fake sends anyway is not shown."""
    answer = httpx.post(
        f"{proxy.url}/v1/messages",
        json={
            "model": "o4-mini",
            "max_tokens": 1000,
            "stream": stream,
            "thinking": {"type": "disabled"},
            "output_config": {"effort": "high"},
            "messages": USER,
        },
        timeout=30,
    )
    assert answer.status_code == 200
    if stream:
        kinds = [
            d["content_block"]["type"] for n, d in sse_events(answer.content) if n == "content_block_start"
        ]
    else:
        kinds = [b["type"] for b in answer.json()["content"]]
    assert kinds == ["text"]
    assert "reasoning_effort" not in chat_requests(fake)[-1]


def test_count_tokens(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    text = "x" * 400
    counted = client(proxy).messages.count_tokens(
        model="gpt-4o", system="s" * 40, messages=[{"role": "user", "content": text}]
    )
    assert counted.input_tokens == math.ceil(440 / 4) + 4  # the documented estimate: chars/4 + 4 per message
    assert chat_requests(fake) == []  # nothing spent upstream


def test_unknown_model(proxy: ProxyThread) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(proxy).messages.create(model="no-such-model", max_tokens=10, messages=USER)
    assert info.value.status_code == 404
    assert info.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model 'no-such-model' not found"},
    }


def test_upstream_429(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    # A Retry-After longer than the proxy's own retry wait: the client gets the 429 at once.
    fake.script(Fault(kind="status", status=429, headers={"Retry-After": "60"}, path="/v1/chat", times=10))
    with pytest.raises(anthropic.RateLimitError) as info:
        client(proxy).messages.create(model="gpt-4o", max_tokens=10, messages=USER)
    assert info.value.status_code == 429 and info.value.response.headers["retry-after"] == "60"
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"


def test_x_api_key_and_beta(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> None:
    key = "inbound-key-for-anthropic-0123456789"
    proxy = start_proxy(fake, api_keys=ApiKeys([key]))
    message = client(proxy, api_key=key).beta.messages.create(
        model="gpt-4o", max_tokens=10, messages=USER, betas=["no-such-beta-2099-01-01"]
    )
    assert message.content[0].text == expected_text(8)  # type: ignore[union-attr]
    assert client(proxy, api_key=None, auth_token=key).messages.create(
        model="gpt-4o", max_tokens=10, messages=USER
    )
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(proxy, api_key="wrong-key-0123456789abcdef").messages.create(
            model="gpt-4o", max_tokens=10, messages=USER
        )
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    missing = httpx.post(f"{proxy.url}/v1/messages", json={"model": "gpt-4o"}, timeout=30)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{proxy.url}/api/tags", headers={"x-api-key": key}, timeout=30).status_code == 200


# --- raw HTTP ------------------------------------------------------------------------------------------


def test_exact_text_event_sequence(proxy: ProxyThread) -> None:
    answer = raw_stream(proxy, {"model": "gpt-4o", "max_tokens": 100, "messages": USER})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = sse_events(answer.content)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 8,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["model"] == "gpt-4o"
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "w0 "}
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2][1]["usage"]["output_tokens"] == 8 and events[-2][1]["usage"]["input_tokens"] == 4


def test_exact_thinking_and_tool_event_sequence(proxy: ProxyThread) -> None:
    body = {"model": "o4-mini", "max_tokens": 100, "messages": USER, "tools": [WEATHER]}
    events = sse_events(raw_stream(proxy, body).content)
    shape = [
        (n, d.get("index"), (d.get("content_block") or d.get("delta") or {}).get("type")) for n, d in events
    ]
    assert shape[:5] == [
        ("message_start", None, None),
        ("ping", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
    ]
    assert ("content_block_stop", 0, None) in shape and ("content_block_start", 1, "tool_use") in shape
    tool_deltas = [
        d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1
    ]
    assert orjson.loads("".join(tool_deltas)) == {"city": "Paris"}
    assert shape[-3:] == [
        ("content_block_stop", 1, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_failure_after_first_byte_is_an_error_event(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    fake.script(Fault(kind="cut", after_events=4, path="/v1/chat"))
    events = sse_events(raw_stream(proxy, {"model": "gpt-4o", "max_tokens": 100, "messages": USER}).content)
    assert events[0][0] == "message_start"
    name, data = events[-1]
    assert name == "error" and data["error"]["type"] == "api_error" and data["error"]["message"]
    assert "message_stop" not in [n for n, _ in events]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "gpt-4o", "messages": USER}, "max_tokens: Field required"),
        ({"model": "gpt-4o", "max_tokens": 5}, "messages: Field required"),
        ({"max_tokens": 5, "messages": USER}, "model: Field required"),
        (
            {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role",
        ),
    ],
)
def test_bad_requests_in_anthropic_shape(proxy: ProxyThread, body: dict[str, Any], message: str) -> None:
    answer = httpx.post(f"{proxy.url}/v1/messages?beta=true", json=body, timeout=30)
    assert answer.status_code == 400
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(message)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x" * 51, "messages are too long (limit 50 characters in all)"),
        (
            [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 1400}}],
            "messages.0.content.0.source.data is too large (limit 1000 bytes)",
        ),
    ],
    ids=["text", "image"],
)
def test_size_limits_in_anthropic_shape(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], content: Any, message: str
) -> None:
    """max_text_chars and max_image_bytes, enforced as on /api/chat: a 413 request_too_large, nothing sent."""
    proxy = start_proxy(fake, max_image_bytes=1000, max_text_chars=50)
    body = {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}
    answer = httpx.post(f"{proxy.url}/v1/messages", json=body, timeout=30)
    assert answer.status_code == 413
    assert answer.json() == {"type": "error", "error": {"type": "request_too_large", "message": message}}
    assert chat_requests(fake) == []


def test_busy_is_529_overloaded(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> None:
    proxy = start_proxy(fake, max_in_flight=1, max_queue=0)
    fake.script(Fault(kind="stall", seconds=2.0, path="/v1/chat"))
    first = threading.Thread(
        target=lambda: httpx.post(
            f"{proxy.url}/v1/messages",
            json={"model": "gpt-4o", "max_tokens": 5, "messages": USER},
            timeout=30,
        )
    )
    first.start()
    try:
        for _ in range(100):  # until the first request holds the only slot
            if chat_requests(fake):
                break
            threading.Event().wait(0.02)
        with pytest.raises(anthropic.APIStatusError) as info:
            client(proxy).messages.create(model="gpt-4o", max_tokens=5, messages=USER)
    finally:
        first.join()
    assert info.value.status_code == 529
    body: Any = info.value.body
    assert body["error"]["type"] == "overloaded_error"


def test_max_tokens_above_the_models_own_is_asked_again_within_it(
    proxy: ProxyThread, fake: FakeUpstreamThread
) -> None:
    """Claude Code sends max_tokens 32000 whatever the model; OpenAI (and the fake, like it: the recorded
    refusal in tests/fixtures/real/openai/errors.json) refuses more than gpt-4o's 16384."""
    before = len(fake.requests)
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        with client(proxy).messages.stream(model="gpt-4o", max_tokens=32000, messages=hi) as stream:
            assert stream.get_final_text() == expected_text(8)
    body = {"model": "gpt-4o", "max_tokens": 32000, "messages": hi}
    whole = httpx.post(proxy.url + "/v1/messages", json=body, headers={"x-api-key": "x"})
    assert whole.status_code == 200 and whole.json()["content"][0]["text"] == expected_text(8)
    asked = [r.json["max_tokens"] for r in fake.requests[before:] if r.path == "/v1/chat/completions"]
    # refused, asked again within the cap the refusal names; then within it from the start (learnt)
    assert asked == [32000, 16384, 16384, 16384]
