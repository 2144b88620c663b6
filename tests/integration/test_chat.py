"""/api/chat and /api/generate through real servers: the real ollama SDK and raw HTTP, fake upstream."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import orjson
import pytest

from fake_openai import (
    FakeConfig,
    FakeUpstreamThread,
    Fault,
    expected_reasoning,
    expected_text,
)
from tests.servers import ProxyThread

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
USER = [{"role": "user", "content": "Hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000000000500010d0a2db40000000049454e44ae426082"
    )
).decode()


def ndjson(resp: httpx.Response) -> list[dict[str, Any]]:
    """Parse an NDJSON body strictly: every line JSON, one '\\n' each, no blank lines."""
    assert resp.headers["content-type"] == "application/x-ndjson"
    body = resp.content
    assert body.endswith(b"\n")
    lines = body[:-1].split(b"\n")
    assert all(lines), "blank line in NDJSON stream"
    return [orjson.loads(line) for line in lines]


def last_upstream_body(fake: FakeUpstreamThread) -> dict[str, Any]:
    chats = [r for r in fake.requests if r.path.endswith(("/chat/completions", "/completions"))]
    assert chats, "the upstream received no completion request"
    body = chats[-1].json
    assert isinstance(body, dict)
    return body


# --- happy paths -----------------------------------------------------------------------------------------


def test_sdk_chat_non_stream(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    response = ollama.Client(host=proxy.url).chat("llama3.2", messages=USER)
    assert response.message.role == "assistant"
    assert response.message.content == expected_text(8)
    assert response.done and response.done_reason == "stop"
    assert response.model == "llama3.2"
    assert response.eval_count == 8 and response.prompt_eval_count and response.prompt_eval_count > 0
    assert response.total_duration and response.total_duration > 0
    sent = last_upstream_body(fake)
    assert sent["model"] == "gpt-4o-mini"  # the alias's upstream id
    assert sent["stream"] is False and "stream_options" not in sent
    assert sent["messages"] == USER


def test_sdk_chat_stream(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    parts = list(ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, stream=True))
    assert "".join(p.message.content for p in parts) == expected_text(8)
    assert all(p.message.role == "assistant" for p in parts)
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    final = parts[-1]
    assert final.done_reason == "stop"
    assert final.eval_count == 8 and final.prompt_eval_count
    assert final.total_duration and final.eval_duration is not None and final.prompt_eval_duration is not None
    assert final.total_duration >= final.eval_duration
    assert last_upstream_body(fake)["stream_options"] == {"include_usage": True}


def test_raw_stream_framing(proxy: ProxyThread) -> None:
    resp = httpx.post(
        proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}
    )  # stream defaults true
    chunks = ndjson(resp)
    for chunk in chunks:
        assert chunk["model"] == "gpt-4o"
        assert RFC3339_UTC.match(chunk["created_at"])
        assert chunk["message"]["role"] == "assistant"
        assert isinstance(chunk["message"]["content"], str)
    final = chunks[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    for key in ("total_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
        assert isinstance(final[key], int) and final[key] >= 0, key
    assert all("done_reason" not in c and "eval_count" not in c for c in chunks[:-1])


def test_raw_non_stream_is_one_json_object(proxy: ProxyThread) -> None:
    resp = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER, "stream": False})
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    body = resp.json()
    assert body["message"] == {"role": "assistant", "content": expected_text(8)}
    assert body["done"] is True and body["done_reason"] == "stop"


async def test_async_sdk_chat_and_generate(proxy: ProxyThread) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    chat = await client.chat("gpt-4o", messages=USER)
    assert chat.message.content == expected_text(8)
    text = ""
    async for part in await client.generate("gpt-4o", "Say something", stream=True):
        text += part.response
    assert text == expected_text(8)
    parts = [p async for p in await client.chat("gpt-4o", messages=USER, stream=True)]
    assert parts[-1].done


def test_sdk_generate(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    client = ollama.Client(host=proxy.url)
    first = client.generate("gpt-4o", "What is 2+2?", system="Be terse.")
    assert first.response == expected_text(8)
    assert first.done_reason == "stop" and first.context
    assert last_upstream_body(fake)["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    streamed = list(client.generate("gpt-4o", "And 3+3?", context=first.context, stream=True))
    assert "".join(p.response for p in streamed) == expected_text(8)
    assert streamed[-1].context
    # The context carried the conversation: the upstream saw the first exchange before the new prompt.
    assert last_upstream_body(fake)["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": expected_text(8)},
        {"role": "user", "content": "And 3+3?"},
    ]


def test_generate_raw_lines(proxy: ProxyThread) -> None:
    chunks = ndjson(httpx.post(proxy.url + "/api/generate", json={"model": "gpt-4o", "prompt": "hi"}))
    assert all("response" in c and "message" not in c for c in chunks)
    assert chunks[-1]["done"] is True and isinstance(chunks[-1]["context"], list)


# --- tools, images, format, think, options ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip_over_two_turns(
    proxy: ProxyThread, fake: FakeUpstreamThread, stream: bool
) -> None:
    client = ollama.Client(host=proxy.url)
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    if stream:
        parts = list(client.chat("gpt-4o", messages=messages, tools=[WEATHER_TOOL], stream=True))
        calls = [c for p in parts for c in (p.message.tool_calls or [])]
        assert parts[-1].done_reason == "stop"  # Ollama reports tool calls as a normal stop
        assistant = {"role": "assistant", "content": "", "tool_calls": calls}
    else:
        first = client.chat("gpt-4o", messages=messages, tools=[WEATHER_TOOL])
        calls = list(first.message.tool_calls or [])
        assert first.done_reason == "stop"
        assistant = first.message  # type: ignore[assignment]
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Paris"}
    messages += [assistant, {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"}]
    second = client.chat("gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    assert second.message.content == expected_text(8)
    sent = last_upstream_body(fake)["messages"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert sent[2] == {"role": "tool", "tool_call_id": call_id, "content": "11 degrees celsius"}


def test_tool_call_ids_reach_the_client(proxy: ProxyThread) -> None:
    body = {"model": "gpt-4o", "messages": USER, "tools": [WEATHER_TOOL], "stream": False}
    call = httpx.post(proxy.url + "/api/chat", json=body).json()["message"]["tool_calls"][0]
    assert call["id"].startswith("call_")
    assert call["function"]["index"] == 0
    assert call["function"]["arguments"] == {"city": "Paris"}


def test_sdk_always_sends_empty_tools_which_are_not_forwarded(
    proxy: ProxyThread, fake: FakeUpstreamThread
) -> None:
    ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER)
    assert "tools" not in last_upstream_body(fake)


def test_images_become_data_uris(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    client = ollama.Client(host=proxy.url)
    client.chat("gpt-4o", messages=[{"role": "user", "content": "What is this?", "images": [PNG_1PX]}])
    content = last_upstream_body(fake)["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["image_url"]["url"] == f"data:image/png;base64,{PNG_1PX}"
    client.generate("gpt-4o", "Describe", images=[PNG_1PX])
    assert last_upstream_body(fake)["messages"][-1]["content"][1]["type"] == "image_url"


def test_bad_image_is_400(proxy: ProxyThread) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x", "images": ["bm90IGFuIGltYWdl"]}]}
    resp = httpx.post(proxy.url + "/api/chat", json=body)
    assert resp.status_code == 400 and "invalid image input" in resp.json()["error"]


def test_format_json_and_schema(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    client = ollama.Client(host=proxy.url)
    reply = client.chat("gpt-4o", messages=USER, format="json")
    assert isinstance(orjson.loads(reply.message.content), dict)
    assert last_upstream_body(fake)["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}  # fmt: skip
    reply = client.chat("gpt-4o", messages=USER, format=schema)
    parsed = orjson.loads(reply.message.content)
    assert set(parsed) == {"name", "age"}
    sent = last_upstream_body(fake)["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("route", ["chat", "generate"])
def test_format_schema_on_an_upstream_that_refuses_json_schema(
    start_proxy: Callable[..., ProxyThread], stream: bool, route: str
) -> None:
    """llama.cpp answers json_schema with a 500 (issue 12): the request is sent once more in JSON mode with
    the schema in a system message, so Ollama's ``format: {schema}`` works; the refusal is not retried."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    with FakeUpstreamThread(FakeConfig(accept_json_schema=False)) as fake:
        client = ollama.Client(host=start_proxy(fake).url)
        if route == "chat":
            result: Any = client.chat("gpt-4o", messages=USER, format=schema, stream=stream)
            parts = list(result) if stream else [result]
            text = "".join(p.message.content for p in parts)
        else:
            result = client.generate("gpt-4o", prompt="Hello there", format=schema, stream=stream)
            parts = list(result) if stream else [result]
            text = "".join(p.response for p in parts)
        assert parts[-1].done and isinstance(orjson.loads(text), dict)
        first, second = [r.json for r in fake.requests if r.path.endswith("/chat/completions")]
        assert first["response_format"]["type"] == "json_schema"
        assert second["response_format"] == {"type": "json_object"}
        stated = second["messages"][0]
        assert stated["role"] == "system" and stated["content"].endswith(orjson.dumps(schema).decode())
        assert second["messages"][1:] == first["messages"]


