"""Ollama's ollama.com routes, answered as an Ollama with its cloud disabled would (v0.33.0-rc2).

This server is never connected to ollama.com: ``/api/status`` says the cloud is off, the account routes say
nobody is signed in, and the experimental web tools refuse with Ollama's own "cloud is disabled" text. A
client then shows a clear reason instead of gin's bare ``404 page not found``.
"""

from __future__ import annotations

import falcon.asgi

from falcon_ollama.resources.common import send_json

NOT_CONNECTED = "this server is not connected to ollama.com"
CLOUD_DISABLED = "ollama cloud is disabled"  # Ollama's internal/cloud DisabledMessagePrefix


class StatusResource:
    """``GET /api/status``: the cloud is disabled, by this server's configuration."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, {"cloud": {"disabled": True, "source": "config"}})


class AccountResource:
    """``POST /api/me``, ``POST /api/signout``, ``DELETE /api/user/keys/{key}``: nobody is signed in."""

    def __init__(self, message: str, method: str) -> None:
        self._message = message
        setattr(self, f"on_{method.lower()}", self._refuse)

    async def _refuse(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **_: str) -> None:
        send_json(resp, {"error": self._message}, status=401)


class WebToolResource:
    """``POST /api/experimental/web_search`` and ``web_fetch``: 403, as Ollama answers with its cloud off."""

    def __init__(self, operation: str) -> None:
        self._message = f"{CLOUD_DISABLED}: {operation} ({NOT_CONNECTED})"

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, {"error": self._message}, status=403)


class RecommendationsResource:
    """``GET /api/experimental/model-recommendations``: none (Ollama's come from ollama.com)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, {"recommendations": []})
