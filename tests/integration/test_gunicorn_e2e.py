"""The main cases of chat, generate, embeddings and /v1 through ``gunicorn -c gunicorn.conf.py`` (2 workers).

The same app runs in-process in the other tests; this module proves the production command serves them all.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from fake_openai import (
    FakeConfig,
    FakeUpstreamThread,
    Fault,
    expected_reasoning,
    expected_text,
)
from tests.servers import REPO, GunicornProcess

USER = [{"role": "user", "content": "Hello"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000000000500010d0a2db40000000049454e44ae426082"
    )
).decode()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig()) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream: FakeUpstreamThread) -> Iterator[GunicornProcess]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "OPENAI_BASE_URL": upstream.base_url,
            "OPENAI_API_KEY": "sk-e2e",
            "WEB_CONCURRENCY": "2",
            "FALCON_OLLAMA_ENV_FILE": os.devnull,
            "FALCON_OLLAMA_CATALOG": str(REPO / "conf" / "models.toml"),
            "FALCON_OLLAMA_RETRY_BASE_DELAY": "0.01",
            "FALCON_OLLAMA_MAX_RETRY_WAIT": "1",
        }
    )
    with GunicornProcess(env) as proc:
        yield proc


@pytest.fixture
def client(server: GunicornProcess) -> ollama.Client:
    return ollama.Client(host=server.url)


def test_chat_stream_and_not(client: ollama.Client) -> None:
    assert client.chat("llama3.2", messages=USER).message.content == expected_text(8)
    parts = list(client.chat("gpt-4o", messages=USER, stream=True))
    assert "".join(p.message.content for p in parts) == expected_text(8)
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].eval_count == 8


def test_async_chat_and_generate(server: GunicornProcess) -> None:
    async def run() -> tuple[str, str]:
        aclient = ollama.AsyncClient(host=server.url)
        chat = await aclient.chat("gpt-4o", messages=USER)
        text = ""
        async for part in await aclient.generate("gpt-4o", "hi", stream=True):
            text += part.response
        return chat.message.content or "", text

    assert asyncio.run(run()) == (expected_text(8), expected_text(8))


def test_generate_with_context(client: ollama.Client) -> None:
    first = client.generate("gpt-4o", "one", system="terse")
    second = client.generate("gpt-4o", "two", context=first.context)
    assert second.response == expected_text(8) and second.context


def test_tools_two_turns(client: ollama.Client) -> None:
    first = client.chat("gpt-4o", messages=USER, tools=[TOOL])
    calls = first.message.tool_calls or []
    assert calls and calls[0].function.arguments == {"city": "Paris"}
    messages = [*USER, first.message, {"role": "tool", "content": "11C", "tool_name": "get_weather"}]
    assert client.chat("gpt-4o", messages=messages, tools=[TOOL]).message.content == expected_text(8)


def test_images_format_think_options(client: ollama.Client, upstream: FakeUpstreamThread) -> None:
    client.chat("gpt-4o", messages=[{"role": "user", "content": "see", "images": [PNG]}])
    assert client.chat("gpt-4o", messages=USER, format="json").message.content.startswith("{")
    parts = list(client.chat("o4-mini", messages=USER, think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == expected_reasoning(3)
    short = client.chat("gpt-4o", messages=USER, options={"num_predict": 2, "top_k": 5})
    assert short.message.content == expected_text(2) and short.done_reason == "length"


def test_errors(client: ollama.Client, upstream: FakeUpstreamThread) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat("llama9", messages=USER)
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as think:
        client.chat("gpt-4o", messages=USER, think=True)
    assert think.value.status_code == 400
    upstream.script(Fault(kind="status", status=429, headers={"Retry-After": "30"}, path="/v1/chat", times=0))
    try:
        with pytest.raises(ollama.ResponseError) as limited:
            client.chat("gpt-4o", messages=USER)
        assert limited.value.status_code == 429
    finally:
        upstream.reset()
    upstream.script(Fault(kind="cut", after_events=3, path="/v1/chat"))
    with pytest.raises(ollama.ResponseError):
        list(client.chat("gpt-4o", messages=USER, stream=True))


def test_embeddings(client: ollama.Client) -> None:
    vectors = client.embed("nomic-embed-text", input=["a", "b", "c"]).embeddings
    assert len(vectors) == 3 and all(math.isclose(math.hypot(*v), 1.0) for v in vectors)
    assert len(client.embeddings("nomic-embed-text", prompt="a").embedding) == 8


def test_v1(server: GunicornProcess) -> None:
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    assert "llama3.2:latest" in [m.id for m in oai.models.list()]
    stream = oai.chat.completions.create(model="llama3.2", messages=USER, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected_text(8)
    assert len(oai.embeddings.create(model="all-minilm", input=["x"]).data[0].embedding) == 8


def test_discovery_and_probes(server: GunicornProcess, client: ollama.Client) -> None:
    assert client.show("llama3.2").capabilities == ["completion", "tools", "vision"]
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/ready").status_code == 200
    assert "falcon_ollama_requests_total" in httpx.get(server.url + "/metrics").text
