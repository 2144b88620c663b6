"""The bundled fake OpenAI upstream, exercised over real loopback HTTP.

The fake is only useful if real clients accept it, so most tests talk to it through the real ``openai`` SDK
and ``httpx``; the rest read raw bytes off a socket where the point is what goes over the wire (keep-alive,
pipelining, broken streams).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httptools
import httpx
import openai
import pydantic
import pytest

from fake_openai import (
    CONTROL_TOKEN,
    DEFAULT_MODELS,
    FakeConfig,
    FakeUpstream,
    FakeUpstreamThread,
    Fault,
    build_arg_parser_options,
    config_from_args,
    expected_embedding,
    expected_logprobs,
    expected_reasoning,
    expected_text,
    mask_key,
    prompt_tokens_for,
    schema_instance,
    serve_forever,
)

TIMEOUT = 10.0
# A real 1x1 PNG, so the fake's image-format check accepts it.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PNG_URL = f"data:image/png;base64,{PNG_B64}"
EMBEDDING_INPUT_INVALID = (
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
)
USER: list[Any] = [{"role": "user", "content": "What is the weather like in Paris today?"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}, "precise": {"type": "boolean"}},
            "required": ["zone", "precise"],
        },
    },
}


# -- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    """A fake on the test's own event loop, for async clients."""
    server = FakeUpstream()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=TIMEOUT) as http:
        yield http


@pytest.fixture
def tfake() -> Iterator[FakeUpstreamThread]:
    """A fake in its own thread, for blocking clients (the sync SDK, raw sockets)."""
    with FakeUpstreamThread() as server:
        yield server


@pytest.fixture
def sdk(tfake: FakeUpstreamThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=tfake.base_url, api_key="sk-test", max_retries=0, timeout=TIMEOUT
    ) as sdk_client:
        yield sdk_client


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": USER, **extra}


def data_lines(text: str) -> list[str]:
    """The payloads of the ``data:`` lines of an SSE body, in order."""
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def chunks_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(d) for d in data_lines(text) if d != "[DONE]"]


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code
    return dict(err)


