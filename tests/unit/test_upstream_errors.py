"""Upstream failure -> Ollama error mapping (the issue's table), including bodies that are not JSON."""

from __future__ import annotations

import aiohttp
import httpx
import orjson
import pytest

from falcon_ollama.upstream import (
    RetryPolicy,
    map_status_error,
    map_transport_error,
    parse_retry_after,
    resolve_proxy,
)
from tests.real_fixtures import LLAMACPP


def openai_error(message: str, code: str | None = None, type_: str = "invalid_request_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


KEY_ECHO = openai_error(
    "Incorrect API key provided: sk-proj-abc***xyz. You can find your key.", "invalid_api_key"
)


@pytest.mark.parametrize(
    ("status", "body", "headers", "want_status", "want_message"),
    [
        (400, openai_error("Invalid 'messages': empty array."), {}, 400, "Invalid 'messages': empty array."),
        (
            400,
            openai_error("The model `x` does not exist", "model_not_found"),
            {},
            404,
            "model 'gpt-9' not found",
        ),
        (
            404,
            openai_error("The model `x` does not exist", "model_not_found"),
            {},
            404,
            "model 'gpt-9' not found",
        ),
        (404, b"Not Found", {}, 404, "model 'gpt-9' not found"),
        (
            429,
            openai_error("Rate limit reached", "rate_limit_exceeded"),
            {"retry-after": "7"},
            429,
            "Rate limit reached",
        ),
        (
            401,
            KEY_ECHO,
            {},
            502,
            "the upstream rejected the API key (HTTP 401); check OPENAI_API_KEY and the key's permissions",
        ),
        (
            403,
            b"forbidden",
            {},
            502,
            "the upstream rejected the API key (HTTP 403); check OPENAI_API_KEY and the key's permissions",
        ),
        (
            500,
            openai_error("The server had an error", type_="server_error"),
            {},
            502,
            "upstream error (HTTP 500): The server had an error",
        ),
        (
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            {},
            502,
            "upstream error (HTTP 502): 502 Bad Gateway",
        ),
        (503, b"<html><body>down</body></html>", {}, 502, "upstream error (HTTP 503)"),
        (500, b"Internal\x01 Server\nError", {}, 502, "upstream error (HTTP 500): Internal Server Error"),
        (504, b"", {}, 504, "the upstream timed out (HTTP 504)"),
        (408, b"", {}, 504, "the upstream timed out (HTTP 408)"),
        (413, openai_error("Request too large"), {}, 413, "Request too large"),
        (422, orjson.dumps({"detail": "Unprocessable"}), {}, 400, "Unprocessable"),
        (400, orjson.dumps({"error": "plain string error"}), {}, 400, "plain string error"),
        (400, orjson.dumps({"message": "top-level message"}), {}, 400, "top-level message"),
        (400, b"", {}, 400, "the upstream rejected the request (HTTP 400)"),
    ],
)
def test_status_mapping(
    status: int, body: bytes, headers: dict[str, str], want_status: int, want_message: str
) -> None:
    err = map_status_error(status, body, httpx.Headers(headers), "gpt-9")
    assert err.status == want_status
    assert err.message == want_message


def test_404_without_a_model_points_at_the_base_url() -> None:
    err = map_status_error(404, b"Not Found", httpx.Headers(), None)
    assert err.status == 502 and "OPENAI_BASE_URL" in err.message


def test_rate_limit_keeps_retry_after() -> None:
    err = map_status_error(429, openai_error("slow down"), httpx.Headers({"Retry-After": "12"}), "m")
    assert err.headers == {"Retry-After": "12"}


def test_rejected_key_is_never_echoed() -> None:
    err = map_status_error(401, KEY_ECHO, httpx.Headers(), "m")
    assert "sk-" not in err.message and "abc" not in err.message


def test_key_like_strings_are_scrubbed_from_passed_messages() -> None:
    err = map_status_error(400, openai_error("bad key sk-live-abcdef123456 used"), httpx.Headers(), "m")
    assert "sk-live" not in err.message
    assert "[redacted]" in err.message


def test_long_messages_are_bounded() -> None:
    err = map_status_error(400, openai_error("x" * 10_000), httpx.Headers(), "m")
    assert len(err.message) <= 400


LLAMACPP_JSON_SCHEMA = (LLAMACPP / "error_response_format_json_schema.body").read_bytes()


def test_llamacpp_validation_500_is_a_refusal_without_internals() -> None:
    """The recorded llama.cpp answer (issue 12): 400 with the message before its traceback line, no path of
    the server's files, not retried; the body kept for /v1 is cleaned the same way."""
    err = map_status_error(500, LLAMACPP_JSON_SCHEMA, httpx.Headers(), "tiny-llama")
    assert (err.status, err.retryable) == (400, False)
    assert err.message == (
        "the upstream refused the request (HTTP 500): 1 validation error: {'type': 'literal_error', 'loc': "
        "('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': "
        "'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}"
    )
    kept = orjson.loads(err.raw_body)["error"]["message"]
    assert kept.startswith("1 validation error:\n  {'type': 'literal_error'")
    assert "File" not in kept and "app.py" not in kept and "POST" not in kept


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        pytest.param(
            'Traceback (most recent call last):\n  File "/srv/app/main.py", line 3, in f\n    g()\n'
            "ValueError: bad value",
            "ValueError: bad value",
            id="bare-python-traceback-keeps-the-exception-line",
        ),
        pytest.param(
            "engine failed\nTraceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'k'",
            "engine failed",
            id="message-then-traceback",
        ),
        pytest.param(
            "Error: boom\n    at Object.<anonymous> (/srv/app/index.js:10:5)\n    at node:internal/x:1:1",
            "Error: boom",
            id="node-stack",
        ),
        pytest.param(
            "panic: runtime error: index out of range\n\ngoroutine 7 [running]:\nmain.f()",
            "panic: runtime error: index out of range",
            id="go-panic",
        ),
        pytest.param("cannot open /home/u/models/x.gguf here", "cannot open [path] here", id="absolute-path"),
        pytest.param("read ~/.cache/m failed", "read [path] failed", id="home-path"),
        pytest.param("C:\\Users\\me\\server.py broke", "[path] broke", id="windows-path"),
        pytest.param("see /opt/llm/weights", "see [path]", id="system-root"),
        pytest.param(
            "Invalid URL (POST /v1/chat/completion)", "Invalid URL (POST /v1/chat/completion)", id="route"
        ),
        pytest.param(
            "use image/png or https://x.test/a/b.py", "use image/png or https://x.test/a/b.py", id="not-paths"
        ),
        pytest.param("Internal Server\nError", "Internal Server Error", id="wrapped-lines-joined"),
    ],
)
def test_messages_lose_tracebacks_and_paths(text: str, kept: str) -> None:
    err = map_status_error(502, text.encode(), httpx.Headers(), "m")
    assert err.message == f"upstream error (HTTP 502): {kept}"


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        ("2 validation errors: ...", True),
        ("Input should be a valid list", True),
        ("response_format json_schema is not supported", True),
        ("Unsupported parameter: 'logprobs'", True),
        ("Invalid value for 'temperature'", True),
        ("The server had an error while processing your request", False),
        ("CUDA out of memory", False),
        ("", False),
    ],
)
def test_a_500_that_refuses_the_request_is_not_retried(message: str, refused: bool) -> None:
    """The rule (docs/troubleshooting.md): a 500 whose message says the request is invalid or unsupported
    is a 400, not retried; any other 500 is a 502 and retried. 502/503 are always retried."""
    err = map_status_error(500, openai_error(message, type_="server_error"), httpx.Headers(), "m")
    assert (err.status, err.retryable) == ((400, False) if refused else (502, True))
    assert map_status_error(503, openai_error(message), httpx.Headers(), "m").retryable