def test_json_schema_refusal_without_a_schema_to_fall_back_from_is_a_clean_400(
    start_proxy: Callable[..., ProxyThread],
) -> None:
    """A /v1 request that asks llama.cpp for json_schema itself: the refusal, cleaned, once."""
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with FakeUpstreamThread(FakeConfig(accept_json_schema=False)) as fake:
        proxy = start_proxy(fake)
        resp = httpx.post(
            proxy.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": USER, "response_format": fmt},
        )
        assert resp.status_code == 400, resp.text
        message = resp.json()["error"]["message"]
        assert "json_schema" in message and "File" not in message and "/opt/" not in message
        assert len([r for r in fake.requests if r.path.endswith("/chat/completions")]) == 1


def test_thinking_model_streams_thinking(proxy: ProxyThread) -> None:
    parts = list(ollama.Client(host=proxy.url).chat("o4-mini", messages=USER, think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == expected_reasoning(3)
    assert "".join(p.message.content for p in parts) == expected_text(8)
    quiet = ollama.Client(host=proxy.url).chat("o4-mini", messages=USER, think=False)
    assert not quiet.message.thinking


def test_think_levels_map_to_reasoning_effort(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    client = ollama.Client(host=proxy.url)
    client.chat("o4-mini", messages=USER, think="high")
    assert last_upstream_body(fake)["reasoning_effort"] == "high"
    client.chat("gpt-5", messages=USER, think=False)
    assert last_upstream_body(fake)["reasoning_effort"] == "minimal"
    client.chat("o4-mini", messages=USER, think=True)
    assert "reasoning_effort" not in last_upstream_body(fake)


def test_think_on_a_model_without_thinking_is_ollamas_400(proxy: ProxyThread) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, think=True)
    assert info.value.status_code == 400
    assert info.value.error == '"gpt-4o" does not support thinking'
    resp = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER, "think": "loud"})
    assert resp.json()["error"].startswith('invalid think value: "loud"')


