"""What a hostile upstream (or whoever sits between us and it) can do: issue 10, items 6-8.

Bounded reads (gzip bombs, huge answers, huge error bodies, endless streams), a huge model list, and the
keys echoed back in every place an upstream can put them. Real servers on loopback: our app under uvicorn,
``tests/hostile_upstream.py`` scripted per test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest

from falcon_ollama.access import ApiKeys
from falcon_ollama.settings import Settings
from tests.hostile_upstream import (
    HostileUpstream,
    Reply,
    chat_answer,
    delta,
    gzip_of_zeros,
    model_list,
    sse,
)
from tests.servers import GunicornProcess, ProxyThread

MiB = 1 << 20
USER = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"
SK_KEY = "sk-proj-UPSTREAMsecret0123456789abcdef"
GOOGLE_KEY = "AIzaSyUPSTREAMsecret0123456789abcdefgh"
INBOUND_KEY = "inbound-Key_0123456789abcdefXYZ"


@pytest.fixture
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream() as upstream:
        upstream.script("/v1/models", Reply(body=model_list(0)[:-2] + b'{"id":"gpt-4o"}]}'))
        yield upstream


@pytest.fixture
def start(hostile: HostileUpstream) -> Iterator[object]:
    started: list[ProxyThread] = []

    def _start(**overrides: object) -> ProxyThread:
        values: dict[str, object] = {"openai_api_key": SK_KEY, "retry_base_delay": 0.01, **overrides}
        settings = Settings(
            openai_base_url=hostile.base_url,
            openai_base_url_set=True,
            **values,  # type: ignore[arg-type]
        )
        proxy = ProxyThread(settings).__enter__()
        started.append(proxy)
        return proxy

    yield _start
    for proxy in reversed(started):
        proxy.__exit__()


def chat(
    proxy: ProxyThread, *, stream: bool = False, path: str = "/api/chat", **extra: str
) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": USER, "stream": stream}
    return httpx.post(proxy.url + path, json=body, timeout=60, headers=extra or None)


# --- 6. every read bounded after decompression ------------------------------------------------------------


def test_a_gzip_bomb_answer_is_refused_naming_the_limit(hostile: HostileUpstream, start: object) -> None:
    bomb = gzip_of_zeros(64 * MiB, prefix=b'{"choices": [')
    assert len(bomb) < MiB // 4
    gzip = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    hostile.script(CHAT, Reply(body=bomb, headers=gzip))
    proxy = start(max_upstream_body_bytes=MiB)  # type: ignore[operator]
    resp = chat(proxy)
    assert resp.status_code == 502
    assert resp.json() == {
        "error": "the upstream answer is larger than the limit of 1048576 bytes "
        "(FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES)"
    }
    v1 = chat(proxy, path=CHAT)
    assert v1.status_code == 502
    assert "larger than the limit of 1048576 bytes" in v1.json()["error"]["message"]


def test_a_huge_answer_is_not_read_past_the_limit(hostile: HostileUpstream, start: object) -> None:
    hostile.script(CHAT, Reply(body=b'{"choices": [', repeat=256 * MiB))
    proxy = start(max_upstream_body_bytes=MiB)  # type: ignore[operator]
    resp = chat(proxy, path=CHAT)
    assert resp.status_code == 502
    assert resp.json()["error"]["type"] == "api_error"
    assert "(FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES)" in resp.json()["error"]["message"]
    (served,) = hostile.requests_to(CHAT)
    assert not served.finished
    assert served.written < 64 * MiB  # the limit plus what the sockets' buffers hold


def test_a_small_answer_over_a_small_limit_is_refused_and_the_pool_still_works(
    hostile: HostileUpstream, start: object
) -> None:
    """An answer that arrives whole with its head (read without the chunk loop: upstream.py's
    ``_read_buffered``) is held to the same limit, and its connection is not reused."""
    hostile.script(CHAT, Reply(body=b'{"choices": [' + b" " * 8000 + b"]}", at_once=True))
    proxy = start(max_upstream_body_bytes=4096)  # type: ignore[operator]
    resp = chat(proxy)
    assert resp.status_code == 502
    assert resp.json() == {
        "error": "the upstream answer is larger than the limit of 4096 bytes "
        "(FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES)"
    }
    hostile.script(CHAT, Reply(body=chat_answer("fine"), at_once=True))
    again = chat(proxy)
    assert again.status_code == 200, again.text
    assert again.json()["message"]["content"] == "fine"


def test_a_huge_error_body_is_read_only_up_to_the_error_bound_on_each_retry(
    hostile: HostileUpstream, start: object
) -> None:
    hostile.script(CHAT, Reply(status=500, body=b'{"error": {"message": "', repeat=256 * MiB))
    proxy = start(max_retries=2)  # type: ignore[operator]
    resp = chat(proxy)
    assert resp.status_code == 502
    assert resp.json()["error"].startswith("upstream error (HTTP 500)")
    attempts = hostile.requests_to(CHAT)
    assert len(attempts) == 3
    for served in attempts:
        assert not served.finished
        assert served.written < 64 * MiB


def test_a_v1_stream_is_bounded_in_total(hostile: HostileUpstream, start: object) -> None:
    event = sse(delta("x" * 60_000))[0]
    hostile.script(CHAT, Reply(headers={"Content-Type": "text/event-stream"}, chunks=[event] * 100))
    proxy = start(max_upstream_stream_bytes=MiB)  # type: ignore[operator]
    resp = chat(proxy, stream=True, path=CHAT)
    assert resp.status_code == 200
    body = resp.content
    assert len(body) < MiB + 1000
    # (the event cut at the bound before it is h-stream's framing question, issue 10 item 11)
    last = body[body.rindex(b'data: {"error"') :]
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["message"] == (
        "the upstream stream is larger than the limit of 1048576 bytes "
        "(FALCON_OLLAMA_MAX_UPSTREAM_STREAM_BYTES)"
    )


# --- 7. a huge model list ----------------------------------------------------------------------------------


def test_a_huge_model_list_is_capped_with_a_warning(
    hostile: HostileUpstream, start: object, caplog: pytest.LogCaptureFixture
) -> None:
    hostile.script("/v1/models", Reply(body=model_list(20_000)))
    proxy = start(max_models=500)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="falcon_ollama"):
        tags = httpx.get(proxy.url + "/api/tags", timeout=30)
    assert tags.status_code == 200
    names = [m["name"] for m in tags.json()["models"]]
    assert len(names) == 500
    assert names[0] == "model-0000000:latest" and names[-1] == "model-0000499:latest"
    assert any("serving the first 500" in r.getMessage() for r in caplog.records)
    assert httpx.get(proxy.url + "/v1/models", timeout=30).json()["data"][499]["id"] == "model-0000499:latest"


def test_a_model_list_over_the_byte_bound_keeps_the_models_it_holds(
    hostile: HostileUpstream, start: object
) -> None:
    hostile.script("/v1/models", Reply(body=model_list(10_000, pad=100)))
    proxy = start(max_model_list_bytes=64 * 1024)  # type: ignore[operator]
    tags = httpx.get(proxy.url + "/api/tags", timeout=30)
    assert tags.status_code == 200
    count = len(tags.json()["models"])
    assert 100 < count < 1000  # what 64 KiB holds of ~170-byte entries
    assert httpx.get(proxy.url + "/ready", timeout=30).status_code == 200


def test_gunicorn_starts_and_serves_with_a_huge_model_list(hostile: HostileUpstream) -> None:
    """300,000 models used to cost each worker over a minute of event loop at start-up (WORKER TIMEOUT)."""
    hostile.script("/v1/models", Reply(body=model_list(300_000)))
    env = {
        "OPENAI_BASE_URL": hostile.base_url,
        "OPENAI_API_KEY": SK_KEY,
        "FALCON_OLLAMA_WORKER_TIMEOUT": "10",
        "FALCON_OLLAMA_LOG_LEVEL": "warning",
    }
    with GunicornProcess(env) as server:
        for _ in range(4):  # both workers, and again after their first refresh
            tags = httpx.get(server.url + "/api/tags", timeout=60)
            assert tags.status_code == 200
            assert len(tags.json()["models"]) == 10_000
        assert httpx.get(server.url + "/api/version", timeout=5).status_code == 200
    assert b"WORKER TIMEOUT" not in server.output
    assert b"serving the first 10000" in server.output


# --- 8. the keys never echoed ------------------------------------------------------------------------------


def _assert_clean(texts: list[str | bytes], *keys: str) -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        for key in keys:
            assert key.encode() not in data, data[:300]


def _log_lines(caplog: pytest.LogCaptureFixture) -> list[str | bytes]:
    return [r.getMessage() for r in caplog.records] + [caplog.text]


@pytest.mark.parametrize("status", [400, 429])
@pytest.mark.parametrize("key", [SK_KEY, GOOGLE_KEY])
def test_v1_passthrough_of_upstream_errors_redacts_the_key(
    hostile: HostileUpstream, start: object, caplog: pytest.LogCaptureFixture, status: int, key: str
) -> None:
    echoed = {
        "error": {
            "message": f"Invalid value for 'user': key {key} is not allowed here",
            "type": "invalid_request_error",
            "param": key,
            "code": "invalid_value",
        }
    }
    hostile.script(CHAT, Reply(status=status, body=orjson.dumps(echoed), headers={"Retry-After": "999"}))
    proxy = start(openai_api_key=key, max_retries=0)  # type: ignore[operator]
    with caplog.at_level(logging.DEBUG):
        v1 = chat(proxy, path=CHAT)
        api = chat(proxy)
    assert v1.status_code == status
    error = v1.json()["error"]
    assert error["code"] == "invalid_value" and error["param"] == "[redacted]"
    assert error["message"] == "Invalid value for 'user': key [redacted] is not allowed here"
    assert api.status_code == status
    assert "[redacted]" in api.json()["error"]
    _assert_clean([v1.content, api.content, *_log_lines(caplog)], key)


def test_api_stream_error_events_are_redacted(
    hostile: HostileUpstream, start: object, caplog: pytest.LogCaptureFixture
) -> None:
    error = {"error": {"message": f"quota exceeded for key {GOOGLE_KEY}", "code": 429}}
    hostile.script(
        CHAT, Reply(headers={"Content-Type": "text/event-stream"}, chunks=sse(delta("one "), error))
    )
    proxy = start(openai_api_key=GOOGLE_KEY)  # type: ignore[operator]
    with caplog.at_level(logging.DEBUG):
        api = chat(proxy, stream=True)
        v1 = chat(proxy, stream=True, path=CHAT)
    lines = [orjson.loads(line) for line in api.content.splitlines()]
    assert lines[-1] == {"error": "quota exceeded for key [redacted]"}
    assert b"quota exceeded for key [redacted]" in v1.content
    _assert_clean([api.content, v1.content, *_log_lines(caplog)], GOOGLE_KEY)


def test_api_200_error_answers_are_redacted(
    hostile: HostileUpstream, start: object, caplog: pytest.LogCaptureFixture
) -> None:
    hostile.script(CHAT, Reply(body=orjson.dumps({"error": {"message": f"bad key {SK_KEY}!"}})))
    proxy = start()  # type: ignore[operator]
    with caplog.at_level(logging.DEBUG):
        resp = chat(proxy)
    assert resp.status_code == 502
    assert resp.json() == {"error": "bad key [redacted]!"}
    _assert_clean([resp.content, *_log_lines(caplog)], SK_KEY)


def test_an_echoed_inbound_key_is_redacted_on_every_route(
    hostile: HostileUpstream, start: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream never gets the client's key, but a client may paste it into a prompt that is echoed."""
    echo = {"error": {"message": f"cannot process '{INBOUND_KEY}'", "type": "invalid_request_error"}}
    hostile.script(CHAT, Reply(status=400, body=orjson.dumps(echo)))
    proxy = start(api_keys=ApiKeys([INBOUND_KEY]))  # type: ignore[operator]
    auth = {"Authorization": f"Bearer {INBOUND_KEY}"}
    with caplog.at_level(logging.DEBUG):
        api = chat(proxy, **auth)
        v1 = chat(proxy, path=CHAT, **auth)
    assert api.status_code == 400 and api.json() == {"error": "cannot process '[redacted]'"}
    assert v1.status_code == 400 and v1.json()["error"]["message"] == "cannot process '[redacted]'"
    _assert_clean([api.content, v1.content, *_log_lines(caplog)], INBOUND_KEY, SK_KEY)


