"""Tenants through the real server: named keys from a TOML file, each seeing and reaching only its models.

Raw httpx shows each route's 404 dialect; the openai and anthropic SDKs show a real client's view.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from fake_openai import FakeUpstreamThread
from falcon_ollama.access import ApiKeys
from falcon_ollama.ratelimit import default_store_path
from falcon_ollama.tenants import read_tenants_file
from tests.integration.test_gunicorn_lifecycle import gunicorn_env
from tests.servers import GunicornProcess, ProxyThread

MINI_KEY = "tenant-mini-key-AAAAAAAAAAAAAAAA"
ALL_KEY = "tenant-all-key-BBBBBBBBBBBBBBBBBB"
LEGACY_KEY = "legacy-unnamed-key-CCCCCCCCCCCCCC"
USER = [{"role": "user", "content": "Hello there"}]
StartProxy = Callable[..., ProxyThread]


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def tenanted(fake: FakeUpstreamThread, start_proxy: StartProxy, tmp_path: Path) -> ProxyThread:
    path = tmp_path / "tenants.toml"
    path.write_text(
        f"""
[tenants.minis]
key_sha256 = ["{sha(MINI_KEY)}"]
models = ["gpt-4o-mini*", "GPT-4.1-MINI"]

[tenants.everyone]
key_sha256 = ["sha256:{sha(ALL_KEY)}"]
"""
    )
    return start_proxy(fake, tenants=read_tenants_file(str(path)), api_keys=ApiKeys([LEGACY_KEY]))


def get(proxy: ProxyThread | GunicornProcess, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{proxy.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def post(proxy: ProxyThread | GunicornProcess, path: str, key: str, body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{proxy.url}{path}", headers=headers, json=body, timeout=30)


def test_listings_show_only_the_tenants_models(tenanted: ProxyThread) -> None:
    tags = get(tenanted, "/api/tags", MINI_KEY)
    assert tags.status_code == 200
    assert sorted(m["name"] for m in tags.json()["models"]) == ["gpt-4.1-mini:latest", "gpt-4o-mini:latest"]
    sdk = openai.OpenAI(base_url=f"{tenanted.url}/v1", api_key=MINI_KEY, max_retries=0)
    assert sorted(m.id.removesuffix(":latest") for m in sdk.models.list()) == ["gpt-4.1-mini", "gpt-4o-mini"]
    # The unpatterned tenant and the FALCON_OLLAMA_API_KEYS key see everything.
    for key in (ALL_KEY, LEGACY_KEY):
        names = {m["name"] for m in get(tenanted, "/api/tags", key).json()["models"]}
        assert {"gpt-4o:latest", "gpt-5:latest", "gpt-4o-mini:latest"} <= names


def test_a_hidden_model_is_404_in_each_dialect(tenanted: ProxyThread, fake: FakeUpstreamThread) -> None:
    chat = post(tenanted, "/api/chat", MINI_KEY, {"model": "gpt-4o", "messages": USER, "stream": False})
    assert chat.status_code == 404 and chat.json() == {"error": "model 'gpt-4o' not found"}
    show = post(tenanted, "/api/show", MINI_KEY, {"model": "gpt-5"})
    assert show.status_code == 404 and list(show.json()) == ["error"]
    sdk = openai.OpenAI(base_url=f"{tenanted.url}/v1", api_key=MINI_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as v1:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert v1.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-5")
    claude = anthropic.Anthropic(base_url=tenanted.url, api_key=MINI_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as msg:
        claude.messages.create(model="gpt-4o", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert msg.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model 'gpt-4o' not found"},
    }
    assert [r for r in fake.requests if r.path.endswith("/chat/completions")] == []  # never reached upstream


def test_allowed_models_work_and_other_tenants_reach_the_rest(tenanted: ProxyThread) -> None:
    chat = {"model": "GPT-4o-mini:latest", "messages": USER, "stream": False}
    assert post(tenanted, "/api/chat", MINI_KEY, chat).status_code == 200
    assert post(tenanted, "/api/chat", ALL_KEY, {**chat, "model": "gpt-5"}).status_code == 200
    # /api/ps shows a tenant only the running models it may use, not what another tenant ran.
    assert [m["name"] for m in get(tenanted, "/api/ps", MINI_KEY).json()["models"]] == ["gpt-4o-mini:latest"]
    assert {m["name"] for m in get(tenanted, "/api/ps", ALL_KEY).json()["models"]} == {
        "gpt-4o-mini:latest",
        "gpt-5:latest",
    }
    # x-api-key (Anthropic's clients) resolves the same tenant.
    claude = anthropic.Anthropic(base_url=tenanted.url, api_key=MINI_KEY, max_retries=0)
    assert claude.messages.create(model="gpt-4o-mini", max_tokens=10, messages=USER).content  # type: ignore[arg-type]
    for key in (ALL_KEY, LEGACY_KEY):
        assert post(tenanted, "/api/chat", key, {**chat, "model": "gpt-4o"}).status_code == 200


def test_unknown_keys_are_refused(tenanted: ProxyThread) -> None:
    resp = get(tenanted, "/api/tags", "not-a-tenant-key-DDDDDDDDDDDDDDDD")
    assert resp.status_code == 401 and "invalid" in resp.json()["error"]
    assert httpx.get(f"{tenanted.url}/api/tags", timeout=30).status_code == 401


@pytest.fixture
def limited(fake: FakeUpstreamThread, start_proxy: StartProxy, tmp_path: Path) -> Iterator[ProxyThread]:
    path = tmp_path / "tenants.toml"
    path.write_text(
        f'[tenants.three]\nkey_sha256 = ["{sha(MINI_KEY)}"]\nrequests_per_minute = 3\n'
        f'[tenants.free]\nkey_sha256 = ["{sha(ALL_KEY)}"]\n'
    )
    tenants = read_tenants_file(str(path))
    yield start_proxy(fake, tenants=tenants)
    store = default_store_path(tenants.source)
    for suffix in ("", "-wal", "-shm"):
        store.with_name(store.name + suffix).unlink(missing_ok=True)


def sdks_are_rate_limited(url: str, key: str) -> None:
    """The openai and anthropic SDKs see their own RateLimitError from the proxy's 429."""
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as v1:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert v1.value.code == "rate_limit_exceeded"
    claude = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as msg:
        claude.messages.create(model="gpt-4o-mini", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert msg.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_requests_per_minute_answer_429_in_each_dialect(limited: ProxyThread) -> None:
    chat = {"model": "gpt-4o-mini", "messages": USER, "stream": False}
    for _ in range(3):
        assert post(limited, "/api/chat", MINI_KEY, chat).status_code == 200
    assert get(limited, "/api/tags", MINI_KEY).status_code == 200  # listing is not counted
    over = post(limited, "/api/chat", MINI_KEY, chat)
    assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
    assert list(over.json()) == ["error"] and "3 requests per minute" in over.json()["error"]
    sdks_are_rate_limited(limited.url, MINI_KEY)
    # Another tenant is not limited by this one's use.
    assert post(limited, "/api/chat", ALL_KEY, chat).status_code == 200


def test_two_gunicorn_masters_on_one_machine_hold_one_limit(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    """Two masters x 2 workers reading one tenants file: 30 requests over fresh connections, 20 accepted."""
    path = tmp_path / "tenants.toml"
    path.write_text(f'[tenants.twenty]\nkey_sha256 = ["{sha(MINI_KEY)}"]\nrequests_per_minute = 20\n')
    env = {
        **gunicorn_env(fake, workers=2),
        "FALCON_OLLAMA_TENANTS_FILE": str(path),
        "FALCON_OLLAMA_LEDGER_PATH": str(tmp_path / "ledger.sqlite"),
    }
    chat = {"model": "gpt-4o-mini", "messages": USER, "stream": False}
    try:
        with GunicornProcess(env) as one, GunicornProcess(env) as two:
            codes = [post((one, two)[n % 2], "/api/chat", MINI_KEY, chat).status_code for n in range(30)]
    finally:
        store = default_store_path(str(path.resolve()))
        for suffix in ("", "-wal", "-shm"):
            store.with_name(store.name + suffix).unlink(missing_ok=True)
    assert codes.count(200) == 20 and codes.count(429) == 10, codes


def test_the_access_log_names_the_tenant_and_its_tokens(
    tenanted: ProxyThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="falcon_ollama.request")
    chat = {"model": "gpt-4o-mini", "messages": USER, "stream": True}
    assert post(tenanted, "/api/chat", MINI_KEY, chat).status_code == 200
    assert post(tenanted, "/api/chat", LEGACY_KEY, chat).status_code == 200
    lines = [r.fields for r in caplog.records if r.name == "falcon_ollama.request"]  # type: ignore[attr-defined]
    named, unnamed = lines[-2], lines[-1]
    assert named["tenant"] == "minis" and named["completion_tokens"] and named["prompt_tokens"]
    assert "tenant" not in unnamed  # FALCON_OLLAMA_API_KEYS: the unnamed tenant
    assert MINI_KEY not in caplog.text and sha(MINI_KEY) not in caplog.text
    metrics = get(tenanted, "/metrics", ALL_KEY).text
    prompt, completion = named["prompt_tokens"], named["completion_tokens"]
    labels = 'model="gpt-4o-mini:latest",tenant="minis"'
    assert f'falcon_ollama_tenant_tokens_total{{kind="prompt",{labels}}} {float(prompt)}' in metrics
    assert f'falcon_ollama_tenant_tokens_total{{kind="completion",{labels}}} {float(completion)}' in metrics
    assert (
        'falcon_ollama_tenant_requests_total{model="gpt-4o-mini:latest",status="200",tenant="minis"} 1.0'
        in metrics
    )
    assert 'tenant=""' not in metrics  # the unnamed tenant is not a label value
