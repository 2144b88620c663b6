"""Error shapes everywhere, upstream failure mapping through real servers, and model-management routes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import ollama
import orjson
import pytest

from fake_openai import FakeUpstreamThread, Fault
from tests.servers import ProxyThread, free_port


def assert_ollama_error(resp: httpx.Response, status: int, message: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]
    if message is not None:
        assert body["error"] == message
    return str(body["error"])


def test_unknown_route_is_404_json(proxy: ProxyThread) -> None:
    assert_ollama_error(httpx.get(proxy.url + "/api/nothing"), 404, "404 page not found")
    assert_ollama_error(httpx.post(proxy.url + "/v2/whatever", json={}), 404, "404 page not found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/tags"),
        ("GET", "/api/show"),
        ("DELETE", "/api/version"),
        ("GET", "/api/pull"),
        ("POST", "/api/ps"),
        ("GET", "/api/delete"),
        ("PUT", "/"),
    ],
)
def test_wrong_method_is_405_json(proxy: ProxyThread, method: str, path: str) -> None:
    resp = httpx.request(method, proxy.url + path)
    assert_ollama_error(resp, 405, "405 method not allowed")
    assert "allow" in resp.headers


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        (b"", "missing request body"),
        (b"   ", "missing request body"),
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"gpt-4o"', "must be a JSON object"),
        (b'{"model": 5}', "'model'"),
        (b'{"model": ["gpt-4o"]}', "'model'"),
        (b"\xff\xfe\x00", "invalid JSON"),
    ],
)
def test_bad_bodies_are_400(proxy: ProxyThread, body: bytes, message_part: str) -> None:
    for path in ("/api/show", "/api/pull"):
        message = assert_ollama_error(httpx.post(proxy.url + path, content=body), 400)
        assert message_part in message


def test_show_requires_a_model(proxy: ProxyThread) -> None:
    assert_ollama_error(httpx.post(proxy.url + "/api/show", json={}), 400, "model is required")


def test_body_over_the_limit_is_413(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, max_body_bytes=1000)
    big = orjson.dumps({"model": "gpt-4o", "pad": "x" * 5000})
    assert_ollama_error(httpx.post(proxy.url + "/api/show", content=big), 413)
    assert httpx.post(proxy.url + "/api/show", json={"model": "gpt-4o"}).status_code == 200


@pytest.mark.parametrize(
    ("fault", "status", "fragment"),
    [
        (Fault(kind="status", status=500, times=10), 502, "upstream error (HTTP 500)"),
        (Fault(kind="status", status=503, times=10), 502, "upstream error (HTTP 503)"),
        (Fault(kind="status", status=401), 502, "rejected the API key"),
        (Fault(kind="status", status=403), 502, "rejected the API key"),
        (Fault(kind="html", status=502, times=10), 502, "502 Bad Gateway"),
        (Fault(kind="text", status=500, body=b"upstream exploded", times=10), 502, "upstream exploded"),
        (Fault(kind="close", times=10), 502, "upstream"),
    ],
)
def test_upstream_failures_map_to_ollama_errors(
    fake: FakeUpstreamThread,
    start_proxy: Callable[..., ProxyThread],
    fault: Fault,
    status: int,
    fragment: str,
) -> None:
    fake.script(fault)
    proxy = start_proxy(fake, retry_base_delay=0.01)
    message = assert_ollama_error(httpx.get(proxy.url + "/api/tags"), status)
    assert fragment in message
    assert "sk-" not in message


def test_rate_limit_keeps_status_and_retry_after(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    # A Retry-After beyond the longest wait we accept ends the retries at once: the client decides.
    fake.script(Fault(kind="status", status=429, headers={"Retry-After": "30"}, times=10))
    proxy = start_proxy(fake, max_retry_wait=5.0)
    resp = httpx.get(proxy.url + "/api/tags")
    assert_ollama_error(resp, 429)
    assert resp.headers["retry-after"] == "30"
    assert sum(1 for r in fake.requests if r.path.endswith("/models")) == 1


def test_rate_limit_with_short_retry_after_is_retried(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    fake.script(Fault(kind="status", status=429, headers={"Retry-After": "0.2"}, times=1))
    proxy = start_proxy(fake)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    assert sum(1 for r in fake.requests if r.path.endswith("/models")) == 2


def test_server_errors_recover_after_retries(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    fake.script(Fault(kind="status", status=503, times=2))
    proxy = start_proxy(fake, retry_base_delay=0.01, max_retries=2)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    assert sum(1 for r in fake.requests if r.path.endswith("/models")) == 3
    assert proxy.app.services.upstream.retries == 2


def test_retries_are_bounded(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> None:
    fake.script(Fault(kind="status", status=500, times=100))
    proxy = start_proxy(fake, retry_base_delay=0.01, max_retries=3)
    assert httpx.get(proxy.url + "/api/tags").status_code == 502
    assert sum(1 for r in fake.requests if r.path.endswith("/models")) == 4


def test_rejected_key_is_not_echoed(start_proxy: Callable[..., ProxyThread]) -> None:
    from fake_openai import FakeConfig

    with FakeUpstreamThread(FakeConfig(api_key="sk-the-right-key")) as fake:
        proxy = start_proxy(fake, openai_api_key="sk-wrong-key-abcdef")
        with pytest.raises(ollama.ResponseError) as info:
            ollama.Client(host=proxy.url).list()
        assert info.value.status_code == 502
        assert "rejected the API key" in info.value.error
        assert "sk-" not in info.value.error and "abcdef" not in info.value.error


def test_key_is_sent_as_bearer(fake: FakeUpstreamThread, proxy: ProxyThread) -> None:
    httpx.get(proxy.url + "/api/tags")
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test-proxy-key-1234567890"


def test_connection_refused_is_502(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> None:
    proxy = start_proxy(fake, openai_base_url=f"http://127.0.0.1:{free_port()}/v1", retry_base_delay=0.01)
    message = assert_ollama_error(httpx.get(proxy.url + "/api/tags"), 502)
    assert "could not connect" in message


def test_dns_failure_is_502(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> None:
    proxy = start_proxy(fake, openai_base_url="http://no-such-host.invalid/v1", max_retries=0)
    assert_ollama_error(httpx.get(proxy.url + "/api/tags"), 502)


def test_upstream_timeout_is_504(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> None:
    fake.script(Fault(kind="stall", seconds=3.0))
    proxy = start_proxy(fake, first_byte_timeout=0.5)
    message = assert_ollama_error(httpx.get(proxy.url + "/api/tags", timeout=10), 504)
    assert "did not answer within 0.5 s" in message


def test_stale_model_list_survives_an_upstream_outage(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, models_ttl=0.0)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    fake.script(Fault(kind="status", status=500, times=50))
    for _ in range(3):
        resp = httpx.get(proxy.url + "/api/tags")
        assert resp.status_code == 200
        assert resp.json()["models"]


# --- model management ----------------------------------------------------------------------------------


def test_pull_of_a_served_model_succeeds(proxy: ProxyThread) -> None:
    client = ollama.Client(host=proxy.url)
    assert client.pull("llama3.2").status == "success"
    progress = list(client.pull("gpt-4o", stream=True))
    assert progress[0].status == "pulling manifest"
    assert progress[-1].status == "success"
    raw = httpx.post(proxy.url + "/api/pull", json={"model": "gpt-4o"})
    assert raw.headers["content-type"] == "application/x-ndjson"
    lines = raw.content.split(b"\n")
    assert lines[-1] == b""
    assert all(orjson.loads(line) for line in lines[:-1])


def test_pull_of_an_unknown_model_is_404(proxy: ProxyThread) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=proxy.url).pull("llama9")
    assert info.value.status_code == 404
    assert_ollama_error(httpx.post(proxy.url + "/api/pull", json={}), 400, "model is required")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/push", {"model": "gpt-4o"}),
        ("POST", "/api/create", {"model": "mine", "from": "gpt-4o"}),
        ("POST", "/api/copy", {"source": "gpt-4o", "destination": "x"}),
        ("DELETE", "/api/delete", {"model": "gpt-4o"}),
        ("POST", "/api/blobs/sha256:" + "a" * 64, None),
    ],
)
def test_model_file_routes_explain_they_are_not_supported(
    proxy: ProxyThread, method: str, path: str, body: dict[str, str] | None
) -> None:
    resp = httpx.request(method, proxy.url + path, content=orjson.dumps(body) if body else b"")
    message = assert_ollama_error(resp, 501)
    assert "does not manage model files" in message


def test_blob_head_is_501_without_body(proxy: ProxyThread) -> None:
    resp = httpx.head(proxy.url + "/api/blobs/sha256:" + "a" * 64)
    assert resp.status_code == 501


def test_sdk_sees_management_errors(proxy: ProxyThread) -> None:
    client = ollama.Client(host=proxy.url)
    for call in (
        lambda: client.delete("gpt-4o"),
        lambda: client.copy("gpt-4o", "x"),
        lambda: client.push("x"),
    ):
        with pytest.raises(ollama.ResponseError) as info:
            call()
        assert info.value.status_code == 501
        assert "does not manage model files" in info.value.error
