"""Access control through the real server: API keys, CORS as Ollama answers it, the Host allow-list, secrets.

Raw httpx shows the exact wire answers; the real ``ollama`` and ``openai`` SDKs show that an existing client
needs only a setting (a header, or ``OLLAMA_API_KEY`` for ollama-python) to use a key-protected proxy.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread
from falcon_ollama.access import ApiKeys
from falcon_ollama.settings import BindAddress, Settings
from tests.servers import ProxyThread

KEY = "inbound-key-AAAAAAAAAAAAAAAAAAAA"
OTHER_KEY = "inbound-key-BBBBBBBBBBBBBBBBBBBB"
WRONG_KEY = "inbound-key-WRONGWRONGWRONGWRONG"
MODEL = "gpt-4o-mini"
USER = [{"role": "user", "content": "Hello there"}]
CHAT = {"model": MODEL, "messages": USER, "stream": False}
V1_CHAT = {"model": MODEL, "messages": USER}
ALLOW_HEADERS = (
    "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Openai-Beta,X-Stainless-Arch,"
    "X-Stainless-Async,X-Stainless-Custom-Poll-Interval,X-Stainless-Helper-Method,X-Stainless-Lang,"
    "X-Stainless-Os,X-Stainless-Package-Version,X-Stainless-Poll-Helper,X-Stainless-Retry-Count,"
    "X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Timeout"
)
StartProxy = Callable[..., ProxyThread]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(fake: FakeUpstreamThread, start_proxy: StartProxy) -> ProxyThread:
    return start_proxy(fake, api_keys=ApiKeys([KEY, OTHER_KEY]))


def assert_401(resp: httpx.Response, *, openai_shape: bool = False, invalid: bool = False) -> str:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="falcon-ollama"')
    assert ('error="invalid_token"' in challenge) is invalid
    body = resp.json()
    if openai_shape:
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
        assert error["param"] is None and error["code"] == "invalid_api_key"
        message = error["message"]
    else:
        assert list(body) == ["error"]
        message = body["error"]
    assert isinstance(message, str) and message.startswith("unauthorized")
    assert ("invalid" in message) is invalid
    return message


# --- API keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/tags", None),
        ("POST", "/api/chat", CHAT),
        ("POST", "/api/show", {"model": MODEL}),
        ("GET", "/api/version", None),
        ("GET", "/metrics", None),  # protected unless listed
        ("GET", "/api/no-such-route", None),  # no route discovery without a key
        ("OPTIONS", "/api/tags", None),  # not a preflight (no Origin): no exception
    ],
)
def test_ollama_routes_need_a_key(keyed: ProxyThread, method: str, path: str, body: Any) -> None:
    url = keyed.url + path
    assert_401(httpx.request(method, url, json=body))
    assert_401(httpx.request(method, url, json=body, headers=bearer(WRONG_KEY)), invalid=True)
    assert_401(httpx.request(method, url, json=body, headers={"Authorization": f"Basic {KEY}"}))
    assert_401(httpx.request(method, url, json=body, headers={"Authorization": "Bearer"}))
    assert_401(httpx.request(method, url, json=body, headers={"Authorization": KEY}))


def test_right_keys_are_accepted(keyed: ProxyThread) -> None:
    for headers in (bearer(KEY), bearer(OTHER_KEY), {"Authorization": f"bearer {KEY}"}):
        resp = httpx.get(keyed.url + "/api/tags", headers=headers)
        assert resp.status_code == 200, resp.text
        assert MODEL in [m["name"].removesuffix(":latest") for m in resp.json()["models"]]
    resp = httpx.post(keyed.url + "/api/chat", json=CHAT, headers=bearer(KEY))
    assert resp.status_code == 200 and resp.json()["done"] is True


def test_streaming_chat_with_and_without_a_key(keyed: ProxyThread) -> None:
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", keyed.url + "/api/chat", json=body, headers=bearer(KEY)) as resp:
        assert resp.status_code == 200
        lines = [orjson.loads(line) for line in resp.iter_lines() if line]
    assert len(lines) > 2 and lines[-1]["done"] is True
    with httpx.stream("POST", keyed.url + "/api/chat", json=body, headers=bearer(WRONG_KEY)) as resp:
        resp.read()
        assert_401(resp, invalid=True)


def test_v1_routes_answer_openai_shaped_401(keyed: ProxyThread) -> None:
    url = keyed.url + "/v1/chat/completions"
    assert_401(httpx.post(url, json=V1_CHAT), openai_shape=True)
    assert_401(httpx.post(url, json=V1_CHAT, headers=bearer(WRONG_KEY)), openai_shape=True, invalid=True)
    assert_401(httpx.get(keyed.url + "/v1/models"), openai_shape=True)
    resp = httpx.post(url, json=V1_CHAT, headers=bearer(KEY))
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]


def test_v1_key_is_replaced_by_the_upstream_key(keyed: ProxyThread, fake: FakeUpstreamThread) -> None:
    """The client's key authenticates to us only; the upstream sees our upstream key, never the client's."""
    assert (
        httpx.post(keyed.url + "/v1/chat/completions", json=V1_CHAT, headers=bearer(KEY)).status_code == 200
    )
    sent = [r for r in fake.requests if r.path.endswith("/chat/completions")][-1]
    assert KEY not in repr(sent.headers)
    assert sent.headers.get("authorization") == "Bearer sk-test-proxy-key-1234567890"


@pytest.mark.parametrize("path", ["/", "/health", "/health/", "/ready"])
def test_exempt_paths_are_open(keyed: ProxyThread, path: str) -> None:
    assert httpx.get(keyed.url + path).status_code == 200
    assert httpx.get(keyed.url + path, headers=bearer(WRONG_KEY)).status_code == 200
    assert httpx.head(keyed.url + path).status_code == 200


def test_exempt_paths_are_configurable(fake: FakeUpstreamThread, start_proxy: StartProxy) -> None:
    proxy = start_proxy(fake, api_keys=ApiKeys([KEY]), auth_exempt_paths=frozenset({"/health", "/metrics"}))
    assert httpx.get(proxy.url + "/health").status_code == 200
    assert httpx.get(proxy.url + "/metrics").status_code != 401
    assert_401(httpx.get(proxy.url + "/"))
    assert_401(httpx.get(proxy.url + "/ready"))


def test_no_keys_configured_means_open(fake: FakeUpstreamThread, start_proxy: StartProxy) -> None:
    proxy = start_proxy(fake)
    assert httpx.get(proxy.url + "/api/tags").status_code == 200
    assert httpx.get(proxy.url + "/api/tags", headers=bearer(WRONG_KEY)).status_code == 200


def test_ollama_sdk_with_a_header(keyed: ProxyThread) -> None:
    client = ollama.Client(host=keyed.url, headers=bearer(KEY))
    assert MODEL in [m.model.removesuffix(":latest") for m in client.list().models if m.model]
    parts = list(client.chat(MODEL, messages=USER, stream=True))
    assert parts[-1].done and "".join(p.message.content or "" for p in parts)
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=keyed.url).list()
    assert info.value.status_code == 401 and info.value.error.startswith("unauthorized: missing API key")
    with pytest.raises(ollama.ResponseError) as info:
        list(ollama.Client(host=keyed.url, headers=bearer(WRONG_KEY)).chat(MODEL, messages=USER, stream=True))
    assert info.value.status_code == 401 and info.value.error == "unauthorized: invalid API key"


def test_ollama_sdk_reads_ollama_api_key(keyed: ProxyThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """ollama-python sends ``Authorization: Bearer $OLLAMA_API_KEY`` to any host unless given a header."""
    monkeypatch.setenv("OLLAMA_API_KEY", KEY)
    assert ollama.Client(host=keyed.url).chat(MODEL, messages=USER).done
    monkeypatch.setenv("OLLAMA_API_KEY", WRONG_KEY)
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=keyed.url).list()
    assert info.value.status_code == 401
    # an explicit header wins over the variable
    assert ollama.Client(host=keyed.url, headers=bearer(KEY)).list().models


async def test_ollama_async_sdk(keyed: ProxyThread) -> None:
    client = ollama.AsyncClient(host=keyed.url, headers=bearer(OTHER_KEY))
    assert (await client.chat(MODEL, messages=USER)).done


def test_openai_sdk_uses_its_api_key(keyed: ProxyThread) -> None:
    client = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEY, max_retries=0)
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    bad = openai.OpenAI(base_url=keyed.url + "/v1", api_key=WRONG_KEY, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.code == "invalid_api_key"


# --- CORS ----------------------------------------------------------------------------------------------


def preflight(url: str, origin: str, **extra: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
        **extra,
    }
    return httpx.options(url, headers=headers)


def assert_preflight(resp: httpx.Response, origin: str) -> None:
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert resp.headers["access-control-allow-origin"] == origin
    assert resp.headers["access-control-allow-methods"] == "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
    assert resp.headers["access-control-allow-headers"] == ALLOW_HEADERS
    assert resp.headers["access-control-max-age"] == "43200"
    vary = {v.strip() for v in resp.headers["vary"].split(",")}
    assert vary == {"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"}
    assert "access-control-allow-credentials" not in resp.headers
    assert "allow" not in resp.headers  # not Falcon's own OPTIONS answer


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "http://localhost:3000",
        "https://127.0.0.1:8443",
        "http://0.0.0.0:8080",
        "app://obsidian.md",
        "file://",
        "tauri://localhost",
        "vscode-webview://0a1b2c3d",
        "vscode-file://vscode-app",
    ],
)
@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/api/no-such-route", "/"])
def test_preflight_for_default_origins(keyed: ProxyThread, origin: str, path: str) -> None:
    """204 with Ollama's headers on every path, known or not, and without a key."""
    assert_preflight(preflight(keyed.url + path, origin), origin)