def _connector_error(err: OSError) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("upstream", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, err)


@pytest.mark.parametrize(
    ("exc", "status", "fragment", "retryable"),
    [
        (_connector_error(ConnectionRefusedError(111, "Connection refused")), 502, "could not connect", True),
        (aiohttp.ConnectionTimeoutError("timed out"), 504, "timed out connecting", True),
        (aiohttp.SocketTimeoutError("timed out"), 504, "timed out waiting", False),
        (TimeoutError(), 504, "timed out waiting", False),
        (aiohttp.ServerDisconnectedError(), 502, "closed the connection", False),
        (aiohttp.ClientPayloadError("half"), 502, "closed the connection", False),
        (aiohttp.ClientOSError(104, "reset"), 502, "closed the connection", False),
        (ConnectionResetError(), 502, "closed the connection", False),
        (aiohttp.InvalidURL("x"), 502, "upstream request failed", False),
    ],
)
def test_transport_mapping(exc: BaseException, status: int, fragment: str, retryable: bool) -> None:
    err = map_transport_error(exc)
    assert err.status == status
    assert fragment in err.message
    assert err.retryable is retryable


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://api.openai.com/v1/", None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https://api.openai.com/v1/", "http://proxy:3128"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://vllm.local:8000/v1/", None),
        ({"HTTP_PROXY": "http://p:1"}, "http://vllm.local:8000/v1/", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.openai.com"}, "https://api.openai.com/v1/", None),
        ({"ALL_PROXY": "http://p:2"}, "https://api.openai.com/v1/", "http://p:2"),
    ],
)
def test_proxy_is_resolved_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy",
                 "all_proxy", "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert resolve_proxy(url) == expected


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "Thu, 01 Jan 2099 00:00:10 GMT"}, None),
        ({"retry-after": "garbage"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    value = parse_retry_after(httpx.Headers(headers), now=lambda: 4070908800.0)
    assert value == (10.0 if "2099" in headers.get("retry-after", "") else seconds)


@pytest.mark.parametrize(
    ("attempt", "status", "retry_after", "expected"),
    [
        (0, 500, None, (0.0, 0.5)),
        (1, 503, None, (0.0, 1.0)),
        (2, 500, None, None),  # max_retries reached
        (0, 429, 3.0, (3.0, 3.0)),
        (0, 429, 60.0, None),  # longer than max_wait: give it back to the client
        (0, 400, None, None),  # not retryable
    ],
)
def test_retry_policy(
    attempt: int, status: int, retry_after: float | None, expected: tuple[float, float] | None
) -> None:
    policy = RetryPolicy(max_retries=2, base_delay=0.5, max_wait=20.0)
    error = map_status_error(status, b"", httpx.Headers(), "m")
    error.retry_after = retry_after
    delay = policy.delay(attempt, error, rand=lambda: 1.0)
    if expected is None:
        assert delay is None
    else:
        assert delay is not None and expected[0] <= delay <= expected[1]
