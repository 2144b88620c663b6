"""Against a real llama.cpp server (llama-cpp-python, ``../shared/real-upstream/start.sh``), when running.

Skipped otherwise (building it takes minutes; CI does not). Point ``FALCON_OLLAMA_REAL_UPSTREAM`` at its
``/v1`` base URL (default ``http://127.0.0.1:18080/v1``). The recorded fixtures (tests/fixtures/real/llamacpp)
cover the same ground offline; this checks they still tell the truth.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import ollama
import pytest

from fake_openai import FakeUpstreamThread
from tests.servers import ProxyThread

BASE_URL = os.environ.get("FALCON_OLLAMA_REAL_UPSTREAM", "http://127.0.0.1:18080/v1").rstrip("/")


def _listed() -> list[str]:
    try:
        with urllib.request.urlopen(f"{BASE_URL}/models", timeout=2) as answer:
            body: Any = json.loads(answer.read())
    except (OSError, ValueError):
        return []
    return [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]


pytestmark = pytest.mark.skipif(
    "tiny-llama" not in _listed(), reason=f"no real-upstream llama.cpp server at {BASE_URL}"
)


@dataclass
class RealUpstream:
    base_url: str


def _proxy(start_proxy: Callable[..., ProxyThread], **settings: object) -> ollama.Client:
    proxy = start_proxy(cast(FakeUpstreamThread, RealUpstream(BASE_URL)), **settings)
    return ollama.Client(host=proxy.url, timeout=60)


def _contexts(sdk: ollama.Client) -> dict[str, int]:
    tags = sdk._client.get("/api/tags").json()  # raw: the SDK's ModelDetails drops context_length
    return {m["name"]: m["details"]["context_length"] for m in tags["models"]}


def test_served_context_reaches_show_and_tags(start_proxy: Callable[..., ProxyThread]) -> None:
    """The server runs with n_ctx 2,048 and says so only when it refuses a prompt that long: the context
    probe (on by default) asks each model once, so the first /api/tags and /api/show already report 2,048,
    with no catalog entry and no request of ours refused."""
    sdk = _proxy(start_proxy)
    assert _contexts(sdk) == {"tiny-llama:latest": 2048, "tiny-embed:latest": 2048}
    assert sdk.show("tiny-llama").modelinfo["tiny.context_length"] == 2048  # type: ignore[index]
    assert sdk.chat(
        model="tiny-llama", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 2}
    ).done


def test_served_context_learnt_from_a_refusal_without_the_probe(
    start_proxy: Callable[..., ProxyThread],
) -> None:
    """With the probe off, the first refusal of an over-long prompt teaches the same figure."""
    sdk = _proxy(start_proxy, context_probe_tokens=0)
    assert _contexts(sdk)["tiny-llama:latest"] == 8192
    with pytest.raises(ollama.ResponseError) as caught:
        sdk.chat(model="tiny-llama", messages=[{"role": "user", "content": "hello " * 2100}])
    assert caught.value.status_code == 400
    assert sdk.show("tiny-llama").modelinfo["tiny.context_length"] == 2048  # type: ignore[index]
    assert _contexts(sdk)["tiny-llama:latest"] == 2048