def test_preflight_for_configured_wildcard_origins(fake: FakeUpstreamThread, start_proxy: StartProxy) -> None:
    proxy = start_proxy(fake, ollama_origins=("https://*.example.com", "http://intranet:*"))
    for origin in ("https://chat.example.com", "https://a.b.example.com", "http://intranet:9000"):
        assert_preflight(preflight(proxy.url + "/api/chat", origin), origin)
    assert_preflight(preflight(proxy.url + "/api/chat", "http://localhost:5173"), "http://localhost:5173")
    for origin in ("https://example.com", "https://chat.example.org", "http://intranet"):
        resp = preflight(proxy.url + "/api/chat", origin)
        assert resp.status_code == 403 and resp.content == b""


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "POST", "HEAD"])
@pytest.mark.parametrize("path", ["/api/tags", "/api/chat", "/health", "/"])
def test_disallowed_origin_is_403_with_an_empty_body(keyed: ProxyThread, method: str, path: str) -> None:
    headers = {"Origin": "https://evil.example", **bearer(KEY)}
    resp = httpx.request(method, keyed.url + path, headers=headers, json=CHAT if method == "POST" else None)
    assert resp.status_code == 403
    assert resp.content == b""
    assert "access-control-allow-origin" not in resp.headers


def test_actual_request_from_an_allowed_origin(keyed: ProxyThread) -> None:
    origin = "http://localhost:3000"
    resp = httpx.get(keyed.url + "/api/tags", headers={"Origin": origin, **bearer(KEY)})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == origin
    assert resp.headers["vary"] == "Origin"
    assert "access-control-allow-methods" not in resp.headers
    # a refusal still carries the CORS headers, so the page can read why
    resp = httpx.post(keyed.url + "/api/chat", json=CHAT, headers={"Origin": origin})
    assert_401(resp)
    assert resp.headers["access-control-allow-origin"] == origin
    with httpx.stream(
        "POST",
        keyed.url + "/api/chat",
        json={**CHAT, "stream": True},
        headers={"Origin": origin, **bearer(KEY)},
    ) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["access-control-allow-origin"] == origin
        streamed.read()


