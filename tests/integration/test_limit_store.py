"""The limit stores against a real redis-server and the embedded SQLite file: one limit, outages, back-off."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from falcon_ollama.limit_store import EmbeddedStore, Limiter, RedisStore, StoreUnavailable
from falcon_ollama.metrics import Metrics
from falcon_ollama.secret_urls import redacted_url
from tests.servers import RedisServer


def sample(metrics: Metrics, name: str) -> float:
    text = metrics.render().decode()
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


async def attempts(
    store: RedisStore | EmbeddedStore, tenant: str, limit: int, count: int
) -> list[float | None]:
    return [await store.acquire(tenant, limit) for _ in range(count)]


def test_redis_holds_the_limit_per_tenant(redis_server: RedisServer) -> None:
    async def run() -> None:
        stores = [RedisStore(redis_server.url, timeout=0.5, max_backoff=5) for _ in range(3)]
        results = await asyncio.gather(*(attempts(s, "team", 20, 10) for s in stores))
        accepted = sum(r is None for batch in results for r in batch)
        assert accepted == 20  # 30 attempts from three clients, one limit of 20
        waits = [r for batch in results for r in batch if r is not None]
        assert all(0 < w <= 60 for w in waits)
        assert await stores[0].acquire("other", 20) is None  # tenants are counted apart
        for store in stores:
            await store.close()

    asyncio.run(run())


def test_redis_outage_fails_open_loudly_then_counts_again(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="falcon_ollama.limits")
    metrics = Metrics()

    async def run() -> None:
        store = RedisStore(redis_server.url, timeout=0.25, max_backoff=0.5)
        limiter = Limiter(store, metrics=metrics)
        assert await limiter.acquire("t", 2) is None
        redis_server.stop()
        # Down: accepted uncounted, the gauge at 0, one loud line however many requests.
        assert [await limiter.acquire("t", 2) for _ in range(5)] == [None] * 5
        assert sample(metrics, "falcon_ollama_limit_store_up") == 0.0
        assert sample(metrics, "falcon_ollama_limit_store_errors_total") == 5.0
        assert len([r for r in caplog.records if "LIMIT STORE DOWN" in r.message]) == 1
        redis_server.start()  # empty again: --save ''
        for _ in range(100):  # the back-off (0.5 s here) ends, then the next check reconnects
            if await limiter.acquire("t", 2) is None and sample(metrics, "falcon_ollama_limit_store_up") == 1:
                break
            await asyncio.sleep(0.05)
        assert sample(metrics, "falcon_ollama_limit_store_up") == 1.0
        assert await limiter.acquire("t", 2) is None
        assert await limiter.acquire("t", 2) is not None  # counting resumed: the limit of 2 holds
        assert any("is back" in r.message for r in caplog.records)
        await store.close()

    asyncio.run(run())
    assert "redis-test-password" not in caplog.text
    assert "[redacted]" in caplog.text  # the URL is named, its password is not


def test_redis_outage_fails_closed_at_once(redis_server: RedisServer) -> None:
    async def run() -> None:
        store = RedisStore(redis_server.url, timeout=0.25, max_backoff=30)
        limiter = Limiter(store, fail_closed=True)
        assert await limiter.acquire("t", 5) is None
        redis_server.stop()
        with pytest.raises(StoreUnavailable) as first:
            await limiter.acquire("t", 5)
        # In the back-off the store is not asked: the refusal does not wait for a timeout.
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StoreUnavailable):
            await limiter.acquire("t", 5)
        assert loop.time() - started < 0.2
        assert "redis-test-password" not in str(first.value)
        await store.close()

    asyncio.run(run())


def test_redacted_url_hides_the_password(redis_server: RedisServer) -> None:
    assert redacted_url(redis_server.url) == f"redis://:[redacted]@127.0.0.1:{redis_server.port}/0"
    assert redacted_url("redis://user:p%40ss@h:1/2") == "redis://user:[redacted]@h:1/2"
    assert redacted_url("redis://h:6379") == "redis://h:6379"


def test_embedded_store_runs_off_the_loop_and_fails_by_policy(tmp_path: Path) -> None:
    async def run() -> None:
        store = EmbeddedStore(tmp_path / "w.sqlite", timeout=1.0)
        assert await attempts(store, "t", 2, 3) == [None, None, pytest.approx(60, abs=1)]
        await store.close()
        broken = EmbeddedStore(tmp_path / "missing-dir" / "w.sqlite", timeout=1.0)
        with pytest.raises(StoreUnavailable):
            await broken.acquire("t", 1)
        assert await Limiter(broken).acquire("t", 1) is None  # open: through, uncounted
        with pytest.raises(StoreUnavailable):
            await Limiter(broken, fail_closed=True).acquire("t", 1)

    asyncio.run(run())
