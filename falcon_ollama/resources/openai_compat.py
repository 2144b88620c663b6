"""The OpenAI-compatible routes a real Ollama also serves under ``/v1``.

Some of the most common clients (GitHub Copilot's Ollama provider, Open WebUI, Continue) discover models
through ``/api/tags`` and ``/api/show`` and then talk OpenAI to ``/v1``. These routes forward to the upstream:
the ``model`` field resolved through the catalog (aliases, ``:latest``), our upstream key instead of
whatever the client sent, what the model refuses but Ollama accepts adapted (``translate/openai_adapt.py``:
``max_tokens`` for ``max_completion_tokens``, sampling knobs to gpt-5...), everything else passed through
untouched; streamed answers are relayed byte for
byte as they arrive, never parsed, up to the end of the ``data: [DONE]`` event (found by ``DoneFinder``
without decoding the events): nothing after it is relayed and the response ends there. Errors keep OpenAI's
shape here; the upstream's own 4xx error bodies
(with their ``code`` and ``param``) are passed on, except for a rejected key, which is never echoed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import falcon
import falcon.asgi
import orjson

from falcon_ollama.admission import Admission, Slot
from falcon_ollama.catalog import Catalog, ModelEntry
from falcon_ollama.errors import OllamaError
from falcon_ollama.limits import Limits, check_content_type, parse_json
from falcon_ollama.logs import WarnOnce
from falcon_ollama.requestlog import RequestInfo, info_of, note_model
from falcon_ollama.resources.common import read_body
from falcon_ollama.resources.relay import (
    CLIENT_GONE,
    RECEIVE_SCOPE_KEY,
    STREAM_ERROR,
    DisconnectWatcher,
    close_chunks,
    drain_after_done,
    end_stream,
)
from falcon_ollama.sse import DoneFinder
from falcon_ollama.translate.models import newest_first
from falcon_ollama.translate.openai_adapt import ADAPTED_PATHS, adapt_openai_body
from falcon_ollama.upstream import Upstream, UpstreamError, UpstreamStream

log = logging.getLogger("falcon_ollama.openai_compat")

JSON = "application/json"


def openai_error(status: int, message: str) -> bytes:
    """OpenAI's error body; the type follows the status as Ollama's own /v1 layer does."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})


def _send_error(resp: falcon.asgi.Response, error: OllamaError) -> None:
    if isinstance(error, UpstreamError) and _passable(error):
        resp.status = error.upstream_status or error.status
        resp.data = error.raw_body
    else:
        resp.status = error.status
        resp.data = openai_error(error.status, error.message)
    resp.content_type = JSON
    for name, value in error.headers.items():
        resp.set_header(name, value)


def _passable(error: UpstreamError) -> bool:
    """Whether an upstream 4xx OpenAI-shaped error goes to the client as is (401/403 never: key echo)."""
    status = error.upstream_status or 0
    if not 400 <= status < 500 or status in (401, 403) or not error.raw_body:
        return False
    try:
        body = orjson.loads(error.raw_body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def model_object(entry: ModelEntry, fallback_created: float, asked_as: str | None = None) -> dict[str, Any]:
    """OpenAI's model object; ``asked_as`` is the id a retrieve used, echoed as is the way Ollama does."""
    created = entry.created if entry.created is not None else int(fallback_created)
    name = entry.name if asked_as is None else asked_as
    return {"id": name, "object": "model", "created": created, "owned_by": "library"}


class ModelsResource:
    """``GET /v1/models``: the same models as ``/api/tags``, in OpenAI's list shape."""

    def __init__(self, catalog: Catalog, started_at: float) -> None:
        self._catalog = catalog
        self._started_at = started_at

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            entries = await self._catalog.list_models()
        except OllamaError as exc:
            _send_error(resp, exc)
            return
        resp.content_type = JSON
        resp.data = orjson.dumps(
            {
                "object": "list",
                "data": [model_object(e, self._started_at) for e in newest_first(entries, self._started_at)],
            }
        )


class ModelResource:
    """``GET /v1/models/{model}``: the id echoed as asked (``llama3.2``, not ``llama3.2:latest``)."""

    def __init__(self, catalog: Catalog, started_at: float) -> None:
        self._catalog = catalog
        self._started_at = started_at

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str) -> None:
        try:
            entry = await self._catalog.resolve(model)
        except OllamaError as exc:
            _send_error(resp, exc)
            return
        resp.content_type = JSON
        resp.data = orjson.dumps(model_object(entry, self._started_at, asked_as=model))


