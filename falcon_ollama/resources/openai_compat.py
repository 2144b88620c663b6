"""The OpenAI-compatible routes a real Ollama also serves under ``/v1``.

Some of the most common clients (GitHub Copilot's Ollama provider, Open WebUI, Continue) discover models
through ``/api/tags`` and ``/api/show`` and then talk OpenAI to ``/v1``. These routes forward to the upstream:
the ``model`` field resolved through the catalog (aliases, ``:latest``), our upstream key instead of
whatever the client sent, everything else passed through untouched; streamed answers are relayed byte for
byte as they arrive, never parsed, up to the end of the ``data: [DONE]`` event (found by ``DoneFinder``
without decoding the events): nothing after it is relayed and the response ends there. Errors keep OpenAI's
shape here; the upstream's own 4xx error bodies
(with their ``code`` and ``param``) are passed on, except for a rejected key, which is never echoed.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
import orjson

from falcon_ollama.catalog import Catalog, ModelEntry
from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.limits import Limits
from falcon_ollama.logs import WarnOnce
from falcon_ollama.requestlog import note_model
from falcon_ollama.resources.common import read_json_object
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.resources.upstream_call import ClientDisconnected, ErrorFrame, UpstreamCall
from falcon_ollama.translate.embed import shorten_embeddings, split_dimensions
from falcon_ollama.translate.models import newest_first
from falcon_ollama.translate.openai_adapt import ADAPTED_PATHS, RESPONSES_PATH, adapt_openai_body
from falcon_ollama.translate.responses_request import echo_fields
from falcon_ollama.translate.responses_response import StreamMarks, failed_event
from falcon_ollama.upstream import UpstreamError
from falcon_ollama.wire import JSON_CONTENT_TYPE, openai_error

log = logging.getLogger("falcon_ollama.openai_compat")
EMBEDDINGS_PATH = "embeddings"


def _send_error(resp: falcon.asgi.Response, error: OllamaError) -> None:
    if isinstance(error, UpstreamError) and _passable(error):
        resp.status = error.upstream_status or error.status
        resp.data = error.raw_body
    else:
        resp.status = error.status
        resp.data = openai_error(error.status, error.message)
    resp.content_type = JSON_CONTENT_TYPE
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
        resp.content_type = JSON_CONTENT_TYPE
        resp.data = orjson.dumps(
            {
                "object": "list",
                "data": [model_object(e, self._started_at) for e in newest_first(entries, self._started_at)],
            }
        )


class ModelResource:
    """``GET /v1/models/{model}``."""

    def __init__(self, catalog: Catalog, started_at: float) -> None:
        self._catalog = catalog
        self._started_at = started_at

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str) -> None:
        try:
            entry = await self._catalog.resolve(model)
        except OllamaError as exc:
            _send_error(resp, exc)
            return
        resp.content_type = JSON_CONTENT_TYPE
        resp.data = orjson.dumps(model_object(entry, self._started_at, asked_as=model))


async def read_model_request(
    req: falcon.asgi.Request, limits: Limits, catalog: Catalog
) -> tuple[dict[str, Any], str, ModelEntry]:
    """An OpenAI-style body within ``limits``, its ``model`` (as sent) and the catalog's entry for it."""
    body = await read_json_object(req, limits)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OllamaError(400, "you must provide a model parameter")
    entry = await catalog.resolve(model)
    note_model(req, entry)
    return body, model, entry


class ForwardResource:
    """``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``: forwarded to the upstream."""

    def __init__(self, path: str, catalog: Catalog, call: UpstreamCall, limits: Limits) -> None:
        self._path = path
        self._catalog = catalog
        self._call = call
        self._limits = limits
        self._warn_once = WarnOnce(log)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            body, model, entry = await read_model_request(req, self._limits, self._catalog)
        except OllamaError as exc:
            _send_error(resp, exc)
            return
        await self.forward(req, resp, body, model, entry)

    async def forward(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        body: dict[str, Any],
        model: str,
        entry: ModelEntry,
    ) -> None:
        """Forward a body already read, its model resolved to ``entry``."""
        # /v1/embeddings: vectors shortened here for a model that cannot do it itself, as Ollama does
        cut = None
        if self._path == EMBEDDINGS_PATH:
            cut = split_dimensions(body, entry.upstream_id, entry.facts.embedding_length)
        try:
            sent, stream, error_frame = self._prepare(body, model, entry)
            if stream:
                await self._call.stream(req, resp, self._path, sent, model=model, error_frame=error_frame)
                if self._path == RESPONSES_PATH:
                    # Ollama's ResponsesMiddleware sets it (its /v1/chat/completions stream does not).
                    resp.set_header("Cache-Control", "no-cache")
                return
            answer = await self._call.complete(req, self._path, sent, model=model)
        except ClientDisconnected:
            resp.status = 499
            return
        except OllamaError as exc:
            _send_error(resp, exc)
            return
        resp.status = answer.status
        resp.content_type = answer.headers.get("content-type", JSON_CONTENT_TYPE)
        resp.data = answer.body
        if cut is not None:
            try:
                resp.data = shorten_embeddings(answer.body, cut)
            except ProxyError as exc:
                resp.status = status_of(exc)
                resp.data = openai_error(resp.status, exc.message)

    def _prepare(self, body: dict[str, Any], model: str, entry: ModelEntry) -> tuple[bytes, bool, ErrorFrame]:
        """The one place the /v1 body is prepared: the model's upstream id, adapted, re-encoded; with the
        framing of a failure mid-stream in the route's dialect."""
        frame = _ResponsesFailed(model, echo_fields(body)) if self._path == RESPONSES_PATH else _error_event
        body["model"] = entry.upstream_id
        body = self._adapt_for_model(body, entry)
        return orjson.dumps(body), body.get("stream") is True, frame

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


class _ResponsesFailed:
    """A failure after the first byte of a forwarded /v1/responses stream: a ``response.failed`` event, as
    the Responses API (and our translate mode) ends a stream, not the chat completions error line; with the
    upstream's response id and next sequence number, read from the bytes the relay passed on (``observe``)."""

    __slots__ = ("_echo", "_marks", "_model", "observe")

    def __init__(self, model: str, echo: dict[str, Any]) -> None:
        self._model = model
        self._echo = echo
        self._marks = StreamMarks()
        self.observe = self._marks.observe

    def __call__(self, status: int, message: str) -> bytes:
        marks = self._marks
        return failed_event(
            self._model, self._echo, message, response_id=marks.response_id, sequence=marks.sequence + 1
        )


def _error_event(status: int, message: str) -> bytes:
    """A failure after the first byte of a /v1 stream: OpenAI's error object as one SSE event."""
    return b"data: " + openai_error(status, message) + b"\n\n"
