"""/v1 requests Ollama accepts reach the model in a shape it takes: the real openai SDK through the proxy.

The fake upstream refuses per family what OpenAI refuses (fake_openai/_validate.py), so each of these was a
400 while the proxy forwarded bodies as is."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import openai
import pytest

from fake_openai import FakeUpstreamThread, expected_text
from tests.servers import ProxyThread

USER: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture
def oai(proxy: ProxyThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="anything", max_retries=0)


def sent(fake: FakeUpstreamThread) -> dict[str, Any]:
    body = [r for r in fake.requests if r.path.endswith("/completions")][-1].json
    assert isinstance(body, dict)
    return body


def test_gpt5_with_temperature(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    reply = oai.chat.completions.create(model="gpt-5", messages=USER, temperature=0.2, top_p=0.9)
    assert reply.choices[0].message.content == expected_text(8)
    body = sent(fake)
    assert "temperature" not in body and "top_p" not in body and body["messages"] == USER


def test_o3_mini_with_max_tokens(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    reply = oai.chat.completions.create(model="o3-mini", messages=USER, max_tokens=3)
    assert reply.choices[0].message.content == expected_text(3)
    assert reply.choices[0].finish_reason == "length"  # the limit still applies, under its new name
    body = sent(fake)
    assert body["max_completion_tokens"] == 3 and "max_tokens" not in body


def test_an_alias_of_a_reasoning_model(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    """qwen3 is o4-mini in the example catalog: an Ollama client's usual request, logprobs and all."""
    reply = oai.chat.completions.create(
        model="qwen3", messages=USER, max_tokens=4, temperature=0.7, logprobs=True, top_logprobs=2
    )
    assert reply.choices[0].message.content == expected_text(4)
    body = sent(fake)
    assert body["model"] == "o4-mini" and body["max_completion_tokens"] == 4
    assert not {"max_tokens", "temperature", "logprobs", "top_logprobs"} & set(body)


def test_gpt51_with_reasoning_effort_minimal(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    reply = oai.chat.completions.create(model="gpt-5.1", messages=USER, reasoning_effort="minimal")
    assert reply.choices[0].message.content == expected_text(8)
    assert sent(fake)["reasoning_effort"] == "none"


def test_gpt51_keeps_temperature_while_not_reasoning(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    oai.chat.completions.create(model="gpt-5.1", messages=USER, temperature=0.2)
    assert sent(fake)["temperature"] == 0.2  # gpt-5.1 takes it at its default effort, none
    oai.chat.completions.create(model="gpt-5.1", messages=USER, temperature=0.2, reasoning_effort="low")
    assert "temperature" not in sent(fake) and sent(fake)["reasoning_effort"] == "low"


def test_o4_mini_with_reasoning_effort_none(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    reply = oai.chat.completions.create(model="o4-mini", messages=USER, reasoning_effort="none")
    assert reply.choices[0].message.content == expected_text(8)
    assert "reasoning_effort" not in sent(fake)


def test_ollamas_reasoning_object(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    """Ollama's /v1 takes ``reasoning: {"effort": …}`` too; OpenAI's chat API does not know the field."""
    body = {"model": "o4-mini", "messages": USER, "reasoning": {"effort": "high"}}
    resp = httpx.post(proxy.url + "/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert sent(fake)["reasoning_effort"] == "high" and "reasoning" not in sent(fake)


def test_streamed_gpt5_request(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    stream = oai.chat.completions.create(
        model="gpt-5",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.3,
        max_tokens=5,
        presence_penalty=0.5,
        stop=["zz"],
        reasoning_effort="none",
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_text(5)
    assert chunks[-1].usage is not None
    body = sent(fake)
    assert body["stream"] is True and body["max_completion_tokens"] == 5
    assert body["reasoning_effort"] == "minimal"  # gpt-5's lowest: its "none"
    assert not {"temperature", "max_tokens", "presence_penalty", "stop"} & set(body)


def test_a_non_reasoning_model_is_left_untouched(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    fields: dict[str, Any] = {
        "temperature": 0.2,
        "top_p": 0.5,
        "max_tokens": 3,
        "logprobs": True,
        "top_logprobs": 2,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.1,
        "seed": 7,
        "stop": ["zz"],
    }
    reply = oai.chat.completions.create(model="llama3.2", messages=USER, **fields)
    assert reply.choices[0].message.content == expected_text(3)
    assert reply.choices[0].logprobs is not None
    assert sent(fake) == {"model": "gpt-4o-mini", "messages": USER, **fields}
    stream = oai.chat.completions.create(model="gpt-4o", messages=USER, stream=True, **fields)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected_text(3)
    assert sent(fake) == {"model": "gpt-4o", "messages": USER, "stream": True, **fields}


def test_legacy_completions_of_a_chat_model_go_through_chat(
    oai: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    """Ollama serves /v1/completions as a generate request (tests/integration/test_v1_completions.py)."""
    reply = oai.completions.create(model="gpt-4o", prompt="hi", max_tokens=2, temperature=0.4)
    assert reply.choices[0].text == expected_text(2)
    body = sent(fake)
    assert (body["messages"], body["max_tokens"], body["temperature"]) == (USER, 2, 0.4)


def test_each_dropped_field_is_logged_once(
    oai: openai.OpenAI, fake: FakeUpstreamThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="falcon_ollama.openai_compat")
    for _ in range(3):
        oai.chat.completions.create(model="gpt-5", messages=USER, temperature=0.2)
    lines = [r.getMessage() for r in caplog.records if "'temperature' dropped" in r.getMessage()]
    assert lines == [
        "/v1/chat/completions: 'temperature' dropped for gpt-5, which does not accept it "
        "(logged once per field)"
    ]


def test_what_the_model_refuses_for_other_reasons_still_comes_back(oai: openai.OpenAI) -> None:
    """Adaptation renames and drops; it does not validate: a bad value gets the upstream's own 400."""
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="o4-mini", messages=USER, reasoning_effort="banana")  # type: ignore[arg-type]
    assert info.value.code == "invalid_value" and info.value.param == "reasoning_effort"


@pytest.mark.parametrize("asked", ["llama3.2", "llama3.2:latest", "gpt-4o", "gpt-4o:latest", "GPT-4o"])
def test_v1_model_echoes_the_id_as_asked(oai: openai.OpenAI, proxy: ProxyThread, asked: str) -> None:
    model = oai.models.retrieve(asked)
    assert model.id == asked and model.object == "model" and model.owned_by == "library"
    raw = httpx.get(f"{proxy.url}/v1/models/{asked}").json()
    assert raw["id"] == asked


def test_a_limit_above_the_models_own_is_asked_again_within_it(
    oai: openai.OpenAI, fake: FakeUpstreamThread
) -> None:
    """Ollama's /v1 takes any max_tokens; OpenAI (the fake, as recorded) refuses more than gpt-4o's 16384."""
    reply = oai.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=50000)
    assert reply.choices[0].message.content == expected_text(8)
    assert sent(fake)["max_tokens"] == 16384