def test_options_are_translated(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    options = {"num_predict": 3, "temperature": 0.2, "top_p": 0.5, "seed": 42, "stop": ["\n\n"],
               "frequency_penalty": 0.1, "presence_penalty": 0.2, "top_k": 40, "num_ctx": 8192}  # fmt: skip
    reply = ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, options=options)
    assert reply.message.content == expected_text(3)
    assert reply.done_reason == "length"
    sent = last_upstream_body(fake)
    assert {k: sent[k] for k in ("max_tokens", "temperature", "top_p", "seed", "stop")} == {
        "max_tokens": 3, "temperature": 0.2, "top_p": 0.5, "seed": 42, "stop": ["\n\n"]
    }  # fmt: skip
    assert "top_k" not in sent and "num_ctx" not in sent and "options" not in sent


def test_values_openai_refuses_are_brought_inside_its_range(
    proxy: ProxyThread, fake: FakeUpstreamThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Ollama takes any temperature; the fake, like OpenAI, refuses one above 2 with a 400."""
    caplog.set_level(logging.WARNING, logger="falcon_ollama.options")
    client = ollama.Client(host=proxy.url)
    for temperature in (2.5, 3.1, 7):
        reply = client.chat("gpt-4o", messages=USER, options={"temperature": temperature, "top_p": 1.2})
        assert reply.message.content
        sent = last_upstream_body(fake)
        assert (sent["temperature"], sent["top_p"]) == (2.0, 1.0)
    warnings = [r.getMessage() for r in caplog.records if r.name == "falcon_ollama.options"]
    assert sum("'temperature' outside OpenAI's range 0 to 2" in w for w in warnings) == 1  # once, any value


def test_num_predict_above_the_models_own_is_brought_within_it(
    proxy: ProxyThread, fake: FakeUpstreamThread
) -> None:
    """Ollama caps num_predict; OpenAI refuses more than gpt-4o's own 16384 (the fake, as recorded)."""
    reply = ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, options={"num_predict": 100000})
    assert reply.message.content == expected_text(8)
    assert last_upstream_body(fake)["max_tokens"] == 16384


