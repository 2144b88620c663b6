"""``falcon-ollama check`` reports a working and a broken configuration correctly (exit 0 / 1)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from fake_openai import FakeConfig, FakeUpstreamThread, Fault
from tests.servers import REPO, RedisServer, free_port

BASE = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_")) and "PROXY" not in k.upper()
}
BASE["FALCON_OLLAMA_ENV_FILE"] = os.devnull


def check(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcon_ollama", "check", *extra],
        cwd=REPO,
        env={**BASE, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_working_configuration_lists_models_with_aliases(fake: FakeUpstreamThread) -> None:
    env = {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-x",
        "FALCON_OLLAMA_CATALOG": "conf/models.toml",
    }
    result = check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "llama3.2:latest" in result.stdout and "-> gpt-4o-mini" in result.stdout
    assert "whisper" not in result.stdout
    data = orjson.loads(check(env, "--json").stdout)
    assert data["ok"] is True
    alias = next(m for m in data["models"] if m["name"] == "nomic-embed-text:latest")
    sources = alias.pop("sources")
    assert alias == {"name": "nomic-embed-text:latest", "upstream": "text-embedding-3-small", "alias": True,
                     "backend": "default", "capabilities": ["embedding"], "context_length": 8191}  # fmt: skip
    assert sources["context_length"] == sources["capabilities"] == "builtin"


def test_bad_key_is_named() -> None:
    with FakeUpstreamThread(FakeConfig(api_key="sk-right")) as fake:
        result = check({"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-wrong-123"})
    assert result.returncode == 1
    assert "rejected the API key" in result.stdout and "OPENAI_API_KEY" in result.stdout
    assert "sk-wrong-123" not in result.stdout + result.stderr


def test_unreachable_upstream_is_named() -> None:
    result = check({"OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "OPENAI_API_KEY": "sk-x"})
    assert result.returncode == 1
    assert "unreachable" in result.stdout and "OPENAI_BASE_URL" in result.stdout


def test_empty_catalog_is_named(fake: FakeUpstreamThread, tmp_path: object) -> None:
    catalog = REPO / "tests" / "fixtures" / "empty_listing.toml"
    env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-x", "FALCON_OLLAMA_CATALOG": str(catalog)}
    result = check(env)
    assert result.returncode == 1
    assert "lists no model" in result.stdout


def test_bad_setting_is_named() -> None:
    result = check({"FALCON_OLLAMA_CONNECT_TIMEOUT": "soon"})
    assert result.returncode == 1
    assert "FALCON_OLLAMA_CONNECT_TIMEOUT" in result.stdout


def test_offline_is_explained() -> None:
    result = check({})
    assert result.returncode == 0
    assert "bundled fake upstream" in result.stdout


def test_base_url_without_v1_is_named(fake: FakeUpstreamThread) -> None:
    root = fake.base_url.removesuffix("/v1")
    result = check({"OPENAI_BASE_URL": root, "OPENAI_API_KEY": "sk-x"})
    assert result.returncode == 1
    assert "has no /models endpoint" in result.stdout


def test_redis_is_pinged_and_shown_without_its_password(
    fake: FakeUpstreamThread, redis_server: RedisServer
) -> None:
    env = {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-x",
        "FALCON_OLLAMA_REDIS_URL": redis_server.url,
    }
    result = check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Redis at redis://:[redacted]@127.0.0.1:{redis_server.port}/0 answers" in result.stdout
    redis_server.stop()
    down = check(env)
    assert down.returncode == 1 and "does not answer" in down.stdout
    assert "PROBLEM: Redis at redis://:[redacted]@" in down.stdout
    for output in (result, down):
        assert "redis-test-password" not in output.stdout + output.stderr


def test_context_named_by_the_probe_and_its_source() -> None:
    """A llama-cpp-python-shaped upstream (the fake in that mode, n_ctx 4096): check sends the context probe
    as a worker would and shows the context it named, source "upstream error"; with the probe off, the
    default."""
    llama = FakeConfig(
        models=["tiny-llama"], models_have_created_owned_by=False, answer_any_model=True, context_window=4096
    )
    with FakeUpstreamThread(llama) as fake:
        env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-x", "FALCON_OLLAMA_CATALOG": "none"}
        data = orjson.loads(check(env, "--json").stdout)
        (model,) = data["models"]
        assert (model["context_length"], model["sources"]["context_length"]) == (4096, "upstream error")
        probes = [r for r in fake.requests if r.path == "/v1/completions"]
        assert len(probes) == 1 and len(orjson.loads(probes[0].body)["prompt"].split()) == 262144
        data = orjson.loads(check({**env, "FALCON_OLLAMA_CONTEXT_PROBE_TOKENS": "0"}, "--json").stdout)
        assert [(m["context_length"], m["sources"]["context_length"]) for m in data["models"]] == [
            (8192, "default")
        ]
        assert len([r for r in fake.requests if r.path == "/v1/completions"]) == 1


def test_check_waits_for_a_slow_probe_and_leaves_nothing_running() -> None:
    """A probe answered after the first list's 2 s wait: check still shows what it learnt, exits 0, and no
    task outlives the closed sessions (no traceback on stderr)."""
    llama = FakeConfig(
        models=["tiny-llama"], models_have_created_owned_by=False, answer_any_model=True, context_window=4096
    )
    with FakeUpstreamThread(llama) as fake:
        fake.script(Fault(kind="stall", seconds=2.5, path="/v1/completions"))
        env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-x", "FALCON_OLLAMA_CATALOG": "none"}
        result = check(env, "--json")
    assert result.returncode == 0, result.stderr
    (model,) = orjson.loads(result.stdout)["models"]
    assert model["context_length"] == 4096
    assert "Traceback" not in result.stderr and "crashed" not in result.stderr
