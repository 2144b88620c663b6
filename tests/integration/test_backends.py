"""Several backends behind one endpoint (issue 14): three fake upstreams at once, our app in front.

``openai`` (Bearer key, unprefixed), ``local`` (no key, prefix ``local/``, offers only qwen*/llama*) and
``azure`` (``auth = "api-key"``, unprefixed). Requests go through the ollama and openai SDKs and raw HTTP.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, Fault
from falcon_ollama.catalog_config import load_catalog_file
from tests.servers import ProxyThread

OPENAI_KEY = "sk-openai-backend-key-000000000001"
AZURE_KEY = "azure-backend-key-0000000000000002"
CATALOG = """
[backends.openai]
base_url = "{openai}"
api_key_env = "TEST_OPENAI_KEY"

[backends.local]
base_url = "{local}"
models = ["qwen*", "llama*"]
prefix = "local/"
auth = "none"

[backends.azure]
base_url = "{azure}"
api_key_file = "azure.key"
auth = "api-key"
headers = {{ "x-ms-region" = "westeurope" }}

[aliases]
"llama3.2" = "openai/gpt-4o-mini"
"qwen3" = ["local/qwen3-8b", "openai/o4-mini"]
"""


@dataclass
class Three:
    openai: FakeUpstreamThread
    local: FakeUpstreamThread
    azure: FakeUpstreamThread
    proxy: ProxyThread

    def chats(self, fake: FakeUpstreamThread) -> list[str]:
        """The models of the chat requests a fake received."""
        return [r.json["model"] for r in fake.requests if r.path.endswith("/chat/completions")]


@pytest.fixture
def three(tmp_path: Path, start_proxy: Callable[..., ProxyThread]) -> Iterator[Three]:
    with (
        FakeUpstreamThread(FakeConfig(models=["gpt-4o", "gpt-4o-mini", "o4-mini"], api_key=OPENAI_KEY)) as a,
        FakeUpstreamThread(FakeConfig(models=["qwen3-8b", "llama3-8b", "mistral-7b"])) as b,
        FakeUpstreamThread(FakeConfig(models=["gpt-4.1", "gpt-4o"])) as c,
    ):
        (tmp_path / "azure.key").write_text(AZURE_KEY + "\n")
        path = tmp_path / "models.toml"
        path.write_text(CATALOG.format(openai=a.base_url, local=b.base_url, azure=c.base_url))
        catalog = load_catalog_file(path, {"TEST_OPENAI_KEY": OPENAI_KEY})
        proxy = start_proxy(
            a,
            catalog=catalog,
            catalog_path=str(path),
            openai_api_key=None,
            breaker_failures=2,
            breaker_cooldown=1.0,
        )
        yield Three(a, b, c, proxy)


def _names(proxy: ProxyThread) -> set[str]:
    return {m["name"] for m in httpx.get(f"{proxy.url}/api/tags").json()["models"]}


def test_listing_merges_every_backend_with_prefixes_and_reports_a_shared_id(
    three: Three, caplog: pytest.LogCaptureFixture
) -> None:
    names = _names(three.proxy)
    assert {"gpt-4o:latest", "gpt-4o-mini:latest", "o4-mini:latest"} <= names  # openai
    assert {"local/qwen3-8b:latest", "local/llama3-8b:latest"} <= names  # local, its patterns only
    assert "local/mistral-7b:latest" not in names and "qwen3-8b:latest" not in names
    assert "gpt-4.1:latest" in names  # azure
    assert {"llama3.2:latest", "qwen3:latest"} <= names
    v1 = {m["id"] for m in httpx.get(f"{three.proxy.url}/v1/models").json()["data"]}
    assert {"gpt-4.1:latest", "local/qwen3-8b:latest", "gpt-4o:latest"} <= v1
    # gpt-4o is listed by openai and azure, both unprefixed: an error naming both; the first serves it.
    assert three.proxy.app.services.catalog.conflicts == [
        "model 'gpt-4o' is listed by backends openai and azure without a prefix; openai serves it "
        "(give one of them a prefix)"
    ]
    logged = caplog.get_records("setup") + caplog.get_records("call")  # the list loads at start-up
    assert any(r.levelno == logging.ERROR and "openai and azure" in r.getMessage() for r in logged)
    shown = httpx.post(f"{three.proxy.url}/api/show", json={"model": "local/qwen3-8b"})
    assert shown.status_code == 200


def test_each_model_goes_to_its_backend_with_only_its_own_key(three: Three) -> None:
    client = ollama.Client(host=three.proxy.url)
    client.chat(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    client.chat(model="local/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    oa = openai.OpenAI(base_url=f"{three.proxy.url}/v1", api_key="unused")
    oa.chat.completions.create(model="local/llama3-8b", messages=[{"role": "user", "content": "hi"}])
    assert three.chats(three.azure) == ["gpt-4.1"]
    assert three.chats(three.local) == ["qwen3-8b", "llama3-8b"]  # the upstream gets its own id
    assert three.chats(three.openai) == ["gpt-4o-mini"]
    for request in three.azure.requests:  # api-key auth, and only its own key
        assert request.headers.get("api-key") == AZURE_KEY
        assert "authorization" not in request.headers
        assert request.headers.get("x-ms-region") == "westeurope"
    for request in three.openai.requests:
        assert request.headers.get("authorization") == f"Bearer {OPENAI_KEY}"
        assert "api-key" not in request.headers
    for request in three.local.requests:
        assert "authorization" not in request.headers and "api-key" not in request.headers
    for fake in (three.openai, three.local, three.azure):
        for request in fake.requests:
            sent = repr(request.headers).encode() + request.body
            assert (OPENAI_KEY.encode() in sent) == (fake is three.openai)
            assert (AZURE_KEY.encode() in sent) == (fake is three.azure)


def test_a_chain_falls_back_on_429_and_on_connect_refusal(three: Three) -> None:
    client = ollama.Client(host=three.proxy.url)
    _names(three.proxy)  # the lists are loaded
    three.local.script(
        Fault("status", path="/v1/chat/completions", status=429, headers={"retry-after": "30"})
    )
    answer = client.chat(model="qwen3", messages=[{"role": "user", "content": "hi"}])
    assert answer.message.content
    assert three.chats(three.local) == ["qwen3-8b"] and three.chats(three.openai) == ["o4-mini"]
    metrics = httpx.get(f"{three.proxy.url}/metrics").text
    assert 'falcon_ollama_backend_fallbacks_total{backend="local",to="openai"} 1.0' in metrics

    three.local.stop()  # connection refused from now on; the stale list keeps the chain
    parts = list(client.chat(model="qwen3", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(p.message.content or "" for p in parts) and parts[-1].done
    assert three.chats(three.openai) == ["o4-mini", "o4-mini"]


def test_a_short_retry_after_is_waited_on_the_same_backend(three: Three) -> None:
    _names(three.proxy)
    three.local.script(
        Fault("status", path="/v1/chat/completions", status=429, headers={"retry-after": "0.2"})
    )
    answer = ollama.Client(host=three.proxy.url).chat(
        model="qwen3", messages=[{"role": "user", "content": "x"}]
    )
    assert answer.message.content
    assert three.chats(three.local) == ["qwen3-8b", "qwen3-8b"] and three.chats(three.openai) == []


def test_no_fallback_after_the_first_byte(three: Three) -> None:
    _names(three.proxy)
    three.local.script(Fault("cut", path="/v1/chat/completions", after_events=2))
    with httpx.stream(
        "POST",
        f"{three.proxy.url}/api/chat",
        json={"model": "qwen3", "messages": [{"role": "user", "content": "hi"}]},
    ) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    assert '"error"' in lines[-1]  # the stream ends with Ollama's error line, as a single upstream's would
    assert three.chats(three.openai) == []


def test_breaker_skips_a_failing_backend_for_its_cooldown_then_probes_it_back(three: Three) -> None:
    client = ollama.Client(host=three.proxy.url)
    _names(three.proxy)
    three.local.script(Fault("status", path="/v1/chat/completions", status=500, times=0))
    for _ in range(2):  # two failures open the breaker (breaker_failures=2)
        client.chat(model="qwen3", messages=[{"role": "user", "content": "hi"}])
    assert len(three.chats(three.local)) == 2
    client.chat(model="qwen3", messages=[{"role": "user", "content": "hi"}])
    assert len(three.chats(three.local)) == 2  # skipped while open
    assert three.chats(three.openai) == ["o4-mini"] * 3
    ready = httpx.get(f"{three.proxy.url}/ready").json()
    assert {b["name"]: b["breaker"] for b in ready["backends"]}["local"] == "open"
    three.local.reset()  # the outage is over (its faults and its record emptied)
    time.sleep(1.1)  # the cooldown (breaker_cooldown=1.0)
    client.chat(model="qwen3", messages=[{"role": "user", "content": "hi"}])
    assert three.chats(three.local) == ["qwen3-8b"]  # probed, answered: closed again
    assert three.chats(three.openai) == ["o4-mini"] * 3
    ready = httpx.get(f"{three.proxy.url}/ready").json()
    assert {b["name"]: b["breaker"] for b in ready["backends"]}["local"] == "closed"


def test_errors_never_name_a_backend_url_or_key(three: Three) -> None:
    _names(three.proxy)
    three.azure.stop()
    answer = httpx.post(
        f"{three.proxy.url}/api/chat",
        json={"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}], "stream": False},
    )
    assert answer.status_code == 502
    text = answer.text
    assert text.startswith('{"error":"could not connect to the upstream')
    assert "127.0.0.1" not in text and str(three.azure.port) not in text
    assert AZURE_KEY not in text and OPENAI_KEY not in text


def test_check_names_every_backend_and_where_each_model_comes_from(three: Three, tmp_path: Path) -> None:
    from falcon_ollama import check

    env = tmp_path / "env"
    env.write_text(
        f"FALCON_OLLAMA_CATALOG={tmp_path / 'models.toml'}\nTEST_OPENAI_KEY={OPENAI_KEY}\n"
        "OPENAI_API_KEY=\nOPENAI_BASE_URL=\n"
    )
    out = io.StringIO()
    code = check.run_check(str(env), out=out)
    text = out.getvalue()
    assert f"backend:  local {three.local.base_url} (chat, shown as local/<id>)" in text
    assert "qwen3:latest" in text and "-> qwen3-8b [local]" in text
    assert code == check.EXIT_PROBLEM and "listed by backends openai and azure" in text  # the shared gpt-4o
    assert OPENAI_KEY not in text and AZURE_KEY not in text
    three.local.stop()
    out = io.StringIO()
    assert check.run_check(str(env), out=out) == check.EXIT_PROBLEM
    assert "backend local: the upstream at" in out.getvalue()


def test_a_backend_whose_list_fails_keeps_its_last_list(three: Three) -> None:
    assert "local/qwen3-8b:latest" in _names(three.proxy)
    three.local.stop()
    # A name nothing lists makes every backend's list be fetched again (local's fails: connection refused).
    assert httpx.post(f"{three.proxy.url}/api/show", json={"model": "nothing-lists-this"}).status_code == 404
    assert "local/qwen3-8b:latest" in _names(three.proxy)
    local = next(b for b in httpx.get(f"{three.proxy.url}/ready").json()["backends"] if b["name"] == "local")
    assert local["ready"] is True and local["models"] == 2
    assert local["last_error"].startswith("could not connect to the upstream")
    assert "127.0.0.1" not in local["last_error"] and str(three.local.port) not in local["last_error"]