def test_reasoning_model_gets_max_completion_tokens(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    # The fake, like OpenAI, rejects max_tokens and temperature for o-series models.
    reply = ollama.Client(host=proxy.url).chat(
        "o4-mini", messages=USER, options={"num_predict": 5, "temperature": 0.3}
    )
    assert reply.done
    sent = last_upstream_body(fake)
    assert sent["max_completion_tokens"] == 5 and "max_tokens" not in sent and "temperature" not in sent


def test_unmappable_options_warn_once_per_name(proxy: ProxyThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="falcon_ollama.options")
    client = ollama.Client(host=proxy.url)
    for _ in range(3):
        client.chat("gpt-4o", messages=USER, options={"top_k": 10, "mirostat": 1})
    warnings = [r.getMessage() for r in caplog.records if r.name == "falcon_ollama.options"]
    assert sum("'top_k'" in w for w in warnings) == 1
    assert sum("'mirostat'" in w for w in warnings) == 1


def test_wrong_option_type_is_400(proxy: ProxyThread) -> None:
    body = {"model": "gpt-4o", "messages": USER, "options": {"top_k": "many"}}
    resp = httpx.post(proxy.url + "/api/chat", json=body)
    assert resp.status_code == 400
    assert resp.json() == {"error": 'option "top_k" must be of type integer'}


# --- load / unload / ps ----------------------------------------------------------------------------------


def test_empty_conversation_loads_and_keep_alive_zero_unloads(
    proxy: ProxyThread, fake: FakeUpstreamThread
) -> None:
    before = len(fake.requests)
    load = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": []}).json()
    assert load["done_reason"] == "load" and load["message"] == {"role": "assistant", "content": ""}
    assert [m["model"] for m in httpx.get(proxy.url + "/api/ps").json()["models"]] == ["gpt-4o:latest"]
    unload = httpx.post(proxy.url + "/api/generate", json={"model": "gpt-4o", "keep_alive": 0}).json()
    assert unload["done_reason"] == "unload" and unload["response"] == ""
    assert httpx.get(proxy.url + "/api/ps").json() == {"models": []}
    assert not [r for r in fake.requests[before:] if "completions" in r.path]  # no completion was requested
    gen = ollama.Client(host=proxy.url).generate("gpt-4o", "")
    assert gen.done_reason == "load"


@pytest.mark.parametrize(
    ("path", "body", "status", "answer"),
    [
        # Ollama's handlers check the model's capabilities (and think) before their load reply...
        ("generate", {"model": "nomic-embed-text"}, 400, '"nomic-embed-text" does not support generate'),
        (
            "chat",
            {"model": "nomic-embed-text", "messages": []},
            400,
            '"nomic-embed-text" does not support chat',
        ),
        ("chat", {"model": "gpt-4o", "think": True}, 400, '"gpt-4o" does not support thinking'),
        ("generate", {"model": "gpt-4o", "think": True}, 400, '"gpt-4o" does not support thinking'),
        # top_logprobs is checked before the model, even an unknown one or none
        (
            "chat",
            {"model": "nope", "messages": USER, "top_logprobs": 50},
            400,
            "top_logprobs must be between 0 and 20",
        ),
        (
            "generate",
            {"model": "", "prompt": "x", "top_logprobs": 21},
            400,
            "top_logprobs must be between 0 and 20",
        ),
        # the fields are decoded first of all, in Ollama's JSON binding: their errors come before any other
        (
            "chat",
            {"model": "nope", "messages": USER, "keep_alive": "5M", "top_logprobs": 50},
            400,
            'time: unknown unit "M" in duration "5M"',
        ),
        (
            "generate",
            {"model": "nope", "prompt": "x", "think": 5},
            400,
            'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
        ),
        ("chat", {"model": "nope", "messages": "hi"}, 400, "invalid value for 'messages': expected an array"),
        # ...but unload first of all, whatever else the request says
        ("generate", {"model": "gpt-4o", "raw": True, "system": "s", "keep_alive": 0}, 200, "unload"),
        ("chat", {"model": "nomic-embed-text", "think": True, "keep_alive": 0}, 200, "unload"),
    ],
)
def test_load_reply_in_ollamas_order(
    proxy: ProxyThread, path: str, body: dict[str, Any], status: int, answer: str
) -> None:
    resp = httpx.post(proxy.url + f"/api/{path}", json=body)
    assert resp.status_code == status
    assert (resp.json()["error"] if status != 200 else resp.json()["done_reason"]) == answer


def test_ps_lists_used_models_with_their_keep_alive(proxy: ProxyThread) -> None:
    client = ollama.Client(host=proxy.url)
    client.chat("llama3.2", messages=USER, keep_alive="10m")
    client.chat("gpt-4o", messages=USER, keep_alive=-1)
    models = client.ps().models
    assert [m.model for m in models] == ["gpt-4o:latest", "llama3.2:latest"]  # forever first
    assert models[1].expires_at is not None
    remaining = models[1].expires_at.timestamp() - time.time()
    assert 540 < remaining <= 600


# --- errors ----------------------------------------------------------------------------------------------


def test_model_errors(proxy: ProxyThread) -> None:
    chat = httpx.post(proxy.url + "/api/chat", json={"model": "llama9", "messages": USER})
    assert (chat.status_code, chat.json()) == (404, {"error": "model 'llama9' not found"})
    gen = httpx.post(proxy.url + "/api/generate", json={"model": "llama9", "prompt": "x"})
    assert (gen.status_code, gen.json()) == (404, {"error": "model 'llama9' not found"})
    missing = httpx.post(proxy.url + "/api/chat", json={"messages": USER})
    assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})
    missing_gen = httpx.post(proxy.url + "/api/generate", json={"prompt": "x"})
    assert (missing_gen.status_code, missing_gen.json()) == (404, {"error": "model '' not found"})
    embed_chat = httpx.post(proxy.url + "/api/chat", json={"model": "nomic-embed-text", "messages": USER})
    assert embed_chat.json() == {"error": '"nomic-embed-text" does not support chat'}


