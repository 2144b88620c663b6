"""Tokens per minute and concurrent streams, with the embedded store and with a real Redis.

Tokens are charged once an answer's usage is known; the next request is then refused while the tenant is
over. A stream holds a slot from before it opens upstream to its end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread
from falcon_ollama.ratelimit import default_store_path
from falcon_ollama.tenants import read_tenants_file
from tests.conftest import proxy_settings
from tests.integration.test_tenants import ALL_KEY, MINI_KEY, USER, get, post, sdks_are_rate_limited, sha
from tests.servers import ProxyThread

CHAT = {"model": "gpt-4o-mini", "messages": USER, "stream": False}


@pytest.fixture(params=["embedded", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, object]:
    """Settings overrides selecting the limit store."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_server").url}
    return {}


def start(
    fake: FakeUpstreamThread, tmp_path: Path, table: str, store: dict[str, object]
) -> Iterator[ProxyThread]:
    path = tmp_path / "tenants.toml"
    limited = f'[tenants.limited]\nkey_sha256 = ["{sha(MINI_KEY)}"]\n{table}\n'
    path.write_text(limited + f'[tenants.free]\nkey_sha256 = ["{sha(ALL_KEY)}"]\n')
    tenants = read_tenants_file(str(path))
    settings = proxy_settings(fake, tenants=tenants, **store)
    try:
        with ProxyThread(settings) as proxy:
            yield proxy
    finally:
        db = default_store_path(tenants.source)
        for suffix in ("", "-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)


def limited_count(proxy: ProxyThread, limit: str) -> float:
    wanted = f'falcon_ollama_tenant_limited_total{{limit="{limit}",tenant="limited"}} '
    line = next(
        (ln for ln in get(proxy, "/metrics", ALL_KEY).text.splitlines() if ln.startswith(wanted)), None
    )
    return float(line.split()[1]) if line else 0.0


@pytest.fixture
def tpm(fake: FakeUpstreamThread, tmp_path: Path, store: dict[str, object]) -> Iterator[ProxyThread]:
    yield from start(fake, tmp_path, "tokens_per_minute = 30", store)


def test_tokens_per_minute_refuse_once_the_charged_usage_passes_the_limit(tpm: ProxyThread) -> None:
    first = post(tpm, "/api/chat", MINI_KEY, CHAT)
    assert first.status_code == 200
    used = first.json()["prompt_eval_count"] + first.json()["eval_count"]
    assert 0 < used < 30
    codes = [first.status_code]
    for _ in range(40):  # each answer is charged as it is sent; the one after the limit is passed is 429
        resp = post(tpm, "/api/chat", MINI_KEY, CHAT)
        codes.append(resp.status_code)
        if resp.status_code == 429:
            break
        time.sleep(0.02)  # the charge is written in the background, just after the answer
    accepted = codes.count(200)
    assert codes[-1] == 429 and accepted * used >= 30 and (accepted - 1) * used < 30 + used, codes
    assert 1 <= int(resp.headers["retry-after"]) <= 60
    assert "30 tokens per minute" in resp.json()["error"]
    sdks_are_rate_limited(tpm.url, MINI_KEY)
    assert post(tpm, "/api/chat", ALL_KEY, CHAT).status_code == 200  # another tenant is not limited
    assert limited_count(tpm, "tokens_per_minute") == 3.0


def test_a_streamed_answer_is_charged_at_its_end(tpm: ProxyThread) -> None:
    codes = []
    for _ in range(40):
        resp = post(tpm, "/api/chat", MINI_KEY, {**CHAT, "stream": True})
        codes.append(resp.status_code)
        if resp.status_code == 429:
            break
        assert resp.text.strip().splitlines()[-1].find('"eval_count"') > 0
        time.sleep(0.02)
    assert codes[-1] == 429 and codes.count(200) >= 2, codes


@pytest.fixture
def slow() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig(token_delay_ms=100, tokens=30)) as upstream:
        yield upstream


