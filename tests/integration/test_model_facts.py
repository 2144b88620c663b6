"""Model facts from the upstream's own model list, /api/tags as Ollama >= 0.30 shows it, digests that follow
the facts, and tagged names (issue 12, items 4-7).

Real servers on loopback: our app under uvicorn, ``tests/hostile_upstream.py`` answering ``/models`` with
the entries vLLM, llama.cpp's server, OpenRouter and LM Studio send (shapes from their documentation and
source), the bundled fake upstream for the tagged names; the ollama SDK where a client reads the field.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import orjson
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread
from falcon_ollama.catalog_config import load_catalog_file, parse_catalog
from falcon_ollama.settings import Settings
from tests.hostile_upstream import HostileUpstream, Reply, chat_answer
from tests.servers import REPO, ProxyThread

# vLLM's /v1/models (vllm/entrypoints/openai/protocol.py ModelCard): max_model_len is the served context.
VLLM = {
    "id": "Qwen/Qwen2.5-7B-Instruct",
    "object": "model",
    "created": 1733000000,
    "owned_by": "vllm",
    "root": "Qwen/Qwen2.5-7B-Instruct",
    "parent": None,
    "max_model_len": 32768,
    "permission": [{"id": "modelperm-1", "object": "model_permission", "allow_sampling": True}],
}
# llama.cpp's llama-server /v1/models: "meta" with the GGUF's training context and sizes.
LLAMA_SERVER = {
    "id": "qwen2.5-0.5b-instruct-q8_0.gguf",
    "object": "model",
    "created": 1733000100,
    "owned_by": "llamacpp",
    "meta": {
        "vocab_type": 2,
        "n_vocab": 151936,
        "n_ctx_train": 32768,
        "n_embd": 896,
        "n_params": 494032768,
        "size": 531066880,
    },
}
# OpenRouter's /api/v1/models: context_length, architecture.input_modalities, supported_parameters.
OPENROUTER_R1 = {
    "id": "deepseek/deepseek-r1",
    "name": "DeepSeek: R1",
    "created": 1737381095,
    "context_length": 163840,
    "architecture": {"modality": "text->text", "input_modalities": ["text"], "output_modalities": ["text"]},
    "top_provider": {"context_length": 163840, "max_completion_tokens": None, "is_moderated": False},
    "supported_parameters": ["max_tokens", "temperature", "reasoning", "include_reasoning", "tools"],
}
OPENROUTER_GPT5_CHAT = {  # a built-in family (gpt-5*-chat*: tools) that OpenRouter serves without tools
    "id": "openai/gpt-5-chat",
    "name": "OpenAI: GPT-5 Chat",
    "created": 1754587837,
    "context_length": 128000,
    "architecture": {"input_modalities": ["file", "image", "text"], "output_modalities": ["text"]},
    "supported_parameters": ["max_tokens", "response_format", "seed", "structured_outputs"],
}
# LM Studio's REST API (/api/v0/models): type llm/vlm/embeddings and max_context_length.
LMSTUDIO_VLM = {
    "id": "qwen2-vl-7b-instruct",
    "object": "model",
    "type": "vlm",
    "publisher": "mlx-community",
    "arch": "qwen2_vl",
    "compatibility_type": "mlx",
    "quantization": "4bit",
    "state": "not-loaded",
    "max_context_length": 32768,
}
LMSTUDIO_EMBED = {
    "id": "text-embedding-nomic-embed-text-v1.5",
    "object": "model",
    "type": "embeddings",
    "publisher": "nomic-ai",
    "arch": "nomic-bert",
    "compatibility_type": "gguf",
    "quantization": "Q4_K_M",
    "state": "not-loaded",
    "max_context_length": 2048,
}
NO_CATALOG = parse_catalog({})


def models_body(*entries: dict[str, object]) -> bytes:
    return orjson.dumps({"object": "list", "data": list(entries)})


@pytest.fixture
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        server.script("/v1/chat/completions", Reply(body=chat_answer("ok")))
        yield server


@pytest.fixture
def start() -> Iterator[Callable[..., ProxyThread]]:
    started: list[ProxyThread] = []

    def _start(base_url: str, **overrides: object) -> ProxyThread:
        values: dict[str, object] = {"openai_api_key": "sk-test", "catalog": NO_CATALOG, **overrides}
        settings = Settings(openai_base_url=base_url, openai_base_url_set=True, **values)  # type: ignore[arg-type]
        proxy = ProxyThread(settings).__enter__()
        started.append(proxy)
        return proxy

    yield _start
    for proxy in reversed(started):
        proxy.__exit__()


def show(proxy: ProxyThread, name: str) -> ollama.ShowResponse:
    return ollama.Client(host=proxy.url).show(name)


def tags(proxy: ProxyThread) -> list[dict[str, object]]:
    models: list[dict[str, object]] = httpx.get(proxy.url + "/api/tags").json()["models"]
    return models


def context_of(response: ollama.ShowResponse) -> int:
    info = response.modelinfo or {}
    value = info[f"{info['general.architecture']}.context_length"]
    assert isinstance(value, int)
    return value


# --- 4. facts from the upstream's own model list -----------------------------------------------------------


def test_vllm_and_llama_server_contexts_reach_show_and_tags(
    upstream: HostileUpstream, start: Callable[..., ProxyThread]
) -> None:
    upstream.script("/v1/models", Reply(body=models_body(VLLM, LLAMA_SERVER)))
    proxy = start(upstream.base_url)
    vllm = show(proxy, "Qwen/Qwen2.5-7B-Instruct")
    assert context_of(vllm) == 32768  # not the 8,192 default
    assert vllm.capabilities == ["completion", "tools"]  # capabilities: nothing said, the default
    llama = show(proxy, "qwen2.5-0.5b-instruct-q8_0.gguf")
    assert context_of(llama) == 32768
    assert (llama.modelinfo or {})["qwen.embedding_length"] == 896
    assert llama.details is not None and llama.details.parameter_size == "494.03M"
    details = {m["name"]: m["details"] for m in tags(proxy)}
    assert details["Qwen/Qwen2.5-7B-Instruct:latest"]["context_length"] == 32768  # type: ignore[index]
    assert details["qwen2.5-0.5b-instruct-q8_0.gguf:latest"]["embedding_length"] == 896  # type: ignore[index]


def test_llama_server_props_give_the_context_it_serves(
    upstream: HostileUpstream, start: Callable[..., ProxyThread]
) -> None:
    """llama-server's /props (at the server root, beside /v1): n_ctx is what a request can use."""
    props = {"default_generation_settings": {"n_ctx": 4096, "params": {}}, "total_slots": 1}
    upstream.script("/props", Reply(body=orjson.dumps(props)))
    upstream.script("/v1/models", Reply(body=models_body(LLAMA_SERVER)))
    proxy = start(upstream.base_url)
    assert context_of(show(proxy, "qwen2.5-0.5b-instruct-q8_0.gguf")) == 4096  # not n_ctx_train's 32768
    assert len(upstream.requests_to("/props")) == 1
    upstream.script("/props", Reply(status=404, body=b'{"error":"Not Found"}'))
    other = start(upstream.base_url)
    assert context_of(show(other, "qwen2.5-0.5b-instruct-q8_0.gguf")) == 32768  # no /props: the list's