@pytest.mark.parametrize("stream", [True, False])
def test_upstream_failure_before_first_byte_is_a_json_error(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], stream: bool
) -> None:
    proxy = start_proxy(fake, retry_base_delay=0.01)
    fake.script(Fault(kind="status", status=500, path="/v1/chat/completions", times=10))
    resp = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER, "stream": stream})
    assert resp.status_code == 502
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"].startswith("upstream error (HTTP 500)")


def test_rate_limit_reaches_the_client_after_retries(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, max_retry_wait=1.0)
    fake.script(Fault(kind="status", status=429, headers={"Retry-After": "20"}, path="/v1/chat", times=10))
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER)
    assert info.value.status_code == 429
    resp = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER})
    assert resp.status_code == 429 and resp.headers["retry-after"] == "20"


def test_transient_errors_are_retried_invisibly(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, retry_base_delay=0.01)
    fake.script(Fault(kind="status", status=503, path="/v1/chat", times=2))
    parts = list(ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, stream=True))
    assert "".join(p.message.content for p in parts) == expected_text(8)


def test_stream_cut_mid_way_ends_with_an_error_line_not_done(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake)
    fake.script(Fault(kind="cut", after_events=4, path="/v1/chat"))
    chunks = ndjson(httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}))
    assert "error" in chunks[-1]
    assert not any(c.get("done") for c in chunks)
    fake.script(Fault(kind="cut", after_events=4, path="/v1/chat"))
    with pytest.raises(ollama.ResponseError):
        list(ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, stream=True))