async def wait_for(predicate: Any, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


class RawConnection:
    """A blocking HTTP/1.1 client on one socket, so tests can see keep-alive and pipelining directly."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.responses: list[tuple[int, dict[str, str], bytes]] = []
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._body = bytearray()

    def on_message_begin(self) -> None:
        self._headers, self._body = {}, bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.responses.append((self._parser.get_status_code(), self._headers, bytes(self._body)))

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def read(self, count: int) -> list[tuple[int, dict[str, str], bytes]]:
        while len(self.responses) < count:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self._parser.feed_data(data)
        return self.responses[:count]

    def close(self) -> None:
        self.sock.close()


def raw_post(path: str, body: dict[str, Any], *headers: str) -> bytes:
    payload = json.dumps(body).encode()
    extra = "".join(f"{h}\r\n" for h in headers)
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}\r\n"
    ).encode() + payload


# -- models ---------------------------------------------------------------------------------------------


def test_sdk_lists_models(sdk: openai.OpenAI) -> None:
    models = list(sdk.models.list())
    assert [m.id for m in models] == list(DEFAULT_MODELS)
    assert all(m.object == "model" and isinstance(m.created, int) for m in models)
    assert {m.owned_by for m in models} <= {"openai", "system"}
    assert sdk.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


async def test_model_retrieve_404_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/models/nope")
    err = assert_openai_error(response, 404, "model_not_found")
    assert err == {
        "message": "The model 'nope' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


async def test_llama_cpp_style_model_listing(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.config.models_have_created_owned_by = False
    fake.config.models = ["llama-3.1-8b"]
    listing = (await client.get("/models")).json()
    entry = {"id": "llama-3.1-8b", "object": "model", "owned_by": "me", "permissions": []}
    assert listing == {"object": "list", "data": [entry]}  # llama-cpp-python's entries: no "created"


# -- auth -----------------------------------------------------------------------------------------------


async def test_api_key_enforced_and_masked(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.config.api_key = "sk-right-key-000"
    wrong = "sk-abcdefghijklmnopxyz"
    response = await client.get("/models", headers={"Authorization": f"Bearer {wrong}"})
    err = assert_openai_error(response, 401, "invalid_api_key")
    assert err["message"].startswith(f"Incorrect API key provided: {mask_key(wrong)}.")
    assert "sk-ab***xyz" in err["message"] and wrong not in err["message"]
    missing = assert_openai_error(await client.get("/models"), 401)
    assert missing["message"].startswith("You didn't provide an API key.")
    ok = await client.get("/models", headers={"Authorization": "Bearer sk-right-key-000"})
    assert ok.status_code == 200


def test_sdk_sees_authentication_error(tfake: FakeUpstreamThread) -> None:
    tfake.config.api_key = "sk-right"
    sdk_client = openai.OpenAI(base_url=tfake.base_url, api_key="sk-wrong-key-123", max_retries=0)
    with sdk_client, pytest.raises(openai.AuthenticationError) as caught:
        sdk_client.models.list()
    assert caught.value.code == "invalid_api_key"


# -- chat completions -----------------------------------------------------------------------------------


def test_sdk_non_stream_chat(sdk: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say something nice"},
    ]
    completion = sdk.chat.completions.create(model="gpt-4o", messages=messages)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o"
    assert completion.system_fingerprint is not None and completion.system_fingerprint.startswith("fp_")
    choice = completion.choices[0]
    assert choice.message.content == expected_text(8)
    assert choice.message.role == "assistant" and choice.message.refusal is None
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == prompt_tokens_for(messages) == 3 + 3 + 3 + 3
    assert (usage.completion_tokens, usage.total_tokens) == (8, usage.prompt_tokens + 8)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0


async def test_non_stream_wire_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat_body())
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert list(body) == [
        "id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"
    ]  # fmt: skip
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": expected_text(8),
        "refusal": None,
        "annotations": [],
    }


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
async def test_token_limit_stops_with_length(client: httpx.AsyncClient, param: str) -> None:
    body = (await client.post("/chat/completions", json=chat_body(**{param: 3}))).json()
    assert body["choices"][0]["message"]["content"] == expected_text(3)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    longer = (await client.post("/chat/completions", json=chat_body(**{param: 50}))).json()
    assert longer["choices"][0]["finish_reason"] == "stop"


async def test_config_tokens_and_unknown_model(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.config.tokens = 2
    body = (await client.post("/chat/completions", json=chat_body())).json()
    assert body["choices"][0]["message"]["content"] == "w0 w1 "
    err = assert_openai_error(
        await client.post("/chat/completions", json=chat_body(model="llama3")), 404, "model_not_found"
    )
    assert err["message"] == "The model `llama3` does not exist or you do not have access to it."
    fake.config.answer_any_model = True
    body = (await client.post("/chat/completions", json=chat_body(model="llama3"))).json()
    assert body["model"] == "llama3"


def test_sdk_not_found_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-9", messages=USER)
    assert caught.value.code == "model_not_found"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/chat/completions",
        content=b'{"model": "gpt-4o", "messages": [',
        headers={"content-type": "application/json"},
    )
    err = assert_openai_error(response, 400)
    assert err["message"].startswith("We could not parse the JSON body of your request.")


@pytest.mark.parametrize(
    ("patch", "param", "code"),
    [
        ({"messages": None}, "messages", "missing_required_parameter"),
        ({"messages": []}, "messages", "empty_array"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        ({"tools": []}, "tools", "empty_array"),
        ({"temperature": 3}, "temperature", "decimal_above_max_value"),
        ({"max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({"stream": "yes"}, "stream", "invalid_type"),
        ({"stream_options": {"include_usage": True}}, "stream_options", None),
        ({"tool_choice": "auto"}, "tool_choice", None),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "call_1", "content": "20C"}]},
            "messages[0].role",
            None,
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
            "invalid_type",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                        ],
                    },
                    {"role": "user", "content": "well?"},
                ]
            },
            "messages.[2].role",
            None,
        ),
    ],
)
async def test_chat_validation_mirrors_openai(
    client: httpx.AsyncClient, patch: dict[str, Any], param: str, code: str | None
) -> None:
    body = {k: v for k, v in {**chat_body(), **patch}.items() if v is not None}
    err = assert_openai_error(await client.post("/chat/completions", json=body), 400)
    assert (err["param"], err["code"]) == (param, code)


# -- streaming ------------------------------------------------------------------------------------------


def test_sdk_stream_with_include_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text(8)
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None and finish.choices[0].delta.role is None
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 8
    assert last.usage.prompt_tokens == prompt_tokens_for(USER)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)


async def test_async_sdk_stream_and_embeddings(fake: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=TIMEOUT
    ) as sdk_client:
        stream = await sdk_client.chat.completions.create(
            model="gpt-4.1-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        embedded = await sdk_client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_text(8)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == prompt_tokens_for(USER) + 8
    assert embedded.data[0].embedding == pytest.approx(expected_embedding("hello", 8), rel=1e-6)
    assert [r.completed for r in fake.requests] == [True, True]


async def test_stream_wire_format(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat_body(stream=True))
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    text = response.text
    events = text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") and "\n" not in e for e in events[:-1])
    chunks = chunks_of(text)
    # Without stream_options.include_usage there is no usage anywhere, not even null.
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[1]["choices"][0] == {
        "index": 0,
        "delta": {"content": "w0 "},
        "logprobs": None,
        "finish_reason": None,
    }
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert list(chunks[0]) == [
        "id",
        "object",
        "created",
        "model",
        "service_tier",
        "system_fingerprint",
        "choices",
    ]


async def test_send_usage_false_never_sends_usage_chunk(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    fake.config.send_usage = False
    response = await client.post(
        "/chat/completions", json=chat_body(stream=True, stream_options={"include_usage": True})
    )
    chunks = chunks_of(response.text)
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_stream_respects_ttfb_and_token_delay(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.config.ttfb_ms = 300
    fake.config.token_delay_ms = 20
    fake.config.tokens = 5
    started = time.monotonic()
    response = await client.post("/chat/completions", json=chat_body(stream=True))
    elapsed = time.monotonic() - started
    # 300 ms before the head, then 7 gaps of 20 ms between events (role, 5 tokens, finish, [DONE]).
    assert elapsed >= 0.3 + 0.1
    assert "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks_of(response.text)
    ) == expected_text(5)
    assert fake.requests[-1].completed


def test_sdk_logprobs(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="gpt-4o", messages=USER, logprobs=True, top_logprobs=2)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [entry.model_dump() for entry in logprobs.content] == expected_logprobs(8, 2)
    assert [entry.token for entry in logprobs.content] == [f"w{i} " for i in range(8)]
    assert all(len(entry.top_logprobs) == 2 and entry.logprob < 0 for entry in logprobs.content)
    chunks = list(sdk.chat.completions.create(model="gpt-4o", messages=USER, logprobs=True, stream=True))
    streamed = [
        e.model_dump() for c in chunks if c.choices[0].logprobs for e in c.choices[0].logprobs.content or []
    ]
    assert streamed == expected_logprobs(8)
    plain = sdk.chat.completions.create(model="gpt-4o", messages=USER)
    assert plain.choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="o4-mini", messages=USER, logprobs=True)
    assert (caught.value.param, caught.value.code) == ("logprobs", "unsupported_parameter")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=USER, logprobs=True, top_logprobs=21)
    assert caught.value.code == "integer_above_max_value"


# -- tools ----------------------------------------------------------------------------------------------


def test_sdk_stream_helper_assembles_tool_call(sdk: openai.OpenAI) -> None:
    deltas = 0
    with sdk.chat.completions.stream(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL]) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.delta":
                deltas += 1
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert call.id.startswith("call_") and len(call.id) == 29 and call.id[5:].isalnum()
    assert deltas >= 3


async def test_tool_call_stream_wire_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=chat_body(stream=True, tools=[WEATHER_TOOL]))
    chunks = chunks_of(response.text)
    first = chunks[0]["choices"][0]["delta"]
    header = first["tool_calls"][0]
    assert first["role"] == "assistant" and first["content"] is None
    assert header["index"] == 0 and header["type"] == "function"
    assert header["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments)
    assert all(len(f["function"]["arguments"]) <= 5 for f in fragments)
    arguments = "".join(f["function"]["arguments"] for f in fragments)
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_sdk_two_turn_tool_round_trip(sdk: openai.OpenAI) -> None:
    first = sdk.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL])
    calls = first.choices[0].message.tool_calls
    assert calls is not None
    call = calls[0]
    assert call.type == "function"
    messages: list[Any] = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
    ]
    second = sdk.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == expected_text(8)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None


async def test_two_tool_calls_when_asked_for_both(client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "Give me both the weather and the time, please."}]
    body = chat_body(messages=messages, tools=[WEATHER_TOOL, TIME_TOOL])
    full = (await client.post("/chat/completions", json=body)).json()
    calls = full["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"zone": "Paris", "precise": True}
    streamed = chunks_of((await client.post("/chat/completions", json={**body, "stream": True})).text)
    indexes = {tc["index"] for c in streamed for tc in c["choices"][0]["delta"].get("tool_calls", [])}
    assert indexes == {0, 1}
    single = (await client.post("/chat/completions", json={**body, "parallel_tool_calls": False})).json()
    assert len(single["choices"][0]["message"]["tool_calls"]) == 1


async def test_tool_choice_controls_the_answer(client: httpx.AsyncClient) -> None:
    tools = [WEATHER_TOOL, TIME_TOOL]
    named = {"type": "function", "function": {"name": "get_time"}}
    body = (await client.post("/chat/completions", json=chat_body(tools=tools, tool_choice=named))).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    body = (await client.post("/chat/completions", json=chat_body(tools=tools, tool_choice="none"))).json()
    assert body["choices"][0]["message"]["content"] == expected_text(8)
    # "required" forces a call even when the last message is not from the user.
    messages = [*USER, {"role": "assistant", "content": "Let me check."}]
    body = (
        await client.post(
            "/chat/completions", json=chat_body(messages=messages, tools=tools, tool_choice="required")
        )
    ).json()
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    body = (await client.post("/chat/completions", json=chat_body(messages=messages, tools=tools))).json()
    assert body["choices"][0]["finish_reason"] == "stop"


# -- reasoning models -----------------------------------------------------------------------------------


def test_sdk_reasoning_model_rejects_max_tokens(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="o3-mini", messages=USER, max_tokens=10)
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == "max_tokens"
    assert "Use 'max_completion_tokens' instead." in caught.value.message
    ok = sdk.chat.completions.create(model="o3-mini", messages=USER, max_completion_tokens=2)
    assert ok.choices[0].message.content == expected_text(2)
    assert ok.choices[0].finish_reason == "length"


async def test_reasoning_stream_and_usage(client: httpx.AsyncClient) -> None:
    body = chat_body(model="gpt-5-mini", stream=True, stream_options={"include_usage": True})
    chunks = chunks_of((await client.post("/chat/completions", json=body)).text)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert reasoning == expected_reasoning(3)
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    last_reasoning = max(i for i, d in enumerate(deltas) if "reasoning_content" in d)
    assert last_reasoning < first_content
    assert "".join(d.get("content") or "" for d in deltas) == expected_text(8)
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 3
    assert usage["completion_tokens"] == 8 + 3


@pytest.mark.parametrize(
    ("model", "patch", "status", "code", "param"),
    [
        ("o4-mini", {"temperature": 0.2}, 400, "unsupported_value", "temperature"),
        ("o4-mini", {"top_p": 0.5}, 400, "unsupported_value", "top_p"),
        ("o4-mini", {"temperature": 1}, 200, None, None),
        ("gpt-4o", {"reasoning_effort": "low"}, 400, None, None),
        ("o3-mini", {"reasoning_effort": "none"}, 400, "unsupported_value", "reasoning_effort"),
        ("o3-mini", {"reasoning_effort": "extreme"}, 400, "invalid_value", "reasoning_effort"),
        ("o3-mini", {"reasoning_effort": "high"}, 200, None, None),
        # per family, from OpenAI's reference: gpt-5 has 'minimal' but no 'none'; gpt-5.1 the reverse;
        # gpt-5.2 adds 'xhigh'; gpt-5-pro takes 'high' only
        ("gpt-5", {"reasoning_effort": "none"}, 400, "unsupported_value", "reasoning_effort"),
        ("gpt-5", {"reasoning_effort": "minimal"}, 200, None, None),
        ("gpt-5", {"reasoning_effort": "xhigh"}, 400, "unsupported_value", "reasoning_effort"),
        ("gpt-5.1", {"reasoning_effort": "minimal"}, 400, "unsupported_value", "reasoning_effort"),
        ("gpt-5.1", {"reasoning_effort": "none"}, 200, None, None),
        ("gpt-5.1", {"reasoning_effort": "xhigh"}, 400, "unsupported_value", "reasoning_effort"),
        ("gpt-5.2", {"reasoning_effort": "xhigh"}, 200, None, None),
        ("gpt-5.2", {"reasoning_effort": "minimal"}, 400, "unsupported_value", "reasoning_effort"),
        ("gpt-5-pro", {"reasoning_effort": "low"}, 400, "unsupported_value", "reasoning_effort"),
    ],
)
async def test_reasoning_parameter_rules(
    client: httpx.AsyncClient,
    model: str,
    patch: dict[str, Any],
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    response = await client.post("/chat/completions", json=chat_body(model=model, **patch))
    if status == 200:
        assert response.status_code == 200, response.text
        return
    err = assert_openai_error(response, status)
    assert (err["code"], err["param"]) == (code, param)
    if model == "gpt-4o":
        assert err["message"] == "Unrecognized request argument supplied: reasoning_effort"


# -- structured output ----------------------------------------------------------------------------------


async def test_json_object_mode(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "Answer in JSON please"}]
    body = chat_body(messages=messages, response_format={"type": "json_object"})
    full = (await client.post("/chat/completions", json=body)).json()
    assert json.loads(full["choices"][0]["message"]["content"]) == {"answer": expected_text(8).strip()}
    streamed = chunks_of((await client.post("/chat/completions", json={**body, "stream": True})).text)
    pieces = [c["choices"][0]["delta"].get("content") for c in streamed[1:-1]]
    assert len(pieces) == 8 + 2
    assert json.loads("".join(p or "" for p in pieces)) == {"answer": expected_text(8).strip()}
    # Like OpenAI, json_object mode needs the word "json" somewhere in the messages.
    err = assert_openai_error(
        await client.post("/chat/completions", json=chat_body(response_format={"type": "json_object"})), 400
    )
    assert "must contain the word 'json'" in err["message"]
    fake.config.require_json_word = False
    ok = await client.post("/chat/completions", json=chat_body(response_format={"type": "json_object"}))
    assert ok.status_code == 200


class Forecast(pydantic.BaseModel):
    city: str
    temperature: float
    sunny: bool
    tags: list[str]


def test_sdk_parse_json_schema(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.parse(model="gpt-4o", messages=USER, response_format=Forecast)
    parsed = completion.choices[0].message.parsed
    assert parsed == Forecast(city="Paris", temperature=1, sunny=True, tags=[])


async def test_json_schema_errors(client: httpx.AsyncClient) -> None:
    fmt: dict[str, Any] = {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}
    err = assert_openai_error(
        await client.post("/chat/completions", json=chat_body(response_format=fmt)), 400
    )
    assert (err["param"], err["code"]) == ("response_format.json_schema.name", "missing_required_parameter")
    fmt = {"type": "json_schema"}
    err = assert_openai_error(
        await client.post("/chat/completions", json=chat_body(response_format=fmt)), 400
    )
    assert err["param"] == "response_format.json_schema"


def test_schema_instance_rules() -> None:
    schema = {
        "type": "object",
        "$defs": {"Unit": {"type": "string", "enum": ["K", "C"]}},
        "properties": {
            "city": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": ["number", "null"]},
            "ok": {"type": "boolean"},
            "items": {"type": "array", "items": {"type": "string"}},
            "unit": {"$ref": "#/$defs/Unit"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "nested": {"type": "object", "properties": {"a": {"type": "string"}, "b": {}}, "required": ["a"]},
            "fixed": {"const": 7},
            "optional": {"type": "string"},
        },
        "required": ["city", "count", "ratio", "ok", "items", "unit", "maybe", "nested", "fixed"],
    }
    expected = {
        "city": "Paris",
        "count": 1,
        "ratio": 1,
        "ok": True,
        "items": [],
        "unit": "K",
        "maybe": "Paris",
        "nested": {"a": "Paris"},
        "fixed": 7,
    }
    assert schema_instance(schema) == expected
    assert schema_instance(schema, all_properties=True) == {
        **expected,
        "nested": {"a": "Paris", "b": "Paris"},
        "optional": "Paris",
    }
    assert schema_instance(None) == {}


# -- images ---------------------------------------------------------------------------------------------


def image_message(*parts: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, *parts]}]


async def test_image_parts_accepted_and_recorded(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    part = {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}}
    response = await client.post("/chat/completions", json=chat_body(messages=image_message(part)))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == expected_text(8)
    assert fake.requests[-1].images == [PNG_URL]
    assert response.json()["usage"]["prompt_tokens"] == 3 + 5


@pytest.mark.parametrize(
    ("part", "param", "code"),
    [
        ({"image_url": {"url": PNG_URL}}, "messages[0].content[1].type", "missing_required_parameter"),
        ({"type": "picture", "url": PNG_URL}, "messages[0].content[1].type", "invalid_value"),
        ({"type": "image_url"}, "messages[0].content[1].image_url", "missing_required_parameter"),
        ({"type": "image_url", "image_url": PNG_URL}, "messages[0].content[1].image_url", "invalid_type"),
        (
            {"type": "image_url", "image_url": {"url": PNG_B64}},
            "messages[0].content[1].image_url.url",
            "invalid_value",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64," + PNG_B64}},
            "messages[0].content[1].image_url.url",
            "invalid_value",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}},
            None,
            "invalid_image_format",
        ),
        ({"type": "text"}, "messages[0].content[1].text", "missing_required_parameter"),
        ("just a string", "messages[0].content[1]", "invalid_type"),
    ],
)
async def test_malformed_content_parts_rejected(
    client: httpx.AsyncClient, part: Any, param: str | None, code: str
) -> None:
    response = await client.post("/chat/completions", json=chat_body(messages=image_message(part)))
    err = assert_openai_error(response, 400, code)
    assert err["param"] == param


# -- legacy completions ---------------------------------------------------------------------------------


def test_sdk_legacy_completions(sdk: openai.OpenAI) -> None:
    completion = sdk.completions.create(model="gpt-4o", prompt="Once upon a time")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == expected_text(8)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 4
    limited = sdk.completions.create(model="gpt-4o", prompt=["a", "b c"], max_tokens=2)
    assert [c.text for c in limited.choices] == [expected_text(2)] * 2
    assert [c.index for c in limited.choices] == [0, 1]
    assert limited.choices[0].finish_reason == "length"
    chunks = list(
        sdk.completions.create(
            model="gpt-4o", prompt="hi", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected_text(8)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


# -- embeddings -----------------------------------------------------------------------------------------


def test_sdk_embeddings_base64_default(tfake: FakeUpstreamThread, sdk: openai.OpenAI) -> None:
    result = sdk.embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
    # The SDK asks for base64 unless told otherwise, and decodes it transparently.
    assert tfake.requests[-1].json["encoding_format"] == "base64"
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(expected_embedding("hello world", 8), rel=1e-6)
    assert result.data[1].embedding == pytest.approx(expected_embedding("bye", 8), rel=1e-6)
    assert result.usage.prompt_tokens == 3 and result.usage.total_tokens == 3
    norm = math.sqrt(sum(x * x for x in result.data[0].embedding))
    assert norm > 2.0  # not normalised, so a proxy that normalises is observable
    assert all(1.0 <= abs(x) < 10.0 for x in result.data[0].embedding)
    sized = sdk.embeddings.create(model="text-embedding-3-large", input="hello", dimensions=32)
    assert len(sized.data[0].embedding) == 32


async def test_embeddings_float_and_token_inputs(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.config.embedding_dim = 12
    body = {"model": "text-embedding-3-small", "input": "hello world", "encoding_format": "float"}
    data = (await client.post("/embeddings", json=body)).json()
    assert data["object"] == "list" and data["model"] == "text-embedding-3-small"
    assert data["data"][0] == {
        "object": "embedding",
        "index": 0,
        "embedding": expected_embedding("hello world", 12),
    }
    tokens = (await client.post("/embeddings", json={**body, "input": [[1, 2, 3], [4]]})).json()
    assert [d["embedding"] for d in tokens["data"]] == [
        expected_embedding([1, 2, 3], 12),
        expected_embedding([4], 12),
    ]
    assert tokens["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    raw = (await client.post("/embeddings", json={**body, "encoding_format": "base64"})).json()
    decoded = memoryview(base64.b64decode(raw["data"][0]["embedding"])).cast("f").tolist()
    assert decoded == expected_embedding("hello world", 12)


@pytest.mark.parametrize(
    ("patch", "message", "code"),
    [
        ({"model": "gpt-4o"}, "You are not allowed to generate embeddings from this model", None),
        ({"input": ""}, EMBEDDING_INPUT_INVALID, None),
        ({"input": []}, None, None),
        ({"input": ["a", ""]}, None, None),
        ({"input": ["a", "b", "c", "d"]}, None, "array_above_max_length"),
        (
            {"model": "text-embedding-ada-002", "dimensions": 4},
            "This model does not support specifying dimensions.",
            None,
        ),
        ({"encoding_format": "hex"}, None, "invalid_value"),
    ],
)
async def test_embedding_errors(
    fake: FakeUpstream,
    client: httpx.AsyncClient,
    patch: dict[str, Any],
    message: str | None,
    code: str | None,
) -> None:
    fake.config.max_embedding_inputs = 3
    body = {"model": "text-embedding-3-small", "input": "x", **patch}
    err = assert_openai_error(await client.post("/embeddings", json=body), 400, code)
    if message is not None:
        assert err["message"] == message


# -- routing --------------------------------------------------------------------------------------------


async def test_unknown_path_and_wrong_method(client: httpx.AsyncClient) -> None:
    err = assert_openai_error(await client.post("/assistants/xyz", json={}), 404)
    assert err["message"] == "Invalid URL (POST /v1/assistants/xyz)"
    response = await client.get("/chat/completions")
    assert_openai_error(response, 405)
    assert response.headers["allow"] == "POST"
    assert_openai_error(await client.post("/models", json={}), 405)
    assert_openai_error(await client.get(f"http://127.0.0.1:{client.base_url.port}/elsewhere"), 404)


# -- faults ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "code"),
    [
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, "unsupported_country_region_territory"),
        (404, openai.NotFoundError, "model_not_found"),
    ],
)
def test_status_faults_seen_by_sdk(
    tfake: FakeUpstreamThread,
    sdk: openai.OpenAI,
    status: int,
    error_class: type[openai.APIStatusError],
    code: str | None,
) -> None:
    tfake.script(Fault("status", status=status))
    with pytest.raises(error_class) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.status_code == status
    assert caught.value.code == code
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "1"
    # Consumed: the next request is answered normally.
    assert sdk.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content
    assert [r.fault for r in tfake.requests] == ["status", None]


async def test_status_fault_with_custom_body_and_headers(
    fake: FakeUpstream, client: httpx.AsyncClient
) -> None:
    fake.script(
        Fault("status", status=429, headers={"Retry-After": "7"}, body={"error": {"message": "slow down"}}),
        Fault("status", status=400, body=b"not even json"),
    )
    first = await client.post("/chat/completions", json=chat_body())
    assert (first.status_code, first.headers["retry-after"], first.json()) == (
        429,
        "7",
        {"error": {"message": "slow down"}},
    )
    second = await client.post("/chat/completions", json=chat_body())
    assert (second.status_code, second.content) == (400, b"not even json")


async def test_html_and_text_faults(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("html"), Fault("text", status=503, body="upstream connect error"))
    html = await client.post("/chat/completions", json=chat_body())
    assert html.status_code == 502
    assert html.headers["content-type"] == "text/html"
    assert "<title>502 Bad Gateway</title>" in html.text
    text = await client.post("/chat/completions", json=chat_body())
    assert (text.status_code, text.headers["content-type"], text.text) == (
        503,
        "text/plain; charset=utf-8",
        "upstream connect error",
    )


def test_sdk_reports_html_gateway_error(tfake: FakeUpstreamThread, sdk: openai.OpenAI) -> None:
    tfake.script(Fault("html"))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.status_code == 502


async def test_stall_fault_delays_the_head(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("stall", seconds=0.3))
    started = time.monotonic()
    response = await client.post("/chat/completions", json=chat_body())
    assert time.monotonic() - started >= 0.29
    assert response.json()["choices"][0]["message"]["content"] == expected_text(8)
    with pytest.raises(httpx.ReadTimeout):
        fake.script(Fault("stall", seconds=5))
        await client.post("/chat/completions", json=chat_body(), timeout=0.3)


async def test_stall_after_pauses_mid_stream(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("stall_after", after_events=2, seconds=0.4))
    async with client.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
        arrivals = [
            (time.monotonic(), line) async for line in response.aiter_lines() if line.startswith("data: ")
        ]
    assert arrivals[-1][1] == "data: [DONE]"
    assert arrivals[2][0] - arrivals[1][0] >= 0.35
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks_of("\n".join(a[1] for a in arrivals))
    )
    assert text == expected_text(8)


async def test_cut_fault_ends_stream_abruptly(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("cut", after_events=3))
    lines: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
            async for line in response.aiter_lines():
                lines.append(line)  # noqa: PERF401 - keep what arrived before the error
    data = [line for line in lines if line.startswith("data: ")]
    assert len(data) == 3
    assert "data: [DONE]" not in lines
    assert fake.requests[-1].completed is False and fake.requests[-1].disconnected_at is None


def test_sdk_sees_cut_stream_as_connection_error(tfake: FakeUpstreamThread, sdk: openai.OpenAI) -> None:
    tfake.script(Fault("cut", after_events=2))
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        received.extend(sdk.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert len(received) <= 2


async def test_garbage_fault_inserts_bad_line(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("garbage", after_events=2))
    payloads = data_lines((await client.post("/chat/completions", json=chat_body(stream=True))).text)
    assert payloads[2] == "{not json"
    assert payloads[-1] == "[DONE]"
    good = [json.loads(p) for p in payloads if p not in ("{not json", "[DONE]")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in good) == expected_text(8)


async def test_huge_event_fault(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("huge_event", size=300_000, after_events=1))
    payloads = data_lines((await client.post("/chat/completions", json=chat_body(stream=True))).text)
    assert len(payloads[1]) == 300_000
    huge = json.loads(payloads[1])
    assert set(huge["choices"][0]["delta"]["content"]) == {"x"}
    assert payloads[-1] == "[DONE]"


async def test_no_done_fault(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("no_done"))
    response = await client.post("/chat/completions", json=chat_body(stream=True))
    payloads = data_lines(response.text)
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["choices"][0]["finish_reason"] == "stop"
    assert response.text.endswith("\n\n")


async def test_half_body_fault(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("half_body"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=chat_body())
    # A stream request does not consume a non-stream fault, and the fake keeps serving.
    fake.script(Fault("half_body"))
    assert (await client.post("/chat/completions", json=chat_body(stream=True))).status_code == 200
    assert len(fake.faults) == 1


def test_sdk_sees_half_body_as_connection_error(tfake: FakeUpstreamThread, sdk: openai.OpenAI) -> None:
    tfake.script(Fault("half_body"))
    with pytest.raises(openai.APIConnectionError):
        sdk.chat.completions.create(model="gpt-4o", messages=USER)


async def test_close_fault(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("close"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=chat_body())
    assert (await client.post("/chat/completions", json=chat_body())).status_code == 200


async def test_sse_variant_fault(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("sse_variant"))
    raw = (await client.post("/chat/completions", json=chat_body(stream=True))).content
    assert b"\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    assert raw.count(b": keep-alive\r\n") >= 5
    assert raw.count(b"event: message\r\n") == 8 + 3
    assert raw.endswith(b"data: [DONE]\r\n")


def test_sdk_reads_sse_variant(tfake: FakeUpstreamThread, sdk: openai.OpenAI) -> None:
    tfake.script(Fault("sse_variant"))
    chunks = list(sdk.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected_text(8)


async def test_empty_deltas_fault(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(Fault("empty_deltas"))
    response = await client.post("/chat/completions", json=chat_body(stream=True))
    assert "\\u0001" in response.text and "\\t" in response.text
    deltas = [c["choices"][0]["delta"] for c in chunks_of(response.text)]
    contents = [d["content"] for d in deltas if "content" in d]
    assert "" in contents[1:] and None in contents
    assert "".join(c or "" for c in contents) == expected_text(8) + CONTROL_TOKEN


async def test_fault_matching_rules(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.script(
        Fault("status", status=500, model="gpt-4o-mini"),
        Fault("status", status=503, path="/v1/embeddings"),
        Fault("status", status=429, times=2),
    )
    # FIFO among matching faults: the gpt-4o-mini and embeddings faults do not match a gpt-4o chat.
    statuses = [(await client.post("/chat/completions", json=chat_body())).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    mini = await client.post("/chat/completions", json=chat_body(model="gpt-4o-mini"))
    assert mini.status_code == 500
    embed = await client.post("/embeddings", json={"model": "text-embedding-3-small", "input": "x"})
    assert embed.status_code == 503
    assert fake.faults == []
    # A stream-only fault is not consumed by a non-stream request.
    fake.script(Fault("cut"))
    assert (await client.post("/chat/completions", json=chat_body())).status_code == 200
    assert [f.kind for f in fake.faults] == ["cut"]
    # times < 1: every matching request until reset().
    fake.reset()
    fake.script(Fault("status", status=503, times=0))
    assert {(await client.get("/models")).status_code for _ in range(3)} == {503}
    fake.reset()
    assert (await client.get("/models")).status_code == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown Fault fields"):
        Fault.from_json({"kind": "status", "colour": "red"})
    assert Fault.from_json({"kind": "status", "status": 418}).status == 418


# -- disconnects ----------------------------------------------------------------------------------------


async def test_client_disconnect_mid_stream_is_recorded(
    fake: FakeUpstream, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.config.tokens = 500
    fake.config.token_delay_ms = 20
    async with client.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data: ")
            if seen == 3:
                break
    closed_at = time.monotonic()
    record = fake.requests[-1]
    assert await wait_for(lambda: record.disconnected_at is not None, within=3)
    assert record.disconnected_at is not None and record.disconnected_at - closed_at < 1.0
    assert record.completed is False and record.stream is True
    # The fake carries on serving, and nothing noisy was logged.
    fake.config.token_delay_ms = 0
    assert (await client.post("/chat/completions", json=chat_body())).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- admin endpoints ------------------------------------------------------------------------------------


async def test_admin_endpoints(fake: FakeUpstream) -> None:
    async with httpx.AsyncClient(base_url=fake.url, timeout=TIMEOUT) as admin:
        config = (await admin.post("/_fake/config", json={"tokens": 3, "ttfb_ms": 1})).json()
        assert (config["tokens"], config["ttfb_ms"]) == (3, 1.0)
        assert fake.config.tokens == 3
        bad = await admin.post("/_fake/config", json={"tokens": "many"})
        assert bad.status_code == 400 and fake.config.tokens == 3
        assert (await admin.post("/_fake/config", json={"nope": 1})).status_code == 400
        scripted = await admin.post(
            "/_fake/script", json=[{"kind": "status", "status": 429}, {"kind": "html"}]
        )
        assert scripted.json() == {"scripted": 2}
        assert (await admin.post("/_fake/script", json={"kind": "bogus"})).status_code == 400
        assert [f["kind"] for f in (await admin.get("/_fake/faults")).json()] == ["status", "html"]

        statuses = [
            (await admin.post("/v1/chat/completions", json=chat_body())).status_code for _ in range(3)
        ]
        assert statuses == [429, 502, 200]
        assert (await admin.post("/v1/chat/completions", json=chat_body())).json()["choices"][0]["message"][
            "content"
        ] == expected_text(3)

        recorded = (await admin.get("/_fake/requests")).json()
        assert len(recorded) == 4  # admin calls are not recorded
        assert recorded[0]["body"] == chat_body() and recorded[0]["method"] == "POST"
        assert recorded[0]["path"] == "/v1/chat/completions" and recorded[0]["fault"] == "status"
        assert recorded[-1]["status"] == 200 and recorded[-1]["completed"] is True

        assert (await admin.post("/_fake/reset")).status_code == 200
        assert (await admin.get("/_fake/requests")).json() == []
        assert (await admin.get("/_fake/nothing")).status_code == 404


# -- thread wrapper, connections, recording ---------------------------------------------------------------


def test_fake_upstream_thread() -> None:
    with FakeUpstreamThread(FakeConfig(tokens=2)) as fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
        with httpx.Client(base_url=fake.base_url, timeout=TIMEOUT) as http:
            assert http.post("/chat/completions", json=chat_body()).json()["choices"][0]["message"][
                "content"
            ] == ("w0 w1 ")
            fake.script(Fault("status", status=500))
            assert http.post("/chat/completions", json=chat_body()).status_code == 500
            fake.config.tokens = 1
            assert http.post("/chat/completions", json=chat_body()).json()["choices"][0]["message"][
                "content"
            ] == ("w0 ")
        snapshot = fake.requests
        assert [r.status for r in snapshot] == [200, 500, 200]
        fake.reset()
        assert fake.requests == [] and len(snapshot) == 3
        port = fake.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_keep_alive_and_pipelining(tfake: FakeUpstreamThread) -> None:
    tfake.config.token_delay_ms = 10
    conn = RawConnection(tfake.port)
    try:
        conn.send(raw_post("/v1/chat/completions", chat_body()))
        (status, headers, _) = conn.read(1)[0]
        assert status == 200 and headers["connection"] == "keep-alive"
        conn.send(b"GET /v1/models HTTP/1.1\r\nHost: test\r\n\r\n")
        assert conn.read(2)[1][0] == 200
        # Pipelined: a slow stream then a fast request, sent together; answers must come back in order.
        conn.send(
            raw_post("/v1/chat/completions", chat_body(stream=True)),
            raw_post("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}),
        )
        streamed, embedded = conn.read(4)[2:]
        assert streamed[1]["content-type"].startswith("text/event-stream")
        assert streamed[2].endswith(b"data: [DONE]\n\n")
        assert json.loads(embedded[2])["object"] == "list"
        conn.send(raw_post("/v1/chat/completions", chat_body(), "Connection: close"))
        assert conn.read(5)[4][1]["connection"] == "close"
        assert conn.sock.recv(1024) == b""
    finally:
        conn.close()
    assert len(tfake.requests) == 5


def test_chunked_request_body_and_expect_continue(tfake: FakeUpstreamThread) -> None:
    payload = json.dumps(chat_body()).encode()
    with httpx.Client(base_url=tfake.base_url, timeout=TIMEOUT) as http:
        response = http.post("/chat/completions", content=iter([payload[:10], payload[10:]]))
    assert response.status_code == 200
    assert tfake.requests[-1].headers["transfer-encoding"] == "chunked"
    assert tfake.requests[-1].json == chat_body()
    conn = RawConnection(tfake.port)
    try:
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        conn.send(head)
        assert conn.sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.send(payload)
        assert conn.read(1)[0][0] == 200
    finally:
        conn.close()


def test_bad_http_gets_400(tfake: FakeUpstreamThread) -> None:
    with socket.create_connection(("127.0.0.1", tfake.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 400 Bad Request")


async def test_recording_ring_buffer_and_switch(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.config.max_recorded = 3
    for tokens in range(1, 6):
        await client.post("/chat/completions", json=chat_body(max_tokens=tokens))
    assert [r.json["max_tokens"] for r in fake.requests] == [3, 4, 5]
    record = fake.requests[-1]
    assert record.headers["content-type"] == "application/json"
    assert (
        record.method == "POST"
        and record.path == "/v1/chat/completions"
        and record.received_at <= time.monotonic()
    )
    fake.config.record = False
    await client.get("/models")
    assert len(fake.requests) == 3 and fake.requests[-1] is record


async def test_canned_mode_same_wire_output(fake: FakeUpstream, client: httpx.AsyncClient) -> None:
    fake.config.canned = True
    first = (await client.post("/chat/completions", json=chat_body())).json()
    second = (await client.post("/chat/completions", json=chat_body())).json()
    assert first == second and first["choices"][0]["message"]["content"] == expected_text(8)
    streamed = chunks_of((await client.post("/chat/completions", json=chat_body(stream=True))).text)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed) == expected_text(8)
    fake.config.tokens = 2
    assert (await client.post("/chat/completions", json=chat_body())).json()["choices"][0]["message"][
        "content"
    ] == ("w0 w1 ")
    fake.config.canned = False
    third = (await client.post("/chat/completions", json=chat_body())).json()
    assert third["id"] != first["id"]


# -- CLI hooks ------------------------------------------------------------------------------------------


def test_cli_options_build_config() -> None:
    parser = argparse.ArgumentParser()
    build_arg_parser_options(parser)
    args = parser.parse_args(
        [
            *("--tokens", "3", "--ttfb-ms", "5", "--token-delay-ms", "2.5", "--embedding-dim", "16"),
            *("--api-key", "sk-x", "--no-usage", "--answer-any-model", "--no-record", "--canned"),
        ]
    )
    config = config_from_args(args)
    assert (config.tokens, config.ttfb_ms, config.token_delay_ms, config.embedding_dim) == (3, 5.0, 2.5, 16)
    assert (config.api_key, config.send_usage, config.answer_any_model) == ("sk-x", False, True)
    assert (config.record, config.canned) == (False, True)
    assert config_from_args(parser.parse_args([])) == FakeConfig()


async def test_serve_forever_runs_until_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve_forever("127.0.0.1", port, FakeConfig(tokens=1)))
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            for _ in range(200):
                try:
                    response = await http.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions", json=chat_body()
                    )
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
            assert response.json()["choices"][0]["message"]["content"] == "w0 "
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- scripted shell use (scripts/try_codex.sh) -------------------------------------------------------------

EXEC_COMMAND = {
    "type": "function",
    "function": {
        "name": "exec_command",
        "parameters": {
            "type": "object",
            "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}},
            "required": ["cmd"],
        },
    },
}
SHELL = {
    "type": "function",
    "function": {
        "name": "shell",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "array", "items": {"type": "string"}}},
            "required": ["command"],
        },
    },
}


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [(EXEC_COMMAND, {"cmd": "echo hi"}), (SHELL, {"command": ["bash", "-lc", "echo hi"]})],
)
def test_run_marker_calls_the_shell_tool_then_quotes_its_output(
    sdk: openai.OpenAI, tool: dict[str, Any], arguments: dict[str, Any]
) -> None:
    other = {"type": "function", "function": {"name": "view_image", "parameters": {"type": "object"}}}
    user = {"role": "user", "content": "[[run: echo hi]] please"}
    first = sdk.chat.completions.create(model="gpt-4o", messages=[user], tools=[other, tool])
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == tool["function"]["name"]
    assert json.loads(call.function.arguments) == arguments
    second = sdk.chat.completions.create(
        model="gpt-4o",
        messages=[
            user,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "Exit code: 0\nOutput:\nhi\n"},
        ],
        tools=[other, tool],
    )
    assert second.choices[0].message.content == "The command printed: hi"


def test_scripted_tool_call_for_agent_clis(sdk: openai.OpenAI, tfake: FakeUpstreamThread) -> None:
    """call_tool / call_arguments / echo_tool_result: how scripts/try_claude_code.sh drives a real CLI."""
    other = {"type": "function", "function": {"name": "Agent", "parameters": {"type": "object"}}}
    shell = {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}
    tfake.config.update({"call_tool": "none"})
    plain = sdk.chat.completions.create(model="gpt-4o", messages=USER, tools=[other, shell])  # type: ignore[list-item]
    assert plain.choices[0].message.tool_calls is None
    tfake.config.update(
        {"call_tool": "Bash", "call_arguments": '{"command": "echo hi"}', "echo_tool_result": True}
    )
    asked: list[Any] = [*USER, {"role": "system", "content": "a reminder after the user turn"}]
    first = sdk.chat.completions.create(model="gpt-4o", messages=asked, tools=[other, shell])  # type: ignore[list-item]
    (call,) = first.choices[0].message.tool_calls or []
    assert call.function.name == "Bash" and json.loads(call.function.arguments) == {"command": "echo hi"}
    answered: list[Any] = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "hi"},
        {"role": "system", "content": "another reminder"},
    ]
    final = sdk.chat.completions.create(model="gpt-4o", messages=answered, tools=[other, shell])  # type: ignore[list-item]
    assert final.choices[0].message.content == "tool said: hi"
    with pytest.raises(ValueError, match="call_arguments"):
        tfake.config.update({"call_arguments": "[1]"})