def test_openrouter_capabilities_decide_thinking_tools_and_vision(
    upstream: HostileUpstream, start: Callable[..., ProxyThread]
) -> None:
    upstream.script("/v1/models", Reply(body=models_body(OPENROUTER_R1, OPENROUTER_GPT5_CHAT, VLLM)))
    proxy = start(upstream.base_url)
    r1 = show(proxy, "deepseek/deepseek-r1")
    assert context_of(r1) == 163840
    assert r1.capabilities == ["completion", "tools", "thinking"]
    gpt5 = show(proxy, "openai/gpt-5-chat")
    assert gpt5.capabilities == ["completion", "vision"]  # OpenRouter's word over the built-in family's
    client = ollama.Client(host=proxy.url)
    user = [{"role": "user", "content": "hi"}]
    assert client.chat("deepseek/deepseek-r1", messages=user, think=True).message.content == "ok"
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat("openai/gpt-5-chat", messages=user, think=True)
    assert refused.value.status_code == 400 and "does not support thinking" in refused.value.error
    # vLLM says nothing about thinking: the request is passed on, not refused.
    assert client.chat("Qwen/Qwen2.5-7B-Instruct", messages=user, think=True).message.content == "ok"


def test_lm_studio_rest_api_fields(upstream: HostileUpstream, start: Callable[..., ProxyThread]) -> None:
    upstream.script("/api/v0/models", Reply(body=models_body(LMSTUDIO_VLM, LMSTUDIO_EMBED)))
    proxy = start(upstream.base_url.replace("/v1", "/api/v0"))
    vlm = show(proxy, "qwen2-vl-7b-instruct")
    assert context_of(vlm) == 32768
    assert vlm.capabilities == ["completion", "tools", "vision"]
    embed = show(proxy, "text-embedding-nomic-embed-text-v1.5")
    assert embed.capabilities == ["embedding"]
    assert context_of(embed) == 2048  # LM Studio's number over the built-in *embed* family's 8,192


