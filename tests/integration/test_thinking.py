"""Thinking through real clients (issue 12): models nothing describes are never refused, their reasoning is
relayed, and each OpenAI family gets an effort it accepts (the fake refuses the rest, as OpenAI does)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
def proxy_url(fake_open_models: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> str:
    return start_proxy(fake_open_models).url


@pytest.fixture
def client(proxy_url: str) -> ollama.Client:
    return ollama.Client(host=proxy_url)


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


# --- the same through other real clients: LangChain, LiteLLM, ollama-js (issue 12's "done when") ---------


@pytest.mark.parametrize("stream", [False, True])
def test_langchain_reasoning_on_an_undescribed_model(proxy_url: str, stream: bool) -> None:
    """langchain-ollama's ChatOllama(reasoning=True) sends ``think: true`` and reads ``message.thinking``."""
    from langchain_ollama import ChatOllama

    chat = ChatOllama(model="qwen3-8b", base_url=proxy_url, reasoning=True)
    if stream:
        chunks = list(chat.stream("why is the sky blue?"))
        reasoning = "".join(c.additional_kwargs.get("reasoning_content", "") for c in chunks)
        content = "".join(str(c.content) for c in chunks)
    else:
        reply = chat.invoke("why is the sky blue?")
        reasoning, content = reply.additional_kwargs.get("reasoning_content", ""), str(reply.content)
    assert reasoning == expected_reasoning()
    assert content


def test_langchain_reasoning_false_reaches_the_proxy(proxy_url: str) -> None:
    """``reasoning=False`` is sent as ``think: false``: the proxy hides the upstream's reasoning."""
    from langchain_ollama import ChatOllama

    reply = ChatOllama(model="qwen3-8b", base_url=proxy_url, reasoning=False).invoke("why is the sky blue?")
    assert "reasoning_content" not in reply.additional_kwargs
    assert "<think>" not in str(reply.content) and reply.content


@pytest.mark.parametrize("stream", [False, True])
def test_litellm_reasoning_on_an_undescribed_model(
    proxy_url: str, fake_open_models: FakeUpstreamThread, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiteLLM's ``ollama_chat/`` provider (aider, CrewAI and DSPy reach Ollama through it): ``think=True``
    reaches the proxy as Ollama's ``think``, the reasoning comes back as ``reasoning_content``."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price list at import
    import litellm

    reply: Any = litellm.completion(
        model="ollama_chat/deepseek-r1-distill", api_base=proxy_url, messages=USER, think=True, stream=stream
    )
    if stream:
        deltas = [chunk.choices[0].delta for chunk in reply if chunk.choices]
        reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
        content = "".join(d.content or "" for d in deltas)
    else:
        message = reply.choices[0].message
        reasoning, content = message.reasoning_content or "", message.content or ""
    assert reasoning == expected_reasoning()
    assert content
    chats = [r.json for r in fake_open_models.requests if r.path.endswith("/chat/completions")]
    assert chats[-1]["model"] == "deepseek-r1-distill"
    # think=False reaches the proxy too: the reasoning is hidden
    quiet: Any = litellm.completion(
        model="ollama_chat/deepseek-r1-distill", api_base=proxy_url, messages=USER, think=False
    )
    assert not getattr(quiet.choices[0].message, "reasoning_content", None)
    assert quiet.choices[0].message.content


JS_DIR = Path(__file__).resolve().parents[1] / "js"


def test_ollama_js_thinking_on_an_undescribed_model(proxy_url: str) -> None:
    """ollama-js (npm ``ollama``, installed by ``npm ci --prefix tests/js``) in Node: think on qwen3-8b,
    whole and streamed."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("ollama-js needs Node.js and npm, which are not installed (apt-get install nodejs npm)")
    if not (JS_DIR / "node_modules" / "ollama").is_dir():
        if os.environ.get("CI"):
            pytest.fail("tests/js/node_modules is missing: .ci/run should have run npm ci --prefix tests/js")
        pytest.skip("ollama-js is not installed: run `npm ci --prefix tests/js` once")
    done = subprocess.run(
        [node, str(JS_DIR / "thinking.mjs"), proxy_url, "qwen3-8b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["whole"]["thinking"] == expected_reasoning()
    assert result["whole"]["content"]
    assert result["streamed"]["thinking"] == expected_reasoning()
    assert result["streamed"]["content"] and result["streamed"]["done"] is True
    assert result["hidden"] == {"thinking": "", "content": result["hidden"]["content"]}  # think: false
    assert result["hidden"]["content"]
