"""The Ollama dialect of the upstream call: ``/api/chat`` and ``/api/generate`` answers, whole or streamed.

The way of a streamed answer: upstream bytes -> ``SSEDecoder`` (events) -> ``StreamTranslator`` (NDJSON
lines) -> one ASGI write per upstream read, through ``UpstreamCall`` (which owns the slot, the disconnect
watching and the end-of-stream bookkeeping). Nothing is buffered beyond the event being decoded and what
the translator keeps for the end (both bounded by FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon.asgi
import orjson

from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.logs import redact
from falcon_ollama.requestlog import info_of
from falcon_ollama.resources.common import send_json
from falcon_ollama.resources.format_fallback import with_format_fallback
from falcon_ollama.resources.upstream_call import ClientDisconnected, UpstreamCall
from falcon_ollama.translate.chat_request import ChatPlan
from falcon_ollama.translate.chat_response import Kind, ReplyShape, StreamTranslator, completion_to_ollama

log = logging.getLogger("falcon_ollama.relay")


class Relay:
    """Shared by ``/api/chat`` and ``/api/generate``: one per worker, built by ``create_app``."""

    def __init__(self, call: UpstreamCall, *, log_bodies: bool = False) -> None:
        self._call = call
        self._log_bodies = log_bodies

    async def respond(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        plan: ChatPlan,
        *,
        model: str,
        kind: Kind,
    ) -> None:
        started = time.monotonic_ns()
        body = orjson.dumps(plan.body)
        kind = "completions" if plan.path == "completions" else kind
        info = info_of(req)
        if self._log_bodies:
            fields = {"request_id": info.id if info is not None else None, "upstream_body": redact(plan.body)}
            log.info("upstream request body (FALCON_OLLAMA_LOG_BODIES)", extra={"fields": fields})
        shape = ReplyShape(
            model, kind, plan.emit_thinking, plan.logprobs, plan.prompt_chars, plan.history, started
        )
        try:
            if plan.stream:
                translator = StreamTranslator(shape, max_accumulated=self._call.max_accumulated)
                await with_format_fallback(
                    plan,
                    body,
                    lambda b: self._call.stream(req, resp, plan.path, b, model=model, translator=translator),
                )
                return
            answer = await with_format_fallback(
                plan, body, lambda b: self._call.complete(req, plan.path, b, model=model)
            )
        except ClientDisconnected:
            log.info("client disconnected before the upstream answered; request abandoned")
            resp.status = 499
            return
        out = self._translate_answer(answer.body, shape)
        if info is not None:
            info.prompt_tokens = out.get("prompt_eval_count")
            info.completion_tokens = out.get("eval_count")
        send_json(resp, out)

    def _translate_answer(self, body: bytes, shape: ReplyShape) -> dict[str, Any]:
        """completion_to_ollama, with the upstream's own words in an error (``200 {"error": …}``) redacted."""
        try:
            return completion_to_ollama(body, shape)
        except OllamaError as exc:
            raise OllamaError(exc.status, self._call.redact(exc.message), exc.headers) from None
        except ProxyError as exc:
            raise type(exc)(self._call.redact(exc.message), exc.headers) from None