class ForwardResource:
    """``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``: forwarded to the upstream."""

    def __init__(
        self, path: str, catalog: Catalog, upstream: Upstream, admission: Admission, limits: Limits
    ) -> None:
        self._path = path
        self._admission = admission
        self._catalog = catalog
        self._upstream = upstream
        self._limits = limits
        self._warn_once = WarnOnce(log)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            body, model, stream = await self._prepare(req)
        except OllamaError as exc:
            _send_error(resp, exc)
            return
        info = info_of(req)
        request_id = info.id if info is not None else None
        watcher = DisconnectWatcher(req.scope.get(RECEIVE_SCOPE_KEY))
        slot: Slot | None = None
        try:
            slot = await self._admission.acquire()
            if not stream:
                answer = await self._upstream.post_json(self._path, body, model=model, request_id=request_id)
                slot.release()
                watcher.stop()
                resp.status = answer.status
                resp.content_type = answer.headers.get("content-type", JSON)
                resp.data = answer.body
                return
            upstream_stream = await self._upstream.open_stream(
                self._path, body, model=model, request_id=request_id
            )
        except asyncio.CancelledError:
            if slot is not None:
                slot.release()
            if watcher.absorb_cancel():
                resp.status = 499
                return
            raise
        except OllamaError as exc:
            if slot is not None:
                slot.release()
            watcher.stop()
            _send_error(resp, exc)
            return
        except BaseException:
            if slot is not None:
                slot.release()
            watcher.stop()
            raise
        watcher.on_disconnect(upstream_stream.aclose)
        resp.content_type = upstream_stream.headers.get("content-type", "text/event-stream")
        resp.stream = self._relay(upstream_stream, watcher, info, slot)

    async def _prepare(self, req: falcon.asgi.Request) -> tuple[bytes, str, bool]:
        check_content_type(req.content_type)
        raw = await read_body(req, self._limits.max_body_bytes)
        body = parse_json(raw, self._limits)
        if not isinstance(body, dict):
            raise OllamaError(400, "request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise OllamaError(400, "you must provide a model parameter")
        entry = await self._catalog.resolve(model)
        note_model(req, entry)
        body["model"] = entry.upstream_id
        body = self._adapt_for_model(body, entry)
        return orjson.dumps(body), model, body.get("stream") is True

    def _adapt_for_model(self, body: dict[str, Any], entry: ModelEntry) -> dict[str, Any]:
        """What Ollama's /v1 accepts but the model refuses, dropped or renamed (translate/openai_adapt.py)."""
        if self._path not in ADAPTED_PATHS:
            return body
        adapted, changes = adapt_openai_body(body, entry.upstream_id, entry.facts, self._path)
        for change in changes:
            self._warn_once(
                f"{self._path} {change.describe()}",
                f"/v1/{self._path}: {change.describe()} for {entry.upstream_id}, which does not accept it "
                "(logged once per field)",
            )
        return adapted

    async def _relay(
        self, stream: UpstreamStream, watcher: DisconnectWatcher, info: RequestInfo | None, slot: Slot
    ) -> AsyncIterator[bytes]:
        first = True
        find_done = DoneFinder().feed
        chunks = stream.chunks()
        try:
            async for chunk in chunks:
                if first and info is not None:
                    info.first_chunk()
                    first = False
                end = find_done(chunk)
                if end >= 0:
                    # The [DONE] line, completed with the line ending the upstream uses, ends the answer.
                    yield chunk[:end] + (b"\r\n\r\n" if chunk.startswith(b"\r", end) else b"\n\n")
                    await drain_after_done(chunks)
                    break
                yield chunk
        except OllamaError as exc:
            if info is not None:
                info.outcome = CLIENT_GONE if watcher.disconnected else STREAM_ERROR
            if not watcher.disconnected:
                log.warning("/v1 stream failed after the first byte: %s", exc.message)
                yield b"data: " + openai_error(exc.status, exc.message) + b"\n\n"
        finally:
            await close_chunks(chunks)
            await end_stream(stream, watcher, slot, info)
