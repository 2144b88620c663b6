"""ollama.com's routes answer as an Ollama with its cloud disabled, never gin's bare 404 (issue 12)."""

from __future__ import annotations

import httpx
import pytest

from tests.servers import ProxyThread


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/api/status", 200, {"cloud": {"disabled": True, "source": "config"}}),
        ("POST", "/api/me", 401, {"error": "unauthorized: this server is not connected to ollama.com"}),
        ("POST", "/api/signout", 401, {"error": "you are not currently signed in"}),
        ("DELETE", "/api/user/keys/c3NoLWVkMjU1MTk", 401, {"error": "you are not currently signed in"}),
        (
            "POST",
            "/api/experimental/web_search",
            403,
            {
                "error": "ollama cloud is disabled: web search is unavailable "
                "(this server is not connected to ollama.com)"
            },
        ),
        (
            "POST",
            "/api/experimental/web_fetch",
            403,
            {
                "error": "ollama cloud is disabled: web fetch is unavailable "
                "(this server is not connected to ollama.com)"
            },
        ),
        ("GET", "/api/experimental/model-recommendations", 200, {"recommendations": []}),
    ],
)
def test_cloud_routes(proxy: ProxyThread, method: str, path: str, status: int, body: object) -> None:
    reply = httpx.request(method, proxy.url + path, json={"query": "x"} if method == "POST" else None)
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == body
