"""The fault suite's remaining faults (the others sit beside the feature they break: docs/reliability.md)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from fake_openai import FakeUpstreamThread, Fault
from tests.servers import ProxyThread, free_port

USER = [{"role": "user", "content": "hi"}]


def chat_requests(fake: FakeUpstreamThread) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server on loopback with a self-signed certificate nobody trusts."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    port = free_port()
    loop = asyncio.new_event_loop()

    async def serve() -> asyncio.AbstractServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        return await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)

    import threading

    server = loop.run_until_complete(serve())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def test_tls_failure_is_502(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], tls_server: int
) -> None:
    proxy = start_proxy(fake, openai_base_url=f"https://127.0.0.1:{tls_server}/v1", max_retries=0)
    resp = httpx.get(proxy.url + "/api/tags")
    assert resp.status_code == 502
    assert resp.json()["error"].startswith("TLS failure talking to the upstream")


def test_half_written_json_body_is_502(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    fake.script(Fault(kind="half_body", path="/v1/chat"))
    resp = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER, "stream": False})
    assert resp.status_code == 502
    assert resp.json() == {"error": "the upstream closed the connection before the answer was complete"}


def test_an_event_of_several_megabytes_is_relayed(fake: FakeUpstreamThread, proxy: ProxyThread) -> None:
    fake.script(Fault(kind="huge_event", size=3_000_000, path="/v1/chat"))
    resp = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}, timeout=30)
    chunks = [orjson.loads(line) for line in resp.content.splitlines()]
    assert chunks[-1]["done"] is True
    assert max(len(c["message"]["content"]) for c in chunks) > 2_000_000


def test_an_event_beyond_the_limit_ends_the_stream_with_an_error(
    fake: FakeUpstreamThread, proxy: ProxyThread
) -> None:
    fake.script(Fault(kind="huge_event", size=9_000_000, path="/v1/chat"))
    resp = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}, timeout=30)
    last = orjson.loads(resp.content.splitlines()[-1])
    assert last["error"].startswith("the upstream stream is invalid")
    assert httpx.get(proxy.url + "/health").status_code == 200


def test_disconnect_during_retries_stops_them(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, max_retries=5, max_retry_wait=5.0)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    fake.script(Fault(kind="status", status=503, headers={"Retry-After": "1"}, path="/v1/chat", times=0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}, timeout=0.5)
    time.sleep(2.5)  # long enough for two more retries, had the proxy not stopped
    assert chat_requests(fake) == 1
    fake.reset()


def test_rate_limit_storm_is_answered_fast_with_retry_after(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, max_retry_wait=2.0)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    fake.script(Fault(kind="status", status=429, headers={"Retry-After": "60"}, path="/v1/chat", times=0))

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
            body = {"model": "gpt-4o", "messages": USER}
            return list(await asyncio.gather(*(client.post("/api/chat", json=body) for _ in range(50))))

    started = time.monotonic()
    responses = asyncio.run(storm())
    assert time.monotonic() - started < 10
    assert {r.status_code for r in responses} == {429}
    assert {r.headers["retry-after"] for r in responses} == {"60"}
    assert chat_requests(fake) == 50  # no retries: the client was told to wait longer than we would
    metrics = httpx.get(proxy.url + "/metrics").text
    assert 'falcon_ollama_upstream_errors_total{backend="default",status="429"} 50.0' in metrics
    fake.reset()
