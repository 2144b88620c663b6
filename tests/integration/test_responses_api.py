"""``/v1/responses`` in translate mode, driven by the real ``openai`` SDK through the proxy to the fake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import orjson
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, Fault, expected_reasoning, expected_text
from falcon_ollama.access import ApiKeys
from tests.servers import ProxyThread

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture
def oai(proxy: ProxyThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="anything", max_retries=0)


def _chat_requests(fake: FakeUpstreamThread) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path == "/v1/chat/completions"]


def test_create_plain_text_through_an_alias(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    response = oai.responses.create(model="llama3.2", input="Say hi", instructions="Be brief")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "llama3.2"
    assert response.output_text == expected_text(8)
    assert response.usage is not None and response.usage.output_tokens == 8
    assert response.usage.total_tokens == response.usage.input_tokens + 8
    sent = _chat_requests(fake)[-1]
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hi"},
    ]


def test_stream_event_sequence(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="gpt-4o", input="Say hi", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert types.count("response.output_text.delta") == 8
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert types.count(kind) == 1, kind
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == expected_text(8)
    assert done.response.usage is not None and done.response.usage.output_tokens == 8


def test_stream_helper_accumulates(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="gpt-4o", input="Say hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == expected_text(8)
    assert final.output_text == expected_text(8)


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip(oai: openai.OpenAI, fake: FakeUpstreamThread, stream: bool) -> None:
    request: dict[str, Any] = {"model": "gpt-4o", "input": "Weather in Paris?", "tools": [WEATHER]}
    if stream:
        with oai.responses.stream(**request) as events:
            kinds = [e.type for e in events]
            first = events.get_final_response()
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
    else:
        first = oai.responses.create(**request)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id.startswith("call_")
    upstream_tool = _chat_requests(fake)[-1]["tools"][0]
    assert upstream_tool["function"]["strict"] is True
    second = oai.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == expected_text(8)
    messages = _chat_requests(fake)[-1]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21 C"}


def test_namespace_tools_are_flattened_and_restored(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    body = {
        "model": "gpt-4o",
        "input": "find Ada",
        "tools": [
            {
                "type": "namespace",
                "name": "crm",
                "description": "CRM",
                "tools": [{"type": "function", "name": "find", "parameters": WEATHER["parameters"]}],
            }
        ],
    }
    answer = httpx.post(proxy.url + "/v1/responses", json=body, timeout=10).json()
    call = next(i for i in answer["output"] if i["type"] == "function_call")
    assert (call["namespace"], call["name"]) == ("crm", "find")
    assert _chat_requests(fake)[-1]["tools"][0]["function"]["name"] == "crm__find"


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_summary(oai: openai.OpenAI, fake: FakeUpstreamThread, stream: bool) -> None:
    request: dict[str, Any] = {
        "model": "o4-mini",
        "input": "think",
        "reasoning": {"effort": "low", "summary": "auto"},
        "temperature": 0.3,  # a reasoning model refuses it: dropped, not forwarded
    }
    if stream:
        with oai.responses.stream(**request) as events:
            deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
            response = events.get_final_response()
        assert "".join(deltas) == expected_reasoning(3)
    else:
        response = oai.responses.create(**request)
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert [s.text for s in reasoning[0].summary] == [expected_reasoning(3)]
    assert response.output[0].type == "reasoning" and response.output[1].type == "message"
    assert response.output_text == expected_text(8)
    sent = _chat_requests(fake)[-1]
    assert sent["reasoning_effort"] == "low"
    assert "temperature" not in sent


def test_json_schema(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
        "required": ["city", "temp"],
        "additionalProperties": False,
    }
    response = oai.responses.create(
        model="gpt-4o",
        input="weather as JSON",
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}},
    )
    assert orjson.loads(response.output_text) == {"city": "Paris", "temp": 1}
    fmt = _chat_requests(fake)[-1]["response_format"]
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": schema, "strict": True},
    }


def test_max_output_tokens_is_incomplete(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="gpt-4o", input="long", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == expected_text(3)


@pytest.mark.parametrize("mode", ["translate", "forward"])
def test_unknown_model_is_404_not_found_error(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], mode: str
) -> None:
    """Ollama's /v1 names a 404 not_found_error (openai.NewError); both modes say so."""
    client = openai.OpenAI(
        base_url=start_proxy(fake, responses_mode=mode).url + "/v1", api_key="x", max_retries=0
    )
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="no-such-model", input="hi")
    assert info.value.type == "not_found_error"
    if mode == "translate":
        assert info.value.code == "model_not_found"