def test_v1_streamed_error_event_with_a_slash_escaped_key_is_redacted(
    hostile: HostileUpstream, start: object
) -> None:
    key = "sk-live/abcdefghij0123456789/XYZ"
    escaped = key.replace("/", "\\/").encode()
    event = b'data: {"error": {"message": "rejected ' + escaped + b'"}}\n\n'
    hostile.script(CHAT, Reply(headers={"Content-Type": "text/event-stream"}, chunks=[event]))
    proxy = start(openai_api_key=key)  # type: ignore[operator]
    v1 = chat(proxy, stream=True, path=CHAT)
    assert b"[redacted]" in v1.content
    assert escaped not in v1.content and key.encode() not in v1.content


def test_a_key_echoed_in_a_successful_answer_is_redacted(hostile: HostileUpstream, start: object) -> None:
    hostile.script(CHAT, Reply(body=chat_answer(f"your key is {GOOGLE_KEY}")))
    hostile.script(
        "/v1/models", Reply(body=b'{"data": [{"id": "gpt-4o"}, {"id": "' + GOOGLE_KEY.encode() + b'"}]}')
    )
    proxy = start(openai_api_key=GOOGLE_KEY)  # type: ignore[operator]
    api, v1 = chat(proxy), chat(proxy, path=CHAT)
    tags = httpx.get(proxy.url + "/api/tags", timeout=30)
    assert api.json()["message"]["content"] == "your key is [redacted]"
    assert v1.json()["choices"][0]["message"]["content"] == "your key is [redacted]"
    assert "[redacted]:latest" in [m["name"] for m in tags.json()["models"]]
    _assert_clean([api.content, v1.content, tags.content], GOOGLE_KEY)