def test_garbage_event_ends_with_an_error_line(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake)
    fake.script(Fault(kind="garbage", after_events=3, path="/v1/chat"))
    chunks = ndjson(httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}))
    assert chunks[-1] == {"error": "the upstream sent a malformed stream event (invalid JSON)"}


@pytest.mark.parametrize("kind", ["sse_variant", "empty_deltas", "no_done"])
def test_upstream_stream_quirks_are_survived(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], kind: str
) -> None:
    proxy = start_proxy(fake)
    fake.script(Fault(kind=kind, path="/v1/chat"))
    chunks = ndjson(httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}))
    assert chunks[-1]["done"] is True, chunks[-1]
    text = "".join(c["message"]["content"] for c in chunks)
    assert text.replace("\x01", "").replace("\t", "").startswith("w0")


def test_upstream_without_usage_still_reports_counts(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(send_usage=False)) as fake:
        proxy = start_proxy(fake)
        parts = list(ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, stream=True))
        assert parts[-1].eval_count == 8
        assert parts[-1].prompt_eval_count and parts[-1].prompt_eval_count >= 1


def test_include_usage_can_be_turned_off(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, stream_usage=False)
    list(ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, stream=True))
    assert "stream_options" not in last_upstream_body(fake)


# --- disconnects and concurrency -------------------------------------------------------------------------


def _completion_requests(fake: FakeUpstreamThread) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


# Our protocol tells the request its client is gone (client_gone.py); under plain uvicorn a task awaits
# ``receive`` instead. Both ways are driven.
@pytest.mark.parametrize("guarded", [True, False], ids=["our-protocol", "plain-uvicorn"])
def test_client_disconnect_mid_stream_cancels_the_upstream(
    start_proxy: Callable[..., ProxyThread], guarded: bool
) -> None:
    with FakeUpstreamThread(FakeConfig(tokens=500, token_delay_ms=20)) as fake:
        proxy = start_proxy(fake, guarded=guarded)
        with httpx.stream(
            "POST", proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}
        ) as resp:
            lines = resp.iter_lines()
            next(lines)
            next(lines)
            closed_at = time.monotonic()
        deadline = time.monotonic() + 5
        while not _completion_requests(fake)[-1].disconnected_at and time.monotonic() < deadline:
            time.sleep(0.02)
        upstream = _completion_requests(fake)[-1]
        assert upstream.disconnected_at is not None, "the upstream never saw the connection close"
        assert upstream.disconnected_at - closed_at < 1.0
        assert not upstream.completed