def test_previous_response_id_is_refused(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.responses.create(model="gpt-4o", input="hi", previous_response_id="resp_123")
    assert "stateless" in info.value.message
    assert "previous_response_id" in info.value.message


def test_bad_input_is_an_openai_error(proxy: ProxyThread) -> None:
    answer = httpx.post(proxy.url + "/v1/responses", json={"model": "gpt-4o", "input": 5}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    answer = httpx.post(proxy.url + "/v1/responses", content=b"{not json", timeout=10)
    assert answer.status_code == 400 and "error" in answer.json()


def test_upstream_429_keeps_status_and_shape(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    fake.script(Fault("status", status=429, times=0, headers={"retry-after": "60"}))
    with pytest.raises(openai.RateLimitError) as info:
        oai.responses.create(model="gpt-4o", input="hi")
    assert info.value.response.headers.get("retry-after") == "60"


def test_failure_after_first_byte_is_response_failed(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    fake.script(Fault("cut", after_events=3))
    events = list(oai.responses.create(model="gpt-4o", input="hi", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None


def test_forward_mode_failure_after_first_byte_is_response_failed(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    """A forwarded stream that breaks ends as a Responses stream ends (translate mode's too): response.failed,
    not the chat completions error line (which the SDK cannot read as a Responses event)."""
    proxy = start_proxy(fake, responses_mode="forward")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    fake.script(Fault("cut", after_events=3))
    events = list(client.responses.create(model="llama3.2", input="hi", stream=True, tools=[WEATHER]))
    assert events[0].type == "response.created"
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.model == "llama3.2"
    assert failed.response.error is not None and failed.response.error.code == "server_error"
    assert [t.name for t in failed.response.tools if t.type == "function"] == ["get_weather"]
    # the upstream's response, one sequence number on: the SDK's stream helper checks both
    assert failed.response.id == events[0].response.id
    assert failed.sequence_number == events[-2].sequence_number + 1


def test_forward_mode_failure_reaches_the_sdks_stream_helper(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    """``responses.stream()`` refuses an event of another response ("Lifecycle response identity changed")."""
    proxy = start_proxy(fake, responses_mode="forward")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    fake.script(Fault("cut", after_events=3))
    with client.responses.stream(model="llama3.2", input="hi") as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"


def test_forward_mode_relays_to_the_upstream(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, responses_mode="forward")
    answer = httpx.post(proxy.url + "/v1/responses", json={"model": "gpt-4o", "input": "hi"}, timeout=10)
    forwarded = [r for r in fake.requests if r.path == "/v1/responses"]
    assert len(forwarded) == 1
    assert forwarded[0].json == {"model": "gpt-4o", "input": "hi"}
    assert forwarded[0].headers["authorization"] == "Bearer sk-test-proxy-key-1234567890"
    assert answer.status_code == 200, answer.text
    assert answer.json()["object"] == "response"


def test_inbound_keys_apply_and_oss_style_calls_are_refused(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    """Codex --oss sends no Authorization: with inbound keys configured it gets OpenAI's 401 shape."""
    key = "sk-inbound-key-for-responses-0001"
    proxy = start_proxy(fake, api_keys=ApiKeys([key]))
    body = {"model": "gpt-4o", "input": "hi"}
    refused = httpx.post(proxy.url + "/v1/responses", json=body, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "invalid_request_error"
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0)
    assert client.responses.create(model="gpt-4o", input="hi").output_text == expected_text(8)
    sent = [r for r in fake.requests if r.path == "/v1/chat/completions"][-1]
    assert key not in sent.headers.get("authorization", "")  # our upstream key, never the client's


def test_codex_style_request(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    """What Codex sends: a developer message, a custom tool, reasoning, include, store false."""
    response = oai.responses.create(
        model="gpt-5",
        instructions="You are Codex.",
        input=[
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,iVBORw0KGgo=",
                        "detail": "auto",
                    },
                ],
            },
        ],
        tools=[{"type": "custom", "name": "apply_patch", "description": "patch files"}],
        tool_choice="auto",
        parallel_tool_calls=False,
        reasoning={"effort": "medium", "summary": "auto"},
        store=False,
        include=["reasoning.encrypted_content"],
        prompt_cache_key="thread-1",
        stream=True,
    )
    events = list(response)
    final = events[-1]
    assert final.type == "response.completed"
    calls = [item for item in final.response.output if item.type == "custom_tool_call"]
    assert [c.name for c in calls] == ["apply_patch"]
    assert calls[0].input == "Paris"  # the fake fills the one string argument
    assert "response.custom_tool_call_input.done" in [e.type for e in events]
    sent = _chat_requests(fake)[-1]
    assert sent["messages"][1] == {"role": "system", "content": "rules"}
    assert sent["messages"][2]["content"][1]["image_url"]["url"].startswith("data:image/png")
    assert sent["reasoning_effort"] == "medium"
    assert "store" not in sent and "include" not in sent and "prompt_cache_key" not in sent


@pytest.mark.parametrize(
    ("model", "effort", "expected"),
    [("qwen3", "none", None), ("gpt-5.1", "minimal", "none"), ("gpt-5", "xhigh", "high"),
     ("gpt-5-pro", "medium", "high"), ("gpt-5", "max", "high")],
)  # fmt: skip
def test_any_effort_is_fitted_to_the_model(
    proxy: ProxyThread, fake: FakeUpstreamThread, model: str, effort: str, expected: str | None
) -> None:
    """Ollama takes every effort for any model; the upstream gets one the family accepts, not a 400."""
    body = {"model": model, "input": "hi", "reasoning": {"effort": effort}}
    answer = httpx.post(proxy.url + "/v1/responses", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    assert _chat_requests(fake)[-1].get("reasoning_effort") == expected


@pytest.mark.parametrize(("effort", "expected"), [("max", "high"), ("none", "minimal")])
def test_forward_mode_fits_the_effort(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], effort: str, expected: str
) -> None:
    proxy = start_proxy(fake, responses_mode="forward")
    body = {"model": "gpt-5", "input": "hi", "reasoning": {"effort": effort, "summary": "auto"}}
    answer = httpx.post(proxy.url + "/v1/responses", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    forwarded = [r for r in fake.requests if r.path == "/v1/responses"][-1].json
    assert forwarded["reasoning"] == {"effort": expected, "summary": "auto"}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_on_an_upstream_that_refuses_it(
    start_proxy: Callable[..., ProxyThread], stream: bool
) -> None:
    """llama.cpp refuses json_schema (HTTP 500): sent again in JSON mode with the schema in a system message,
    as /api/chat's format does (resources/format_fallback.py), instead of a 400 to the client."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fmt = {"type": "json_schema", "name": "weather", "schema": schema}
    with FakeUpstreamThread(FakeConfig(accept_json_schema=False)) as fake:
        client = openai.OpenAI(base_url=start_proxy(fake).url + "/v1", api_key="x", max_retries=0)
        if stream:
            with client.responses.stream(model="gpt-4o", input="weather", text={"format": fmt}) as events:
                response = events.get_final_response()
        else:
            response = client.responses.create(model="gpt-4o", input="weather", text={"format": fmt})
        assert response.status == "completed"
        assert isinstance(orjson.loads(response.output_text), dict)
        first, second = _chat_requests(fake)
        assert first["response_format"]["type"] == "json_schema"
        assert second["response_format"] == {"type": "json_object"}
        assert second["messages"][0]["content"].endswith(orjson.dumps(schema).decode())
        assert second["messages"][1:] == first["messages"]


def test_json_object_without_the_word_json(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    """OpenAI refuses JSON mode unless a message says JSON; Ollama does not: a system line says it."""
    response = oai.responses.create(model="gpt-4o", input="weather", text={"format": {"type": "json_object"}})
    assert isinstance(orjson.loads(response.output_text), dict)
    sent = _chat_requests(fake)[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Respond with a JSON object."}


@pytest.mark.parametrize("mode", ["translate", "forward"])
def test_a_stream_is_not_cached(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], mode: str
) -> None:
    """Ollama's ResponsesMiddleware sends Cache-Control: no-cache with a stream (as our /v1/messages does)."""
    proxy = start_proxy(fake, responses_mode=mode)
    body = {"model": "gpt-4o", "input": "hi", "stream": True}
    with httpx.stream("POST", proxy.url + "/v1/responses", json=body, timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers.get("cache-control") == "no-cache"
        assert b"response.completed" in answer.read()
    whole = httpx.post(proxy.url + "/v1/responses", json={**body, "stream": False}, timeout=10)
    assert "cache-control" not in whole.headers


def test_web_search_call_in_history_is_skipped(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    """Codex replays the hosted web search it saw; Ollama skips the item, so no 400 here either."""
    history = [
        {"role": "user", "content": "news?"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        {"role": "assistant", "content": "here"},
        {"role": "user", "content": "more"},
    ]
    answer = httpx.post(proxy.url + "/v1/responses", json={"model": "gpt-4o", "input": history}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert [m["content"] for m in _chat_requests(fake)[-1]["messages"]] == ["news?", "here", "more"]
