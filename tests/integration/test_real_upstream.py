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


@pytest.fixture
def sdk(start_proxy: Callable[..., ProxyThread]) -> ollama.Client:
    proxy = start_proxy(cast(FakeUpstreamThread, RealUpstream(BASE_URL)))
    return ollama.Client(host=proxy.url, timeout=60)


def test_served_context_reaches_show_and_tags(sdk: ollama.Client) -> None:
    """The server runs with n_ctx 2,048 and publishes it only in its refusal of an over-long prompt: one such
    refusal, and /api/show and /api/tags report 2,048 with no catalog entry for the model."""
    with pytest.raises(ollama.ResponseError) as caught:
        sdk.chat(model="tiny-llama", messages=[{"role": "user", "content": "hello " * 2100}])
    assert caught.value.status_code == 400
    assert sdk.show("tiny-llama").modelinfo["tiny.context_length"] == 2048  # type: ignore[index]
    tags = sdk._client.get("/api/tags").json()
    contexts = {m["name"]: m["details"]["context_length"] for m in tags["models"]}
    assert contexts["tiny-llama:latest"] == 2048
