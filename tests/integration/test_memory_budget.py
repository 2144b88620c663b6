"""The worker's memory budget (FALCON_OLLAMA_WORKER_MEMORY_BUDGET) through real servers: large bodies and
answers beyond it are refused in each route's dialect with Retry-After, held bytes always return to 0, a
stream under way is never cut, and 0 turns it off."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import ollama
import orjson
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, expected_text
from falcon_ollama.memory_budget import BODY_WEIGHT, BUDGET_MESSAGE, MemoryBudget
from tests.servers import ProxyThread

BUDGET = BODY_WEIGHT * 1024 * 1024
BIG = 400 * 1024  # two bodies fit in the budget (each reserved at BODY_WEIGHT x its bytes), a third does not
SLOW_MS = 1500.0  # how long the upstream takes to answer the held requests


def chat_body(size: int, *, stream: bool = False) -> dict[str, Any]:
    return {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "x" * size}]}


def budget_of(proxy: ProxyThread) -> MemoryBudget:
    budget = proxy.app.memory_budget
    assert budget is not None
    return budget


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def metric(proxy: ProxyThread, name: str) -> float:
    text = httpx.get(proxy.url + "/metrics").text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


REFUSED = 'falcon_ollama_rejected_requests_total{reason="memory"}'


def test_bodies_beyond_the_budget_are_refused_in_each_dialect(
    start_proxy: Callable[..., ProxyThread],
) -> None:
    with FakeUpstreamThread(FakeConfig(ttfb_ms=SLOW_MS)) as fake:
        proxy = start_proxy(fake, worker_memory_budget=BUDGET)
        budget = budget_of(proxy)
        assert httpx.get(proxy.url + "/api/tags").status_code == 200

        async def run() -> tuple[list[httpx.Response], dict[str, httpx.Response], httpx.Response]:
            async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
                held = [asyncio.create_task(client.post("/api/chat", json=chat_body(BIG))) for _ in range(2)]
                # Both bodies read, both waiting for the slow upstream (polled from another thread).
                both = 2 * BIG * BODY_WEIGHT
                await asyncio.to_thread(wait_for, lambda: budget.held >= both, "the held bodies")
                big = chat_body(BIG)
                refused = {
                    "/api/chat": await client.post("/api/chat", json=big),
                    "/api/generate": await client.post(
                        "/api/generate", json={"model": "gpt-4o", "prompt": "x" * BIG, "stream": False}
                    ),
                    "/api/embed": await client.post(
                        "/api/embed", json={"model": "text-embedding-3-small", "input": ["x" * BIG]}
                    ),
                    "/v1/chat/completions": await client.post("/v1/chat/completions", json=big),
                    "/v1/responses": await client.post(
                        "/v1/responses", json={"model": "gpt-4o", "input": "x" * BIG}
                    ),
                    "/v1/messages": await client.post(
                        "/v1/messages", json={**big, "max_tokens": 16}, headers={"anthropic-version": "x"}
                    ),
                }
                small = await client.post("/api/chat", json=chat_body(10))  # fits beside the held two
                return list(await asyncio.gather(*held)), refused, small

        held, refused, small = asyncio.run(run())
        assert [r.status_code for r in held] == [200, 200]
        assert small.status_code == 200
        for path, response in refused.items():
            assert response.headers.get("retry-after") == "1", path
            body = response.json()
            if path.startswith("/api/"):
                assert (response.status_code, body) == (503, {"error": BUDGET_MESSAGE}), path
            elif path == "/v1/messages":  # Anthropic's dialect: its "overloaded" status for a busy 503
                assert response.status_code == 529
                assert body == {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": BUDGET_MESSAGE},
                }
            else:  # OpenAI's error object (the Responses API calls a 5xx a server_error)
                assert response.status_code == 503, path
                assert body["error"]["message"] == BUDGET_MESSAGE, path
                kind = "server_error" if path == "/v1/responses" else "api_error"
                assert body["error"]["type"] == kind, path
        wait_for(lambda: budget.held == 0, "the held bytes to return to 0")
        assert metric(proxy, REFUSED) == len(refused)
        assert metric(proxy, "falcon_ollama_memory_budget_held_bytes") == 0
        # Once the held requests are done, a large body passes again.
        again = httpx.post(proxy.url + "/api/chat", json=chat_body(BIG), timeout=30)
        assert again.status_code == 200
        assert budget.held == 0 and budget.peak >= 2 * BIG * BODY_WEIGHT


def test_sdk_clients_see_the_refusal(start_proxy: Callable[..., ProxyThread]) -> None:
    """The ollama and anthropic SDKs get the refusal as their own errors (no retries asked of them)."""
    with FakeUpstreamThread(FakeConfig()) as fake:
        proxy = start_proxy(fake, worker_memory_budget=BIG * BODY_WEIGHT)  # one BIG body fits, not more
        huge = "x" * (BIG + 1024)
        with pytest.raises(ollama.ResponseError) as refused:
            ollama.Client(host=proxy.url).chat(model="gpt-4o", messages=[{"role": "user", "content": huge}])
        assert (refused.value.status_code, refused.value.error) == (503, BUDGET_MESSAGE)
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0).messages.create(
                model="gpt-4o", max_tokens=16, messages=[{"role": "user", "content": huge}]
            )
        assert overloaded.value.status_code == 529
        assert overloaded.value.response.headers["retry-after"] == "1"
        assert budget_of(proxy).held == 0


def test_an_upstream_answer_beyond_the_budget_is_refused_but_a_stream_is_never_cut(
    start_proxy: Callable[..., ProxyThread],
) -> None:
    tokens = 20_000  # about 140 KB of answer text: beyond the 64 KiB budget
    with FakeUpstreamThread(FakeConfig(tokens=tokens)) as fake:
        proxy = start_proxy(fake, worker_memory_budget=64 * 1024)
        budget = budget_of(proxy)
        whole = httpx.post(proxy.url + "/api/chat", json=chat_body(10), timeout=30)
        assert (whole.status_code, whole.json()) == (503, {"error": BUDGET_MESSAGE})
        assert whole.headers["retry-after"] == "1"
        assert budget.held == 0

        tokens = 3_000  # 1 ms apart: the stream passes the budget within its first few hundred
        fake.config.tokens, fake.config.token_delay_ms = tokens, 1.0
        with (
            httpx.Client(base_url=proxy.url, timeout=60) as client,
            client.stream("POST", "/api/chat", json=chat_body(10, stream=True)) as streamed,
        ):
            lines = streamed.iter_lines()
            first = next(lines)
            assert streamed.status_code == 200 and orjson.loads(first)["done"] is False
            wait_for(lambda: budget.held > budget.limit, "the stream's charges to pass the budget")
            # Beyond the budget: the next request is refused, the stream goes on to its end.
            with httpx.Client(base_url=proxy.url, timeout=30) as other:
                assert other.post("/api/chat", json=chat_body(10)).status_code == 503
            rest = [orjson.loads(line) for line in lines if line]
        parts = [orjson.loads(first), *rest]
        assert parts[-1]["done"] is True and parts[-1]["done_reason"] == "stop"
        assert "".join(p["message"]["content"] for p in parts) == expected_text(tokens)
        wait_for(lambda: budget.held == 0, "the stream's charges to be released")


def test_held_bytes_return_to_zero_after_failures_and_disconnects(
    start_proxy: Callable[..., ProxyThread],
) -> None:
    with FakeUpstreamThread(FakeConfig(tokens=2_000, token_delay_ms=5.0)) as fake:
        proxy = start_proxy(fake, worker_memory_budget=BUDGET)
        budget = budget_of(proxy)
        # The upstream refuses a field it does not know: the request fails after its body was reserved.
        failed = httpx.post(
            proxy.url + "/v1/chat/completions", json={**chat_body(BIG), "unknown_field": 1}, timeout=30
        )
        assert failed.status_code == 400
        assert budget.held == 0 and budget.peak >= BIG * BODY_WEIGHT
        # A body growing past the body limit as it is read (no Content-Length): 413, nothing held after.
        limited = start_proxy(fake, worker_memory_budget=BUDGET, max_body_bytes=BIG)

        def chunked() -> Any:
            for _ in range(4):
                yield b"x" * (BIG // 2)

        too_large = httpx.post(limited.url + "/api/chat", content=chunked(), timeout=30)
        assert too_large.status_code == 413
        assert budget_of(limited).held == 0 and budget_of(limited).peak > 0  # reserved as it came

        # A client gone mid-stream: its body and the stream's charges are released.
        sock = socket.create_connection(("127.0.0.1", proxy.port))
        body = orjson.dumps(chat_body(BIG // 4, stream=True))
        head = "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        wait_for(lambda: budget.held > BIG // 4, "the stream to be charged")
        sock.close()
        wait_for(lambda: budget.held == 0, "the gone client's bytes to be released")


def test_zero_turns_the_budget_off(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(tokens=20_000)) as fake:
        proxy = start_proxy(fake, worker_memory_budget=0)
        assert proxy.app.memory_budget is None
        big = httpx.post(proxy.url + "/api/chat", json=chat_body(4 * 1024 * 1024), timeout=30)
        assert big.status_code == 200
        assert big.json()["message"]["content"] == expected_text(20_000)
        assert metric(proxy, REFUSED) == 0
