"""Each backend speaks its own dialect (issue 14): two fake upstreams behind one endpoint, ``chat`` (chat
completions, unprefixed) and ``resp`` (``dialect = "responses"``, prefix ``resp/``), and fallback chains whose
links are on backends of different dialects.

The Responses backend's reasoning summaries reach the ollama SDK's ``think`` as ``thinking`` (the fake's two
summary parts, "**Plan** " and the thoughts, joined by a blank line); the chat backend's reasoning arrives
as it always did (the thoughts alone), so every answer shows which backend, in which dialect, produced it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from fake_openai import FakeConfig, FakeUpstreamThread, Fault, expected_reasoning, expected_text
from falcon_ollama.catalog_config import load_catalog_file
from tests.servers import ProxyThread

CATALOG = """
[backends.chat]
base_url = "{chat}"
auth = "none"

[backends.resp]
base_url = "{resp}"
auth = "none"
dialect = "responses"
prefix = "resp/"

[aliases]
"resp-first" = ["resp/gpt-5", "chat/gpt-5"]
"chat-first" = ["chat/gpt-5", "resp/gpt-5"]
"""
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "why is the sky blue?"}]
SUMMARIES = "**Plan** \n\n" + expected_reasoning()  # from the Responses backend
THOUGHTS = expected_reasoning()  # from the chat completions backend
CHAT_PATH, RESPONSES_PATH = "/v1/chat/completions", "/v1/responses"


@dataclass
class Two:
    chat: FakeUpstreamThread
    resp: FakeUpstreamThread
    proxy: ProxyThread

    @property
    def ollama(self) -> ollama.Client:
        return ollama.Client(host=self.proxy.url)

    @property
    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.proxy.url}/v1", api_key="unused")

    def asked(self) -> list[tuple[str, str]]:
        """(backend, path) of every generation request either fake received, in each fake's order."""
        return [
            (name, r.path)
            for name, fake in (("chat", self.chat), ("resp", self.resp))
            for r in fake.requests
            if r.path in (CHAT_PATH, RESPONSES_PATH)
        ]

    def ready(self) -> None:
        """Both backends' model lists loaded (a chain's links are known)."""
        names = {m["name"] for m in httpx.get(f"{self.proxy.url}/api/tags").json()["models"]}
        assert {"gpt-5:latest", "resp/gpt-5:latest", "chat-first:latest"} <= names


@pytest.fixture
def two(tmp_path: Path, start_proxy: Callable[..., ProxyThread]) -> Iterator[Two]:
    with FakeUpstreamThread(FakeConfig()) as chat, FakeUpstreamThread(FakeConfig()) as resp:
        path = tmp_path / "models.toml"
        path.write_text(CATALOG.format(chat=chat.base_url, resp=resp.base_url))
        catalog = load_catalog_file(path, {})
        # upstream_dialect is the implicit backend's only: the file's backends keep their own.
        proxy = start_proxy(
            chat, catalog=catalog, catalog_path=str(path), openai_api_key=None, upstream_dialect="responses"
        )
        two = Two(chat, resp, proxy)
        two.ready()
        yield two


def _chat(client: ollama.Client, model: str, stream: bool) -> tuple[str, str]:
    """(thinking, content) of an ollama SDK chat with ``think=True``, streamed or not."""
    if not stream:
        reply = client.chat(model, messages=USER, think=True)
        return reply.message.thinking or "", reply.message.content or ""
    parts = list(client.chat(model, messages=USER, think=True, stream=True))
    assert parts[-1].done and parts[-1].done_reason == "stop"
    return (
        "".join(p.message.thinking or "" for p in parts),
        "".join(p.message.content or "" for p in parts),
    )


def _generate(client: ollama.Client, model: str, stream: bool) -> tuple[str, str]:
    """(thinking, response) of an ollama SDK generate with ``think=True``, streamed or not."""
    if not stream:
        reply = client.generate(model, prompt="why?", think=True)
        return reply.thinking or "", reply.response or ""
    parts = list(client.generate(model, prompt="why?", think=True, stream=True))
    assert parts[-1].done
    return "".join(p.thinking or "" for p in parts), "".join(p.response or "" for p in parts)


@pytest.mark.parametrize("stream", [False, True])
def test_api_chat_think_on_each_backend_in_its_own_dialect(two: Two, stream: bool) -> None:
    text = expected_text(two.chat.config.tokens)
    assert _chat(two.ollama, "resp/gpt-5", stream) == (SUMMARIES, text)
    sent = json.loads(two.resp.requests[-1].body)
    assert sent["model"] == "gpt-5" and sent["reasoning"]["summary"] == "auto" and "input" in sent
    assert _chat(two.ollama, "gpt-5", stream) == (THOUGHTS, text)  # the chat completions backend, unchanged
    sent = json.loads(two.chat.requests[-1].body)
    assert sent["model"] == "gpt-5" and "messages" in sent and "input" not in sent
    assert two.asked() == [("chat", CHAT_PATH), ("resp", RESPONSES_PATH)]