def test_requests_without_origin_get_no_cors_headers(proxy: ProxyThread) -> None:
    resp = httpx.get(proxy.url + "/api/tags")
    assert resp.status_code == 200
    assert not [h for h in resp.headers if h.startswith("access-control-")]
    assert "vary" not in resp.headers
    # OPTIONS without Origin is not a preflight: Falcon's own answer
    resp = httpx.options(proxy.url + "/api/tags")
    assert resp.status_code == 200 and "GET" in resp.headers["allow"]


def test_same_origin_request_is_not_cors(fake: FakeUpstreamThread, start_proxy: StartProxy) -> None:
    """Origin equal to http(s)://<Host> passes without CORS headers, as in gin-contrib/cors."""
    proxy = start_proxy(fake)
    host = f"app.localhost:{proxy.port}"
    resp = httpx.get(proxy.url + "/api/tags", headers={"Host": host, "Origin": f"http://{host}"})
    assert resp.status_code == 200
    assert "access-control-allow-origin" not in resp.headers
    # ... and a same-origin request under a foreign name still meets the Host check
    host = f"evil.example:{proxy.port}"
    resp = httpx.get(proxy.url + "/api/tags", headers={"Host": host, "Origin": f"http://{host}"})
    assert resp.status_code == 403


def test_allow_all_origins(fake: FakeUpstreamThread, start_proxy: StartProxy) -> None:
    proxy = start_proxy(fake, ollama_origins=("*",))
    resp = preflight(proxy.url + "/api/chat", "https://anywhere.example")
    assert resp.status_code == 204
    assert resp.headers["access-control-allow-origin"] == "*"
    assert "vary" not in resp.headers
    resp = httpx.get(proxy.url + "/api/tags", headers={"Origin": "https://anywhere.example"})
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == "*"