# Our protocol tells the request its client is gone (client_gone.py); under plain uvicorn a task awaits
# ``receive`` instead. Both ways are driven, with a small body and one over uvicorn's 64 KiB read-pause mark
# (a long prompt or an image): reading, paused while the app took the body, must resume after it.
@pytest.mark.parametrize("prompt_bytes", [10, 400_000], ids=["small-body", "400kb-body"])
@pytest.mark.parametrize("guarded", [True, False], ids=["our-protocol", "plain-uvicorn"])
def test_client_disconnect_before_the_upstream_answers_cancels_it(
    start_proxy: Callable[..., ProxyThread], guarded: bool, prompt_bytes: int
) -> None:
    body = orjson.dumps(
        {"model": "gpt-4o", "stream": False, "messages": [{"role": "user", "content": "x" * prompt_bytes}]}
    )
    head = (
        "POST /api/chat HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    with FakeUpstreamThread(FakeConfig()) as fake:
        proxy = start_proxy(fake, guarded=guarded)
        assert httpx.get(proxy.url + "/api/tags").status_code == 200
        fake.script(Fault(kind="stall", seconds=3.0, path="/v1/chat"))
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:  # in one write, as curl does
            client.sendall(head + body)
            deadline = time.monotonic() + 2
            while not _completion_requests(fake) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            requests = _completion_requests(fake)
            if requests and requests[-1].disconnected_at:
                break
            time.sleep(0.02)
        upstream = _completion_requests(fake)[-1]
        assert upstream.disconnected_at is not None, "the upstream never saw the client go"
        assert not upstream.completed
        # The proxy is still healthy afterwards.
        assert httpx.get(proxy.url + "/api/tags").status_code == 200


def test_hundred_concurrent_streams_complete_intact(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(tokens=20, token_delay_ms=5, record=False)) as fake:
        proxy = start_proxy(fake)

        async def one(client: ollama.AsyncClient, i: int) -> str:
            text = ""
            async for part in await client.chat(
                "gpt-4o", messages=[{"role": "user", "content": f"n{i}"}], stream=True
            ):
                text += part.message.content
                if part.done:
                    assert part.done_reason == "stop" and part.eval_count == 20
            return text

        async def run() -> list[str]:
            client = ollama.AsyncClient(host=proxy.url, timeout=60)
            return await asyncio.gather(*(one(client, i) for i in range(100)))

        results = asyncio.run(run())
        assert results == [expected_text(20)] * 100


def test_stall_after_the_first_byte_ends_with_an_error_line(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, idle_timeout=0.3)
    fake.script(Fault(kind="stall_after", after_events=3, seconds=5.0, path="/v1/chat"))
    started = time.monotonic()
    chunks = ndjson(
        httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}, timeout=10)
    )
    assert time.monotonic() - started < 4
    assert chunks[-1] == {"error": "the upstream sent nothing for 0.3 s"}
    assert not any(c.get("done") for c in chunks)


def test_total_timeout_ends_a_slow_stream(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(tokens=200, token_delay_ms=20)) as fake:
        proxy = start_proxy(fake, total_timeout=0.5)
        chunks = ndjson(
            httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}, timeout=10)
        )
        assert chunks[-1] == {"error": "the upstream answer took longer than the total timeout"}
        assert 3 < len(chunks) < 100


@pytest.mark.parametrize("trailing", [True, False])
def test_tool_calls_without_results_are_closed_for_the_upstream(
    proxy: ProxyThread, fake: FakeUpstreamThread, trailing: bool
) -> None:
    """Ollama accepts an interrupted tool use in history; OpenAI (and the fake) need every call answered."""
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
    ]
    if not trailing:
        messages.append({"role": "user", "content": "never mind, say hello"})
    body = {"model": "gpt-4o", "messages": messages, "tools": [WEATHER_TOOL], "stream": False}
    resp = httpx.post(proxy.url + "/api/chat", json=body)
    assert resp.status_code == 200, resp.text
    sent = last_upstream_body(fake)["messages"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert sent[2] == {"role": "tool", "tool_call_id": call_id, "content": ""}
    assert len(sent) == (3 if trailing else 4)
