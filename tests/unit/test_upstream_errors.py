"""Upstream failure -> Ollama error mapping (the issue's table), including bodies that are not JSON."""

from __future__ import annotations

import httpx
import orjson
import pytest

from falcon_ollama.upstream import map_status_error, map_transport_error


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


@pytest.mark.parametrize(
    ("exc", "status", "fragment"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), 502, "could not connect to the upstream"),
        (httpx.ConnectTimeout("timed out"), 504, "timed out connecting"),
        (httpx.ReadTimeout("timed out"), 504, "timed out waiting"),
        (httpx.PoolTimeout("busy"), 504, "timed out connecting"),
        (httpx.RemoteProtocolError("peer closed"), 502, "closed the connection"),
        (httpx.ReadError("reset"), 502, "closed the connection"),
        (httpx.UnsupportedProtocol("ftp"), 502, "upstream request failed"),
    ],
)
def test_transport_mapping(exc: httpx.HTTPError, status: int, fragment: str) -> None:
    err = map_transport_error(exc)
    assert err.status == status
    assert fragment in err.message
