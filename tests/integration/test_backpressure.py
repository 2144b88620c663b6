"""Backpressure through real servers: bounded in-flight streams, a bounded queue, 503 beyond it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import orjson

from fake_openai import FakeConfig, FakeUpstreamThread, expected_text
from falcon_ollama.admission import BUSY_MESSAGE
from tests.servers import ProxyThread

USER = [{"role": "user", "content": "hi"}]


def test_busy_beyond_the_queue_and_queued_requests_complete(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(tokens=20, token_delay_ms=30)) as fake:
        proxy = start_proxy(fake, max_in_flight=2, max_queue=1)
        assert httpx.get(proxy.url + "/api/tags").status_code == 200

        async def chat(client: httpx.AsyncClient) -> httpx.Response:
            return await client.post("/api/chat", json={"model": "gpt-4o", "messages": USER})  # streamed

        async def run() -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
            async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
                admitted = [asyncio.create_task(chat(client)) for _ in range(3)]  # 2 in flight + 1 queued
                await asyncio.sleep(0.3)
                refused = await chat(client)
                health = await client.get("/health")  # nothing else degrades
                return list(await asyncio.gather(*admitted)), refused, health

        admitted, refused, health = asyncio.run(run())
        assert (refused.status_code, refused.json()) == (503, {"error": BUSY_MESSAGE})
        assert health.status_code == 200
        texts = [
            "".join(orjson.loads(line)["message"]["content"] for line in r.content.splitlines())
            for r in admitted
        ]
        assert texts == [expected_text(20)] * 3
        metrics = httpx.get(proxy.url + "/metrics").text
        assert 'falcon_ollama_rejected_requests_total{reason="busy"} 1.0' in metrics