# --- Host allow-list -----------------------------------------------------------------------------------


def host_header_cases(port: int) -> list[tuple[str, int]]:
    return [
        (f"127.0.0.1:{port}", 200),
        (f"localhost:{port}", 200),
        ("localhost", 200),
        (f"[::1]:{port}", 200),
        (f"192.168.1.10:{port}", 200),
        (f"myapp.localhost:{port}", 200),
        (f"host.docker.internal:{port}", 200),
        (f"{socket.gethostname()}:{port}", 200),
        (f"evil.example:{port}", 403),
        ("evil.example", 403),
        (f"localhost.evil.example:{port}", 403),
        (f"8.8.8.8:{port}", 403),
    ]


def test_host_rebinding_refused_when_bound_to_loopback(proxy: ProxyThread) -> None:
    assert proxy.app.services.settings.bind.is_loopback
    for host, status in host_header_cases(proxy.port):
        resp = httpx.get(proxy.url + "/api/tags", headers={"Host": host})
        assert resp.status_code == status, host
        if status == 403:
            assert resp.json() == {
                "error": "forbidden: the Host header is not a local name (DNS-rebinding protection)"
            }
    # exempt and unknown paths too: the Host check is not about keys
    assert httpx.get(proxy.url + "/health", headers={"Host": "evil.example"}).status_code == 403


def test_host_check_runs_before_the_key_check(keyed: ProxyThread) -> None:
    assert httpx.get(keyed.url + "/api/tags", headers={"Host": "evil.example"}).status_code == 403
    resp = httpx.get(keyed.url + "/api/tags", headers={"Host": f"localhost:{keyed.port}"})
    assert_401(resp)


def test_preflight_comes_before_the_host_check(keyed: ProxyThread) -> None:
    """Ollama's order (cors, then allowedHostsMiddleware): an allowed preflight is 204 whatever the Host."""
    resp = preflight(keyed.url + "/api/chat", "http://localhost:3000", Host="evil.example")
    assert_preflight(resp, "http://localhost:3000")
    resp = httpx.get(
        keyed.url + "/api/tags", headers={"Host": "evil.example", "Origin": "http://localhost:3000"}
    )
    assert resp.status_code == 403


@pytest.mark.parametrize(
    "overrides",
    [
        {"check_host": False},
        {"bind": BindAddress("0.0.0.0", 11434)},
        {"bind": BindAddress("", 11434)},
    ],
)
def test_host_check_off(fake: FakeUpstreamThread, start_proxy: StartProxy, overrides: dict[str, Any]) -> None:
    proxy = start_proxy(fake, **overrides)
    for host in ("evil.example", "ollama.example.com:443", "8.8.8.8"):
        assert httpx.get(proxy.url + "/api/tags", headers={"Host": host}).status_code == 200