def test_catalog_beats_upstream_beats_builtin_per_fact(
    upstream: HostileUpstream, start: Callable[..., ProxyThread]
) -> None:
    upstream.script("/v1/models", Reply(body=models_body(OPENROUTER_GPT5_CHAT, VLLM)))
    catalog = parse_catalog({"models": {"Qwen/*": {"context_length": 16384}}})
    proxy = start(upstream.base_url, catalog=catalog)
    assert context_of(show(proxy, "Qwen/Qwen2.5-7B-Instruct")) == 16384  # the catalog's, not vLLM's 32768
    assert context_of(show(proxy, "openai/gpt-5-chat")) == 128000


def test_check_shows_where_each_fact_came_from(upstream: HostileUpstream, tmp_path: Path) -> None:
    upstream.script("/v1/models", Reply(body=models_body(OPENROUTER_GPT5_CHAT, VLLM, {"id": "gpt-4o"})))
    catalog = tmp_path / "models.toml"
    catalog.write_text('[models."Qwen/*"]\ncontext_length = 16384\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_"))}
    env |= {
        "FALCON_OLLAMA_ENV_FILE": os.devnull,
        "OPENAI_BASE_URL": upstream.base_url,
        "OPENAI_API_KEY": "sk-x",
        "FALCON_OLLAMA_CATALOG": str(catalog),
    }
    run = subprocess.run(
        [sys.executable, "-m", "falcon_ollama", "check", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {m["name"]: m for m in orjson.loads(run.stdout)["models"]}
    qwen = rows["Qwen/Qwen2.5-7B-Instruct:latest"]["sources"]
    assert (qwen["context_length"], qwen["capabilities"], qwen["thinking"]) == (
        "catalog",
        "default",
        "default",
    )
    gpt5 = rows["openai/gpt-5-chat:latest"]["sources"]
    assert (gpt5["context_length"], gpt5["capabilities"], gpt5["family"]) == (
        "upstream",
        "upstream",
        "builtin",
    )
    assert rows["gpt-4o:latest"]["sources"]["context_length"] == "builtin"
    text = subprocess.run(
        [sys.executable, "-m", "falcon_ollama", "check"], cwd=REPO, env=env, capture_output=True, text=True
    ).stdout
    assert "(upstream)" in text and "(catalog )" in text and "(builtin )" in text


def test_hostile_metadata_is_ignored(upstream: HostileUpstream, start: Callable[..., ProxyThread]) -> None:
    odd = [
        {"id": "a", "max_model_len": "32768"},
        {"id": "b", "max_model_len": -1, "meta": {"n_ctx_train": 1 << 40}},
        {"id": "c", "context_length": True, "supported_parameters": "tools", "meta": []},
        {"id": "d", "type": ["vlm"], "architecture": "x", "meta": {"n_params": "7B"}},
    ]
    upstream.script("/v1/models", Reply(body=models_body(*odd)))
    proxy = start(upstream.base_url)
    for name in "abcd":
        response = show(proxy, name)
        assert context_of(response) == 8192 and response.capabilities == ["completion", "tools"]


# --- 5. /api/tags as Ollama >= 0.30 ------------------------------------------------------------------------


def test_tags_are_newest_first_with_lengths(
    upstream: HostileUpstream, start: Callable[..., ProxyThread]
) -> None:
    entries = [
        {"id": "old-model", "created": 1600000000},
        {"id": "text-embedding-3-small", "created": 1700000000},
        {"id": "b-model", "created": 1750000000},
        {"id": "a-model", "created": 1750000000},
    ]
    upstream.script("/v1/models", Reply(body=models_body(*entries)))
    proxy = start(upstream.base_url)
    listed = tags(proxy)
    assert [m["name"] for m in listed] == [
        "a-model:latest",  # same second as b-model: name order, as Ollama's stable sort leaves them
        "b-model:latest",
        "text-embedding-3-small:latest",
        "old-model:latest",
    ]
    embed = listed[2]["details"]
    assert embed == {**embed, "context_length": 8191, "embedding_length": 1536}  # type: ignore[dict-item]
    assert "embedding_length" not in listed[0]["details"]  # type: ignore[operator]
    assert next(m.model for m in ollama.Client(host=proxy.url).list().models) == "a-model:latest"


# --- 6. the digest follows the facts -----------------------------------------------------------------------


def test_digest_changes_when_a_fact_changes(
    upstream: HostileUpstream, start: Callable[..., ProxyThread]
) -> None:
    upstream.script("/v1/models", Reply(body=models_body(VLLM)))
    first = start(upstream.base_url)
    again = start(upstream.base_url)

    def digest(proxy: ProxyThread) -> str:
        return next(m.digest for m in ollama.Client(host=proxy.url).list().models if m.digest)

    assert digest(first) == digest(again)  # same facts: the same digest in every worker
    upstream.script("/v1/models", Reply(body=models_body({**VLLM, "max_model_len": 65536})))
    longer = start(upstream.base_url)
    assert digest(longer) != digest(first)
    edited = start(
        upstream.base_url, catalog=parse_catalog({"models": {"Qwen/*": {"capabilities": ["completion"]}}})
    )
    assert digest(edited) not in (digest(first), digest(longer))


# --- 7. tagged names ---------------------------------------------------------------------------------------


@pytest.fixture
def shipped(start: Callable[..., ProxyThread]) -> Iterator[ProxyThread]:
    with FakeUpstreamThread() as fake:
        yield start(fake.base_url, catalog=Settings().catalog)  # the shipped catalog


@pytest.mark.parametrize(("name", "target"), [("llama3.2:3b", "gpt-4o-mini"), ("qwen3:8b", "o4-mini")])
def test_an_untagged_alias_answers_every_tag(shipped: ProxyThread, name: str, target: str) -> None:
    client = ollama.Client(host=shipped.url)
    shown = client.show(name)
    assert f"# FROM {name}\n" in (shown.modelfile or "")
    assert f"\nFROM {target}\n" in (shown.modelfile or "")
    reply = client.chat(name, messages=[{"role": "user", "content": "hi"}])
    assert reply.model == name  # the reply echoes the name the client asked for
    assert [m.model for m in client.ps().models] == [name]


def test_tagged_embedding_name_and_a_tagged_alias_that_says_otherwise(shipped: ProxyThread) -> None:
    client = ollama.Client(host=shipped.url)
    embedded = client.embed("nomic-embed-text:v1.5", input="hello")
    assert embedded.model == "nomic-embed-text:v1.5" and len(embedded.embeddings) == 1
    assert client.show("llama3.3:70b").capabilities == ["completion", "tools", "vision"]
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("llama3.3:8b")  # only the tagged alias llama3.3:70b exists: other tags are not it
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError):
        client.show("gpt-4o:mini")  # upstream ids are not aliases: their tags are theirs


def test_the_shipped_catalogs_defaults_never_refuse_thinking(start: Callable[..., ProxyThread]) -> None:
    """conf/models.toml has a [defaults] table: its guessed capabilities made every undescribed model
    "known" and refused ``think`` wherever that file was served (run_local.sh, the image)."""
    with FakeUpstreamThread(FakeConfig(models=["gpt-4o", "deepseek-r1-distill-qwen-7b"])) as fake:
        proxy = start(fake.base_url, catalog=load_catalog_file(REPO / "conf" / "models.toml"))
        reply = ollama.Client(host=proxy.url).chat(
            "deepseek-r1-distill-qwen-7b", messages=[{"role": "user", "content": "hi"}], think=True
        )
        assert reply.message.thinking and reply.message.content


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("library/llama3.2", "gpt-4o-mini"),
        ("registry.ollama.ai/library/llama3.2:latest", "gpt-4o-mini"),
        ("Registry.Ollama.AI/library/qwen3:8b", "o4-mini"),
        ("library/gpt-4o-mini", "gpt-4o-mini"),
    ],
)
def test_a_name_spelt_out_in_full_is_the_short_name(shipped: ProxyThread, name: str, target: str) -> None:
    """Ollama's ParseName fills in the default host and namespace, so these are the same model there."""
    client = ollama.Client(host=shipped.url)
    assert f"\nFROM {target}\n" in (client.show(name).modelfile or "")
    reply = client.chat(name, messages=[{"role": "user", "content": "hi"}])
    assert reply.model == name and reply.message.content


@pytest.mark.parametrize("name", ["library/nope", "someone/llama3.2", "registry.ollama.ai/someone/llama3.2"])
def test_another_namespace_is_not_the_short_name(shipped: ProxyThread, name: str) -> None:
    resp = httpx.post(shipped.url + "/api/show", json={"model": name})
    assert (resp.status_code, resp.json()) == (404, {"error": f"model '{name}:latest' not found"})
