"""Liveness and readiness probes."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from fake_openai import FakeUpstreamThread
from tests.servers import ProxyThread, free_port


def test_health_is_ok_without_calling_the_upstream(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    deadline = time.monotonic() + 10  # let the start-up model-list refresh land first
    while httpx.get(proxy.url + "/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    before = len(fake.requests)
    resp = httpx.get(proxy.url + "/health")
    assert (resp.status_code, resp.json()) == (200, {"status": "ok"})
    assert httpx.head(proxy.url + "/health").status_code == 200
    assert len(fake.requests) == before


def test_ready_once_the_model_list_is_loaded(proxy: ProxyThread) -> None:
    deadline = time.monotonic() + 10
    while (resp := httpx.get(proxy.url + "/ready")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resp.status_code == 200 and resp.json()["status"] == "ready"


def test_not_ready_when_the_upstream_is_unreachable(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, openai_base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    time.sleep(0.3)
    resp = httpx.get(proxy.url + "/ready")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unavailable" and "could not connect" in body["reason"]
    assert httpx.get(proxy.url + "/health").status_code == 200
