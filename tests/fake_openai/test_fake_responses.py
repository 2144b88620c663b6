"""The fake's Responses API checked against the openai SDK's own types (Response, ResponseStreamEvent) and
driven by the SDK's ``responses.create`` / ``responses.stream``; refusals as OpenAI refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from fake_openai import FakeConfig, FakeUpstreamThread, expected_reasoning, expected_text

EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig()) as upstream:
        yield upstream


@pytest.fixture
def client(fake: FakeUpstreamThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)


def _raw_events(fake: FakeUpstreamThread, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs as they come over the wire."""
    out: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("POST", fake.base_url + "/responses", json={**body, "stream": True}) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        text = reply.read().decode()
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    assert "[DONE]" not in text
    return out


BODIES = [
    {"model": "gpt-4o", "input": "hi"},
    {"model": "gpt-5", "input": "hi", "reasoning": {"effort": "low", "summary": "auto"}},
    {"model": "gpt-5", "input": "hi"},  # reasoning without a summary: an empty summary list
    {"model": "gpt-4o", "input": [{"role": "user", "content": "weather?"}], "tools": [WEATHER]},
    {"model": "gpt-4o", "input": "hi", "max_output_tokens": 16},
    {
        "model": "gpt-4o",
        "input": "hi",
        "text": {
            "format": {
                "type": "json_schema",
                "name": "x",
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            }
        },
    },
]


@pytest.mark.parametrize("body", BODIES)
def test_stream_events_are_the_sdks_types(fake: FakeUpstreamThread, body: dict[str, Any]) -> None:
    events = _raw_events(fake, body)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    for name, data in events:
        assert name == data["type"]
        parsed = EVENTS.validate_python(data)
        assert parsed.type == name
    names = [n for n, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] in ("response.completed", "response.incomplete")
    final = Response.model_validate(events[-1][1]["response"])
    assert final.usage is not None
    # the deltas add up to the final output
    text = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    assert text == final.output_text


@pytest.mark.parametrize("body", BODIES)
def test_whole_answer_is_the_sdks_response(
    client: openai.OpenAI, fake: FakeUpstreamThread, body: dict[str, Any]
) -> None:
    raw = httpx.post(fake.base_url + "/responses", json=body).json()
    response = Response.model_validate(raw)
    assert response.object == "response" and response.model == body["model"]
    assert client.responses.create(**body).output_text == response.output_text


def test_reasoning_summaries(client: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    response = client.responses.create(model="o4-mini", input="hi", reasoning={"summary": "detailed"})
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert [s.text for s in reasoning[0].summary] == [
        "**Plan** ",
        expected_reasoning(fake.config.reasoning_tokens),
    ]
    assert (
        response.usage is not None
        and response.usage.output_tokens_details.reasoning_tokens == fake.config.reasoning_tokens
    )
    with client.responses.stream(model="o4-mini", input="hi", reasoning={"summary": "auto"}) as stream:
        deltas = [e.delta for e in stream if e.type == "response.reasoning_summary_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "**Plan** " + expected_reasoning(fake.config.reasoning_tokens)
    assert final.output_text == expected_text(fake.config.tokens)


def test_function_call(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o", input="weather?", tools=[WEATHER])  # type: ignore[list-item]
    call = response.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    answered = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert answered.output[0].type == "message"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-4o", "input": "hi", "messages": []}, "messages"),  # unknown field
        ({"model": "gpt-4o"}, "input"),
        ({"model": "gpt-4o", "input": 3}, "input"),
        ({"model": "gpt-4o", "input": "hi", "stream": "yes"}, "stream"),
        ({"model": "gpt-4o", "input": "hi", "max_output_tokens": 8}, "max_output_tokens"),
        ({"model": "gpt-5", "input": "hi", "reasoning": {"summary": "long"}}, "reasoning.summary"),
        ({"model": "gpt-5", "input": "hi", "temperature": 0.5}, "temperature"),
        # a chat completions style tool
        (
            {"model": "gpt-4o", "input": "hi", "tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools[0].name",
        ),
        (
            {"model": "gpt-4o", "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
        ),
        (
            {"model": "gpt-4o", "input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            "input[0].content[0].type",
        ),
        ({"model": "gpt-4o", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ],
)
def test_refusals(fake: FakeUpstreamThread, body: dict[str, Any], param: str) -> None:
    reply = httpx.post(fake.base_url + "/responses", json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param or param in error["message"]
