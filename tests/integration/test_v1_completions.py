"""``/v1/completions`` as Ollama serves it: through the generate path, for chat models too.

OpenAI's legacy ``/v1/completions`` refuses every chat model ("This is a chat model and not supported in the
v1/completions endpoint"), so forwarding the request there failed for every model the catalog lists; Ollama
turns it into a generate request (CompletionsMiddleware), and so do we."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import ollama
import openai
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, expected_text
from tests.servers import ProxyThread


def sdk(proxy: ProxyThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="ollama", max_retries=0)


def upstream_paths(fake: FakeUpstreamThread, since: int) -> list[str]:
    return [r.path for r in fake.requests[since:] if "completions" in r.path]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "llama3.2"])
def test_a_chat_model_answers_through_chat_completions(
    proxy: ProxyThread, fake: FakeUpstreamThread, model: str
) -> None:
    before = len(fake.requests)
    answer = sdk(proxy).completions.create(model=model, prompt="Say hi", max_tokens=3, stop=["\n\n"])
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.model == model  # the name asked for, as Ollama echoes it
    assert answer.system_fingerprint == "fp_ollama"
    choice = answer.choices[0]
    assert (choice.text, choice.index, choice.finish_reason) == (expected_text(3), 0, "length")
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 3
    assert upstream_paths(fake, before) == ["/v1/chat/completions"]
    sent = fake.requests[-1].json
    assert isinstance(sent, dict)
    assert sent["messages"] == [{"role": "user", "content": "Say hi"}]
    assert (sent["max_tokens"], sent["stop"]) == (3, ["\n\n"])


def test_a_stream_is_completion_events_with_usage_and_done(proxy: ProxyThread) -> None:
    chunks = list(
        sdk(proxy).completions.create(
            model="llama3.2", prompt="Say hi", stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == expected_text(8)  # the fake's default answer
    assert all(c.object == "text_completion" and c.model == "llama3.2" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert (
        chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    )
    with httpx.stream(
        "POST", proxy.url + "/v1/completions", json={"model": "llama3.2", "prompt": "hi", "stream": True}
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(resp.iter_bytes())
    assert raw.endswith(b"data: [DONE]\n\n") and b'"usage"' not in raw  # usage only when asked for


def test_an_empty_prompt_is_ollamas_load_reply(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    before = len(fake.requests)
    answer = sdk(proxy).completions.create(model="llama3.2", prompt="")
    assert (answer.choices[0].text, answer.choices[0].finish_reason) == ("", "load")
    streamed = httpx.post(
        proxy.url + "/v1/completions", json={"model": "llama3.2", "prompt": "", "stream": True}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.endswith("data: [DONE]\n\n") and '"finish_reason":"load"' in streamed.text
    assert upstream_paths(fake, before) == []


@pytest.mark.parametrize(
    ("body", "status", "message", "kind"),
    [
        ({"model": "nope", "prompt": "hi"}, 404, "model 'nope' not found", "not_found_error"),
        (
            {"model": "llama3.2", "prompt": ["a", "b"]},
            400,
            "invalid type for 'prompt' field",
            "invalid_request_error",
        ),
        ({"model": "llama3.2", "prompt": "x", "stop": [1]}, 400, "invalid type for 'stop' field", None),
        ({"model": "nomic-embed-text", "prompt": "hi"}, 400, "does not support generate", None),
        ({"model": "llama3.2", "prompt": "x", "temperature": "hot"}, 400, 'option "temperature"', None),
        # the generate request's own checks come before the model, as in Ollama
        (
            {"model": "nope", "prompt": "x", "logprobs": 50},
            400,
            "top_logprobs must be between 0 and 20",
            None,
        ),
    ],
)
def test_errors_in_openai_shape(
    proxy: ProxyThread, body: dict[str, object], status: int, message: str, kind: str | None
) -> None:
    resp = httpx.post(proxy.url + "/v1/completions", json=body)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert message in error["message"] and set(error) == {"message", "type", "param", "code"}
    if kind is not None:
        assert error["type"] == kind


def test_the_openai_sdk_reads_an_unknown_model_as_not_found(proxy: ProxyThread) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk(proxy).completions.create(model="nope", prompt="hi")


def test_a_prompt_only_model_is_asked_at_the_upstreams_completions(
    start_proxy: Callable[..., ProxyThread],
) -> None:
    """gpt-3.5-turbo-instruct (and davinci-002, babbage-002) only exist on OpenAI's legacy endpoint, through
    /v1/completions and /api/generate alike."""
    with FakeUpstreamThread(FakeConfig(models=["gpt-3.5-turbo-instruct"])) as fake:
        proxy = start_proxy(fake)
        answer = sdk(proxy).completions.create(model="gpt-3.5-turbo-instruct", prompt="Once", max_tokens=2)
        assert (answer.choices[0].text, answer.model) == (expected_text(2), "gpt-3.5-turbo-instruct")
        generated = ollama.Client(host=proxy.url).generate(
            "gpt-3.5-turbo-instruct", "Once", system="Be brief."
        )
        assert generated.response == expected_text(8)
        asked = [(r.path, r.json) for r in fake.requests if "completions" in r.path]
        assert [path for path, _ in asked] == ["/v1/completions", "/v1/completions"]
        assert isinstance(asked[1][1], dict) and asked[1][1]["prompt"] == "Be brief.\n\nOnce"
        assert "suffix" not in asked[1][1] and "messages" not in asked[1][1]


def test_a_model_nothing_describes_is_forwarded_as_sent(start_proxy: Callable[..., ProxyThread]) -> None:
    """Its backend's rules are unknown (a base model on vLLM or llama.cpp): the body goes as it came."""
    with FakeUpstreamThread(FakeConfig(models=["my-base-model"])) as fake:
        proxy = start_proxy(fake)
        answer = sdk(proxy).completions.create(model="my-base-model", prompt="Once", max_tokens=2, echo=True)
        assert answer.choices[0].text == expected_text(2)
        sent = [r.json for r in fake.requests if r.path == "/v1/completions"]
        assert sent == [{"model": "my-base-model", "prompt": "Once", "max_tokens": 2, "echo": True}]
