"""Discovery endpoints: ``/``, ``/api/version``, ``/api/tags``, ``/api/show``, ``/api/ps``.

These are what an Ollama client calls first to find out what it can use; they never call the upstream for
a completion, only (through the catalog's cache) for the model list.
"""

from __future__ import annotations

import time

import falcon
import falcon.asgi

from falcon_ollama.catalog import Catalog, ollama_name
from falcon_ollama.errors import OllamaError, model_not_found
from falcon_ollama.limits import Limits
from falcon_ollama.ollama_types import PsResponse, TagsResponse, VersionResponse
from falcon_ollama.resources.common import model_field, read_json_object, send_json
from falcon_ollama.running import RunningModels
from falcon_ollama.translate.models import ps_entry, show_response, tags_models


class RootResource:
    """``GET|HEAD /``: the liveness text every Ollama client and the CLI's heartbeat look for."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = "text/plain; charset=utf-8"
        resp.data = b"Ollama is running"

    on_head = on_get


class VersionResource:
    """``GET|HEAD /api/version``: a configurable Ollama version, recent enough for feature-gating clients."""

    def __init__(self, version: str) -> None:
        self._payload: VersionResponse = {"version": version}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, self._payload)

    on_head = on_get


class TagsResource:
    """``GET|HEAD /api/tags``: the upstream's usable models plus the catalog's aliases."""

    def __init__(self, catalog: Catalog, started_at: float) -> None:
        self._catalog = catalog
        self._started_at = started_at

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        entries = await self._catalog.list_models()
        payload: TagsResponse = {"models": tags_models(entries, self._started_at)}
        send_json(resp, payload)

    on_head = on_get


class ShowResource:
    """``POST /api/show``: capabilities, context length and details: what clients read to use a model."""

    def __init__(self, catalog: Catalog, started_at: float, limits: Limits) -> None:
        self._catalog = catalog
        self._started_at = started_at
        self._limits = limits

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json_object(req, self._limits)
        name = model_field(body)
        if not name:
            raise OllamaError(400, "model is required")
        try:
            entry = await self._catalog.resolve(name)
        except OllamaError as exc:
            if exc.status == 404:  # Ollama's show reports the normalized name, tag included
                raise model_not_found(ollama_name(name.strip())) from None
            raise
        send_json(resp, show_response(entry, name, self._started_at, req.user_agent or ""))


class PsResource:
    """``GET /api/ps``: models used within their keep-alive window (Ollama lists the ones in memory)."""

    def __init__(self, running: RunningModels) -> None:
        self._running = running

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        payload: PsResponse = {"models": [ps_entry(e, until) for e, until in self._running.active()]}
        send_json(resp, payload)


def process_start_time() -> float:
    """Wall-clock start of this worker: ``modified_at`` for upstream models that carry no ``created``."""
    return time.time()
