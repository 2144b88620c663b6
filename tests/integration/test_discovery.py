"""Discovery endpoints through real servers: the real ollama SDK (sync and async) and raw HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import ollama
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread
from tests.servers import ProxyThread

HIDDEN = ("whisper-1", "tts-1", "tts-1-hd", "dall-e-3", "omni-moderation-latest", "gpt-4o-realtime-preview")


def model_requests(fake: FakeUpstreamThread) -> int:
    return sum(1 for r in fake.requests if r.path.rstrip("/").endswith("/models"))


def test_root_and_version(proxy: ProxyThread) -> None:
    root = httpx.get(proxy.url + "/")
    assert root.status_code == 200
    assert root.text == "Ollama is running"
    assert root.headers["content-type"].startswith("text/plain")
    head = httpx.head(proxy.url + "/")
    assert head.status_code == 200 and head.content == b""
    version = httpx.get(proxy.url + "/api/version")
    assert version.headers["content-type"].startswith("application/json")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version.json()["version"])
    assert httpx.head(proxy.url + "/api/version").status_code == 200


def test_sdk_lists_models_with_aliases_and_without_unusable_ones(proxy: ProxyThread) -> None:
    listed = ollama.Client(host=proxy.url).list()
    names = {m.model for m in listed.models}
    assert {"gpt-4o:latest", "gpt-4o-mini:latest", "o4-mini:latest", "text-embedding-3-small:latest"} <= names
    assert {"llama3.2:latest", "nomic-embed-text:latest", "mxbai-embed-large:latest"} <= names
    assert not {f"{h}:latest" for h in HIDDEN} & names
    for m in listed.models:
        assert m.modified_at is not None
        assert m.digest and re.fullmatch(r"[0-9a-f]{64}", m.digest)
        assert m.size is not None
        assert m.details is not None and m.details.family


def test_raw_tags_shape(proxy: ProxyThread) -> None:
    resp = httpx.get(proxy.url + "/api/tags")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    models = resp.json()["models"]
    sample = next(m for m in models if m["name"] == "gpt-4o:latest")
    assert set(sample) >= {"name", "model", "modified_at", "size", "digest", "details"}
    assert set(sample["details"]) >= {
        "parent_model",
        "format",
        "family",
        "families",
        "parameter_size",
        "quantization_level",
    }
    alias = next(m for m in models if m["name"] == "llama3.2:latest")
    assert alias["details"]["family"] == "gpt-4o"


def test_tags_without_created_or_owned_by(
    start_proxy: Callable[..., ProxyThread],
) -> None:
    with FakeUpstreamThread(FakeConfig(models_have_created_owned_by=False, models=["tiny-llama"])) as fake:
        proxy = start_proxy(fake)
        models = ollama.Client(host=proxy.url).list().models
        assert [m.model for m in models] == ["tiny-llama:latest"]
        assert models[0].modified_at is not None
        assert models[0].details is not None and models[0].details.family == "tiny"


@pytest.mark.parametrize("name", ["gpt-4o", "gpt-4o:latest", "GPT-4o", "llama3.2", "llama3.2:latest"])
def test_show_finds_a_model_by_every_name(proxy: ProxyThread, name: str) -> None:
    show = ollama.Client(host=proxy.url).show(name)
    assert show.capabilities == ["completion", "tools", "vision"]
    assert show.modelinfo is not None
    assert show.modelinfo["general.architecture"] == "gpt-4o"
    assert show.modelinfo["gpt-4o.context_length"] == 128000
    assert show.details is not None and show.details.family == "gpt-4o"
    assert show.modified_at is not None
    assert show.template and show.modelfile and show.parameters


def test_show_embedding_and_thinking_models(proxy: ProxyThread) -> None:
    client = ollama.Client(host=proxy.url)
    assert client.show("nomic-embed-text").capabilities == ["embedding"]
    assert "thinking" in (client.show("o4-mini").capabilities or [])


def test_show_unknown_model_is_ollamas_404(proxy: ProxyThread) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=proxy.url).show("llama9")
    assert info.value.status_code == 404
    assert info.value.error == "model 'llama9:latest' not found"


def test_hidden_upstream_model_is_not_found(proxy: ProxyThread) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=proxy.url).show("whisper-1")
    assert info.value.status_code == 404


def test_show_accepts_legacy_name_field(proxy: ProxyThread) -> None:
    resp = httpx.post(proxy.url + "/api/show", json={"name": "gpt-4o"})
    assert resp.status_code == 200
    assert "model_info" in resp.json()


def test_copilot_user_agent_gets_its_name_back(proxy: ProxyThread) -> None:
    resp = httpx.post(
        proxy.url + "/api/show",
        json={"model": "llama3.2"},
        headers={"User-Agent": "GitHubCopilotChat/0.30.0"},
    )
    assert resp.json()["model_info"]["general.basename"] == "llama3.2"


def test_ps_is_empty_before_any_use(proxy: ProxyThread) -> None:
    assert ollama.Client(host=proxy.url).ps().models == []
    assert httpx.get(proxy.url + "/api/ps").json() == {"models": []}


async def test_async_sdk_discovery(proxy: ProxyThread) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    listed, show, ps, version = await asyncio.gather(
        client.list(), client.show("gpt-4o-mini"), client.ps(), client._request_raw("GET", "/api/version")
    )
    assert any(m.model == "gpt-4o-mini:latest" for m in listed.models)
    assert show.capabilities == ["completion", "tools", "vision"]
    assert ps.models == []
    assert version.json()["version"]


def test_model_list_is_single_flight_under_concurrency(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    fake.config.ttfb_ms = 300.0  # a slow /models answer: every request arrives while the refresh runs
    proxy = start_proxy(fake)

    async def hammer() -> list[int]:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
            responses = await asyncio.gather(*(client.get("/api/tags") for _ in range(100)))
        return [r.status_code for r in responses]

    statuses = asyncio.run(hammer())
    assert statuses == [200] * 100
    assert model_requests(fake) == 1


def test_model_list_is_cached(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    for _ in range(5):
        assert httpx.get(proxy.url + "/api/tags").status_code == 200
        assert httpx.post(proxy.url + "/api/show", json={"model": "gpt-4o"}).status_code == 200
    assert model_requests(fake) == 1


def test_new_upstream_model_is_found_without_waiting_for_the_ttl(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    fake.config.models = [*fake.config.models, "gpt-9-preview"]
    show = httpx.post(proxy.url + "/api/show", json={"model": "gpt-9-preview"})
    assert show.status_code == 200


def test_unlisted_names_pass_when_allowed(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, allow_unlisted_models=True)
    show = httpx.post(proxy.url + "/api/show", json={"model": "some-local-model:latest"})
    assert show.status_code == 200
    assert show.json()["model_info"]["general.basename"] == "some-local-model"