@pytest.mark.parametrize("stream", [False, True])
def test_api_generate_think_on_each_backend(two: Two, stream: bool) -> None:
    text = expected_text(two.chat.config.tokens)
    for model, expected in (("resp/gpt-5", SUMMARIES), ("gpt-5", THOUGHTS)):
        assert _generate(two.ollama, model, stream) == (expected, text)
    assert two.asked() == [("chat", CHAT_PATH), ("resp", RESPONSES_PATH)]


@pytest.mark.parametrize("stream", [False, True])
def test_v1_chat_completions_on_each_backend(two: Two, stream: bool) -> None:
    """The /v1 forward: the Responses backend's answer translated to chat completions, reasoning
    summaries as ``reasoning_content``; the chat backend's bytes as they came."""
    text = expected_text(two.chat.config.tokens)
    for model, expected in (("resp/gpt-5", SUMMARIES), ("gpt-5", THOUGHTS)):
        if stream:
            chunks = list(
                two.openai.chat.completions.create(
                    model=model,
                    messages=USER,
                    reasoning_effort="low",
                    stream=True,
                )
            )
            deltas = [c.choices[0].delta for c in chunks if c.choices]
            content = "".join(d.content or "" for d in deltas)
            reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
            assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
        else:
            answer = two.openai.chat.completions.create(
                model=model,
                messages=USER,
                reasoning_effort="low",
            )
            message = answer.choices[0].message
            content = message.content or ""
            reasoning = (message.model_extra or {}).get("reasoning_content") or ""
            assert answer.choices[0].finish_reason == "stop"
        assert (reasoning, content) == (expected, text)
    assert two.asked() == [("chat", CHAT_PATH), ("resp", RESPONSES_PATH)]


@pytest.mark.parametrize("stream", [False, True])
def test_a_chain_from_a_responses_link_falls_back_to_a_chat_link(two: Two, stream: bool) -> None:
    two.resp.script(Fault("status", path=RESPONSES_PATH, status=429, headers={"retry-after": "30"}))
    assert _chat(two.ollama, "resp-first", stream) == (THOUGHTS, expected_text(two.chat.config.tokens))
    assert two.asked() == [("chat", CHAT_PATH), ("resp", RESPONSES_PATH)]  # each link in its own dialect
    assert "messages" in json.loads(two.chat.requests[-1].body)


@pytest.mark.parametrize("stream", [False, True])
def test_a_chain_from_a_chat_link_falls_back_to_a_responses_link(two: Two, stream: bool) -> None:
    two.chat.script(Fault("status", path=CHAT_PATH, status=503))
    assert _chat(two.ollama, "chat-first", stream) == (SUMMARIES, expected_text(two.resp.config.tokens))
    assert two.asked() == [("chat", CHAT_PATH), ("resp", RESPONSES_PATH)]
    sent = json.loads(two.resp.requests[-1].body)
    assert sent["model"] == "gpt-5" and "input" in sent and "messages" not in sent
    metrics = httpx.get(f"{two.proxy.url}/metrics").text
    assert 'falcon_ollama_backend_fallbacks_total{backend="chat",to="resp"} 1.0' in metrics


def test_a_chain_across_dialects_through_v1_and_generate(two: Two) -> None:
    """The /v1 forward (streamed) and /api/generate go along a mixed chain too."""
    two.chat.script(Fault("status", path=CHAT_PATH, status=500, times=2))
    chunks = list(
        two.openai.chat.completions.create(
            model="chat-first",
            messages=USER,
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_text(
        two.resp.config.tokens
    )
    assert _generate(two.ollama, "chat-first", False) == (SUMMARIES, expected_text(two.resp.config.tokens))
    paths = two.asked()
    assert paths.count(("chat", CHAT_PATH)) == 2 and paths.count(("resp", RESPONSES_PATH)) == 2


def test_the_implicit_backend_takes_the_dialect_setting(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    """Without [backends], FALCON_OLLAMA_UPSTREAM_DIALECT is the one (implicit) backend's dialect."""
    for dialect, path, expected in (("chat", CHAT_PATH, THOUGHTS), ("responses", RESPONSES_PATH, SUMMARIES)):
        proxy = start_proxy(fake, upstream_dialect=dialect)
        assert _chat(ollama.Client(host=proxy.url), "gpt-5", False)[0] == expected
        assert fake.requests[-1].path == path
