"""``POST /v1/completions``: served by ``/api/generate``'s path, as Ollama's CompletionsMiddleware serves it.

The OpenAI request becomes a generate request (translate/completions.py), ``/api/generate`` answers it, and
its replies (whole, streamed, or the load reply of an empty prompt) are rewritten as ``text_completion``
objects and SSE events; errors take OpenAI's shape. A model nothing describes (its backend's rules unknown: a
base model on vLLM or llama.cpp, say) is forwarded unchanged, as before, like every /v1 body for such a model.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator

import falcon.asgi
import orjson

from falcon_ollama.catalog import Catalog
from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.limits import Limits
from falcon_ollama.requestlog import note_model
from falcon_ollama.resources.chat import GenerateResource
from falcon_ollama.resources.common import read_json_object
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.resources.openai_compat import ForwardResource
from falcon_ollama.translate.chat_request import parse_common
from falcon_ollama.translate.completions import CompletionReplies, completion_to_generate
from falcon_ollama.wire import JSON_CONTENT_TYPE, SSE_CONTENT_TYPE, openai_error


class CompletionsResource:
    """``POST /v1/completions`` for every model, through the generate resource."""

    def __init__(
        self, generate: GenerateResource, forward: ForwardResource, catalog: Catalog, limits: Limits
    ) -> None:
        self._generate = generate
        self._forward = forward
        self._catalog = catalog
        self._limits = limits

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            body = await read_json_object(req, self._limits)
            request = completion_to_generate(body)
            parse_common(request)  # the generate request's own checks come before the model, as in Ollama
            model = body.get("model")
            if isinstance(model, str) and model:
                entry = await self._catalog.resolve(model)
                if not entry.facts.known:
                    note_model(req, entry)
                    await self._forward.forward(req, resp, body, model, entry)
                    return
            await self._generate.answer(req, resp, request)
        except OllamaError as exc:
            _send_error(resp, exc.status, exc.message, exc.headers)
            return
        except ProxyError as exc:
            _send_error(resp, status_of(exc), exc.message, exc.headers)
            return
        if resp.status != falcon.HTTP_200 and resp.status != 200:
            return  # 499: the client left before the answer started
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        completion_id = f"cmpl-{secrets.token_hex(12)}"
        replies = CompletionReplies(completion_id, int(time.time()), include_usage=include_usage)
        if isinstance(resp.stream, AsyncIterator):  # the relay's stream (an async generator)
            resp.content_type = SSE_CONTENT_TYPE
            resp.stream = _events(resp.stream, replies)
        elif isinstance(resp.data, bytes) and request["stream"]:  # the load reply, asked as a stream
            resp.content_type = SSE_CONTENT_TYPE
            resp.data = replies.events(resp.data)
        elif isinstance(resp.data, bytes):
            resp.data = orjson.dumps(replies.answer(orjson.loads(resp.data)))


async def _events(lines: AsyncIterator[bytes], replies: CompletionReplies) -> AsyncIterator[bytes]:
    """The generate stream's NDJSON (whole lines per chunk) as completion events; the generate stream is
    closed however this one ends (its owner frees the upstream connection and the slot then)."""
    try:
        async for chunk in lines:
            out = replies.events(chunk)
            if out:
                yield out
    finally:
        if isinstance(lines, AsyncGenerator):
            await lines.aclose()


def _send_error(resp: falcon.asgi.Response, status: int, message: str, headers: dict[str, str]) -> None:
    resp.status = status
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = openai_error(status, message)
    for name, value in headers.items():
        resp.set_header(name, value)
