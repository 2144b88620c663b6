"""Thinking through real clients (issue 12): models nothing describes are never refused, their reasoning is
relayed, and each OpenAI family gets an effort it accepts (the fake refuses the rest, as OpenAI does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ollama
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, expected_reasoning
from tests.servers import ProxyThread

USER = [{"role": "user", "content": "why is the sky blue?"}]


@pytest.fixture
def fake_open_models() -> Iterator[FakeUpstreamThread]:
    """An upstream that also serves open-weight reasoning models (as vLLM or llama.cpp would)."""
    config = FakeConfig()
    config.models = [*config.models, "qwen3-8b", "deepseek-r1-distill"]
    with FakeUpstreamThread(config) as upstream:
        yield upstream


@pytest.fixture
def client(fake_open_models: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> ollama.Client:
    return ollama.Client(host=start_proxy(fake_open_models).url)


@pytest.mark.parametrize("think", [True, "high", "max"])
def test_think_on_a_model_the_catalog_does_not_describe_is_passed_on(
    client: ollama.Client, think: object
) -> None:
    reply = client.chat("qwen3-8b", messages=USER, think=think)  # type: ignore[arg-type]
    assert reply.message.thinking == expected_reasoning()
    assert reply.message.content


def test_think_streamed_from_an_undescribed_model(client: ollama.Client) -> None:
    parts = list(client.chat("deepseek-r1-distill", messages=USER, think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == expected_reasoning()
    assert "".join(p.message.content or "" for p in parts)
    assert parts[-1].done


def test_think_false_hides_the_reasoning_of_an_undescribed_model(client: ollama.Client) -> None:
    reply = client.chat("qwen3-8b", messages=USER, think=False)
    assert not reply.message.thinking
    assert reply.message.content


def test_a_model_known_not_to_think_is_still_refused(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat("gpt-4o", messages=USER, think=True)
    assert info.value.status_code == 400
    assert info.value.error == '"gpt-4o" does not support thinking'


@pytest.mark.parametrize(
    ("model", "think", "effort"),
    [
        ("gpt-5.1", False, "none"),  # 'minimal' is a 400 on gpt-5.1 (Haystack sends think=false always)
        ("gpt-5.1", True, "medium"),  # gpt-5.1 does not reason unless asked
        ("gpt-5.2", "max", "xhigh"),
        ("gpt-5", False, "minimal"),
        ("gpt-5", "max", "high"),
        ("gpt-5-pro", "low", "high"),
        ("o4-mini", False, None),
    ],
)
def test_each_family_gets_an_effort_it_accepts(
    client: ollama.Client, fake_open_models: FakeUpstreamThread, model: str, think: object, effort: str | None
) -> None:
    reply = client.chat(model, messages=USER, think=think)  # type: ignore[arg-type]
    assert reply.message.content
    sent = fake_open_models.requests[-1].json
    assert sent.get("reasoning_effort") == effort