# --- secrets -------------------------------------------------------------------------------------------

UPSTREAM_KEY = "sk-upstream-UPSTREAMSECRETMARKER-0123456789"
INBOUND_KEY = "inbound-INBOUNDSECRETMARKER-0123456789"
MARKERS = (UPSTREAM_KEY, INBOUND_KEY, "UPSTREAMSECRETMARKER", "INBOUNDSECRETMARKER")


@pytest.fixture
def rejecting_upstream() -> Iterator[FakeUpstreamThread]:
    """An upstream that wants another key: every upstream call is OpenAI's 401."""
    with FakeUpstreamThread(FakeConfig(api_key="sk-the-upstream-wants-this-key-instead")) as upstream:
        yield upstream


def test_keys_never_appear_in_logs_or_bodies(
    fake: FakeUpstreamThread,
    rejecting_upstream: FakeUpstreamThread,
    start_proxy: StartProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="falcon_ollama")
    extra: dict[str, Any] = {}
    if "log_bodies" in {f.name for f in dataclasses.fields(Settings)}:
        extra["log_bodies"] = True  # the most verbose logging there is
    common = {"openai_api_key": UPSTREAM_KEY, "api_keys": ApiKeys([INBOUND_KEY]), **extra}
    working = start_proxy(fake, **common)
    failing = start_proxy(rejecting_upstream, models_ttl=0.0, **common)

    seen: list[str] = []
    statuses: set[int] = set()

    def record(resp: httpx.Response) -> httpx.Response:
        statuses.add(resp.status_code)
        seen.append(resp.text)
        seen.append(repr(resp.headers.multi_items()))
        return resp

    good, wrong = bearer(INBOUND_KEY), bearer(INBOUND_KEY[:-1] + "X")
    origin = {"Origin": "http://localhost:3000"}
    stream_chat = {**CHAT, "stream": True}
    for proxy in (working, failing):
        url = proxy.url
        for headers in (good, wrong, {}, {**good, **origin}, {**wrong, **origin}):
            record(httpx.get(url + "/api/tags", headers=headers))
            record(httpx.post(url + "/api/chat", json=CHAT, headers=headers))
            record(httpx.post(url + "/api/generate", json={"model": MODEL, "prompt": "hi"}, headers=headers))
            record(httpx.post(url + "/api/embed", json={"model": MODEL, "input": "hi"}, headers=headers))
            record(httpx.post(url + "/api/show", json={"model": MODEL}, headers=headers))
            record(httpx.post(url + "/v1/chat/completions", json=V1_CHAT, headers=headers))
            record(
                httpx.post(url + "/v1/chat/completions", json={**V1_CHAT, "stream": True}, headers=headers)
            )
            record(httpx.get(url + "/v1/models", headers=headers))
            record(httpx.get(url + "/metrics", headers=headers))
            with httpx.stream("POST", url + "/api/chat", json=stream_chat, headers=headers) as resp:
                resp.read()
                record(resp)
        record(preflight(url + "/api/chat", "http://localhost:3000"))
        record(httpx.get(url + "/api/tags", headers={**good, "Host": "evil.example"}))
        for client_headers in (good, wrong):
            client = ollama.Client(host=url, headers=client_headers)
            for call in (client.list, lambda c=client: c.chat(MODEL, messages=USER)):
                try:
                    seen.append(repr(call()))
                except ollama.ResponseError as exc:
                    seen.append(f"{exc!r} {exc}")

    assert {200, 204, 401, 403, 502} <= statuses  # successes, our refusals and the upstream's 401 (as 502)
    for text in seen:
        for marker in MARKERS:
            assert marker not in text
    assert caplog.records, "nothing was logged at all"
    formatter = logging.Formatter()
    for rec in caplog.records:
        everything = f"{formatter.format(rec)} {rec.__dict__!r}"
        for marker in MARKERS:
            assert marker not in everything, rec.name
    # the upstream saw our upstream key, never the client's key
    for upstream in (fake, rejecting_upstream):
        assert upstream.requests
        for sent in upstream.requests:
            assert INBOUND_KEY not in repr(sent.headers) and b"INBOUNDSECRETMARKER" not in sent.body