@pytest.fixture
def two_streams(slow: FakeUpstreamThread, tmp_path: Path, store: dict[str, object]) -> Iterator[ProxyThread]:
    yield from start(slow, tmp_path, "concurrent_streams = 2", store)


HELD: list[object] = []  # open streams' line iterators: a dropped one would be closed when collected


async def first_line(client: httpx.AsyncClient, url: str, body: object, key: str) -> tuple[int, str]:
    """Open a stream and read its first line; it stays open until its client closes."""
    request = client.build_request("POST", url, json=body, headers={"Authorization": f"Bearer {key}"})
    resp = await client.send(request, stream=True)
    lines = resp.aiter_lines()
    HELD.append(lines)
    return resp.status_code, await anext(lines, "")


def test_concurrent_streams_are_capped_and_freed(two_streams: ProxyThread) -> None:
    stream = {**CHAT, "stream": True}

    async def run() -> None:
        async with httpx.AsyncClient(timeout=30) as a, httpx.AsyncClient(timeout=30) as b:
            assert (await first_line(a, f"{two_streams.url}/api/chat", stream, MINI_KEY))[0] == 200
            assert (await first_line(b, f"{two_streams.url}/api/chat", stream, MINI_KEY))[0] == 200
            async with httpx.AsyncClient(timeout=30) as c:
                third = await c.post(
                    f"{two_streams.url}/api/chat",
                    json=stream,
                    headers={"Authorization": f"Bearer {MINI_KEY}"},
                )
                assert third.status_code == 429 and third.headers["retry-after"] == "1"
                assert "2 concurrent streams" in third.json()["error"]
                v1 = await c.post(
                    f"{two_streams.url}/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": USER, "stream": True},
                    headers={"Authorization": f"Bearer {MINI_KEY}"},
                )
                assert v1.status_code == 429 and v1.json()["error"]["message"].startswith(
                    "rate limit exceeded"
                )
                msg = await c.post(
                    f"{two_streams.url}/v1/messages",
                    json={"model": "gpt-4o-mini", "max_tokens": 10, "messages": USER, "stream": True},
                    headers={"x-api-key": MINI_KEY, "anthropic-version": "2023-06-01"},
                )
                assert msg.status_code == 429 and msg.json()["error"]["type"] == "rate_limit_error"
                # A plain answer needs no stream slot; another tenant has its own.
                plain = await c.post(
                    f"{two_streams.url}/api/chat", json=CHAT, headers={"Authorization": f"Bearer {MINI_KEY}"}
                )
                assert plain.status_code == 200
                other = await first_line(c, f"{two_streams.url}/api/chat", stream, ALL_KEY)
                assert other[0] == 200
        HELD.clear()
        # Both clients gone: their streams ended and their slots are released.
        for _ in range(100):
            async with httpx.AsyncClient(timeout=30) as d:
                code, _ = await first_line(d, f"{two_streams.url}/api/chat", stream, MINI_KEY)
            if code == 200:
                break
            await asyncio.sleep(0.05)
        assert code == 200

    asyncio.run(run())
    assert limited_count(two_streams, "concurrent_streams") == 3.0


def test_a_lease_of_a_dead_worker_expires(tmp_path: Path) -> None:
    """A slot taken and never renewed or released (its worker was killed) frees itself after its lease."""
    from falcon_ollama.ratelimit import RequestWindow

    now = [1000.0]
    window = RequestWindow(tmp_path / "w.sqlite", clock=lambda: now[0])
    assert window.open_lease("t", 1, "dead-worker", 60)
    assert not window.open_lease("t", 1, "next", 60)
    now[0] += 30
    window.renew_lease("dead-worker", 60)  # renewed while streaming...
    now[0] += 45
    assert not window.open_lease("t", 1, "next", 60)
    now[0] += 16  # ...then no more renewals: expired 60 s after the last one
    assert window.open_lease("t", 1, "next", 60)
