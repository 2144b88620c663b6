"""The "responses" dialect of the single upstream (FALCON_OLLAMA_UPSTREAM_DIALECT=responses: the implicit
backend's; per backend see test_backend_dialects.py), issue 14: Ollama clients reach an upstream spoken to in
OpenAI's Responses API (the fake speaks it as OpenAI publishes it), and gpt-5 / o-series reasoning summaries
arrive as Ollama's ``thinking``, streamed and not."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import openai
import pytest

from fake_openai import FakeUpstreamThread, Fault, expected_reasoning, expected_text
from tests.integration.test_chat import PNG_1PX as PNG
from tests.integration.test_chat import WEATHER_TOOL as WEATHER
from tests.servers import ProxyThread

USER = [{"role": "user", "content": "why is the sky blue?"}]
SUMMARY = "**Plan** " + expected_reasoning()  # the fake's two summary parts: "**Plan** " and the thoughts
THINKING = "**Plan** \n\n" + expected_reasoning()  # parts joined by a blank line


@pytest.fixture
def proxy(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> ProxyThread:
    return start_proxy(fake, upstream_dialect="responses")


@pytest.fixture
def client(proxy: ProxyThread) -> ollama.Client:
    return ollama.Client(host=proxy.url)


def _sent(fake: FakeUpstreamThread) -> dict[str, Any]:
    """The last request the fake saw, which must have been a Responses request."""
    last = fake.requests[-1]
    assert last.path == "/v1/responses"
    body: dict[str, Any] = json.loads(last.body)
    return body


def test_think_shows_reasoning_summaries(client: ollama.Client, fake: FakeUpstreamThread) -> None:
    reply = client.chat("gpt-5", messages=USER, think=True)
    assert reply.message.thinking == THINKING
    assert reply.message.content == expected_text(fake.config.tokens)
    sent = _sent(fake)
    assert sent["reasoning"]["summary"] == "auto"
    assert sent["store"] is False
    # usage: the fake's counts, reasoning tokens included in eval_count as OpenAI counts them
    reasoning = fake.config.reasoning_tokens
    assert reply.eval_count == fake.config.tokens + reasoning
    assert reply.prompt_eval_count == len(json.dumps(sent["input"], separators=(",", ":"))) // 4 + 1


def test_think_streamed_shows_reasoning_summaries(client: ollama.Client, fake: FakeUpstreamThread) -> None:
    parts = list(client.chat("gpt-5", messages=USER, think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == THINKING
    assert "".join(p.message.content or "" for p in parts) == expected_text(fake.config.tokens)
    assert parts[-1].done and parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == fake.config.tokens + fake.config.reasoning_tokens
    assert _sent(fake)["stream"] is True


def test_think_false_asks_for_no_summary(client: ollama.Client, fake: FakeUpstreamThread) -> None:
    reply = client.chat("gpt-5", messages=USER, think=False)
    assert not reply.message.thinking
    assert "summary" not in _sent(fake)["reasoning"]


@pytest.mark.parametrize("stream", [False, True])
def test_tools_round_trip(client: ollama.Client, fake: FakeUpstreamThread, stream: bool) -> None:
    first = client.chat("gpt-4o", messages=USER, tools=[WEATHER], stream=stream)
    parts = list(first) if stream else [first]
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "s"} or "city" in calls[0].function.arguments
    sent = _sent(fake)
    assert sent["tools"][0]["name"] == "get_weather" and sent["tools"][0]["strict"] is False
    history = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    fake.config.echo_tool_result = True
    second = client.chat("gpt-4o", messages=history, tools=[WEATHER])
    assert second.message.content == "tool said: sunny"
    items = _sent(fake)["input"]
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1]["call_id"] == items[2]["call_id"]


def test_format_schema(client: ollama.Client, fake: FakeUpstreamThread) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    reply = client.chat("gpt-4o", messages=USER, format=schema)
    assert "colour" in json.loads(reply.message.content or "")
    fmt = _sent(fake)["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["schema"]["properties"] == schema["properties"]


def test_images(client: ollama.Client, fake: FakeUpstreamThread) -> None:
    reply = client.chat("gpt-4o", messages=[{"role": "user", "content": "what is it?", "images": [PNG]}])
    assert reply.message.content
    parts = _sent(fake)["input"][-1]["content"]
    assert [p["type"] for p in parts] == ["input_text", "input_image"]
    assert parts[1]["image_url"].startswith("data:image/png;base64,")


def test_options_limit_is_length(client: ollama.Client, fake: FakeUpstreamThread) -> None:
    reply = client.chat("gpt-4o", messages=USER, options={"num_predict": 20, "temperature": 0.5})
    sent = _sent(fake)
    assert sent["max_output_tokens"] == 20 and sent["temperature"] == 0.5
    if fake.config.tokens > 20:
        assert reply.done_reason == "length"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_error_reaches_the_client(
    client: ollama.Client, fake: FakeUpstreamThread, stream: bool
) -> None:
    body = {"error": {"message": "Invalid 'input[0].content': bad.", "type": "invalid_request_error"}}
    fake.script(Fault("status", path="/v1/responses", status=400, body=body))
    with pytest.raises(ollama.ResponseError) as info:
        list(client.chat("gpt-5", messages=USER, stream=True)) if stream else client.chat(
            "gpt-5", messages=USER
        )
    assert info.value.status_code == 400
    assert "input[0].content" in info.value.error


def test_failed_stream_ends_with_an_error_line(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    """A stream cut before response.completed ends with Ollama's in-stream error, not a done line."""
    fake.script(Fault("cut", path="/v1/responses", after_events=6))
    body = {"model": "gpt-5", "messages": USER, "think": True}
    with httpx.stream("POST", proxy.url + "/api/chat", json=body) as reply:
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    assert "error" in lines[-1]
    assert not any(line.get("done") for line in lines)


@pytest.mark.parametrize("stream", [False, True])
def test_v1_chat_completions_is_translated_too(
    proxy: ProxyThread, fake: FakeUpstreamThread, stream: bool
) -> None:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    if stream:
        chunks = list(client.chat.completions.create(model="gpt-5", messages=USER, stream=True))  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client.chat.completions.create(model="gpt-5", messages=USER)  # type: ignore[arg-type]
        text = answer.choices[0].message.content or ""
    assert text == expected_text(fake.config.tokens)
    assert fake.requests[-1].path == "/v1/responses"


def test_generate_with_think(proxy: ProxyThread) -> None:
    reply = httpx.post(
        proxy.url + "/api/generate", json={"model": "gpt-5", "prompt": "hi", "think": True, "stream": False}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["thinking"] == THINKING
