"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: the Anthropic Messages API over chat completions.

Claude Code (``ANTHROPIC_BASE_URL``) and the ``anthropic`` SDK talk to these, as to Ollama's since v0.14.
The model name resolves through the catalog as on ``/api/chat``; the translation is pure
(``translate/anthropic_*``); the call goes through :class:`UpstreamCall`. Every error, ours or the
upstream's, is answered in Anthropic's shape with its status (our busy 503 is its 529 ``overloaded_error``).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

import falcon.asgi
import orjson

from falcon_ollama.catalog import Catalog, ModelEntry
from falcon_ollama.errors import InvalidRequest, OllamaError, ProxyError, Unsupported
from falcon_ollama.limits import Limits
from falcon_ollama.logs import WarnOnce
from falcon_ollama.requestlog import note_model
from falcon_ollama.resources.common import read_json_object
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.resources.upstream_call import ClientDisconnected, UpstreamCall, json_bytes
from falcon_ollama.running import RunningModels
from falcon_ollama.translate.anthropic_request import estimate_input_tokens, messages_to_openai, system_text
from falcon_ollama.translate.anthropic_response import (
    MessageStream,
    completion_to_message,
    error_body,
    error_type,
)
from falcon_ollama.upstream import UpstreamError
from falcon_ollama.wire import JSON_CONTENT_TYPE

log = logging.getLogger("falcon_ollama.anthropic")

_CHAT = "chat/completions"
_BUSY = 529  # Anthropic's "overloaded" status, for our admission queue's 503


@dataclass(frozen=True, slots=True)
class MessagesDeps:
    """What both routes need."""

    catalog: Catalog
    running: RunningModels
    call: UpstreamCall
    limits: Limits
    warn_once: WarnOnce
    keep_alive_default: float
    stream_usage: bool


class MessagesResource:
    """``POST /v1/messages``."""

    def __init__(self, deps: MessagesDeps) -> None:
        self._deps = deps

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        deps = self._deps
        try:
            body = await read_json_object(req, deps.limits)
            name, entry = await _resolve(req, deps.catalog, body)
            plan = messages_to_openai(
                body,
                entry.facts,
                entry.upstream_id,
                include_usage=deps.stream_usage,
                max_messages=deps.limits.max_messages,
                max_images=deps.limits.max_images,
                max_image_bytes=deps.limits.max_image_bytes,
                max_text_chars=deps.limits.max_text_chars,
            )
            for dropped in plan.dropped:
                deps.warn_once(
                    dropped,
                    f"/v1/messages: ignoring {dropped!r}: the upstream model has no equivalent (logged once)",
                )
            deps.running.touch(entry, deps.keep_alive_default)
            message_id = "msg_" + secrets.token_hex(12)
            upstream_body = json_bytes(plan.body)
            if plan.stream:
                # message_start carries input_tokens before the upstream has counted: the estimate.
                translator = MessageStream(
                    name, message_id, estimate_input_tokens(body), emit_thinking=plan.emit_thinking
                )
                await deps.call.stream(req, resp, _CHAT, upstream_body, model=name, translator=translator)
                resp.set_header("Cache-Control", "no-cache")
                return
            answer = await deps.call.complete(req, _CHAT, upstream_body, model=name)
            message = completion_to_message(answer.body, name, message_id, emit_thinking=plan.emit_thinking)
        except ClientDisconnected:
            resp.status = 499
            return
        except (OllamaError, ProxyError) as exc:
            send_error(resp, exc)
            return
        resp.content_type = JSON_CONTENT_TYPE
        resp.data = orjson.dumps(message)


class CountTokensResource:
    """``POST /v1/messages/count_tokens``: an estimate (``estimate_input_tokens``); backends cannot count."""

    def __init__(self, deps: MessagesDeps) -> None:
        self._deps = deps

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            body = await read_json_object(req, self._deps.limits)
            await _resolve(req, self._deps.catalog, body)
            messages = body.get("messages")
            if not isinstance(messages, list):
                raise InvalidRequest("messages: Field required (an array)")
            system_text(body.get("system"), "system")  # the same shape check as /v1/messages
        except (OllamaError, ProxyError) as exc:
            send_error(resp, exc)
            return
        resp.content_type = JSON_CONTENT_TYPE
        resp.data = orjson.dumps({"input_tokens": estimate_input_tokens(body)})


async def _resolve(
    req: falcon.asgi.Request, catalog: Catalog, body: dict[str, Any]
) -> tuple[str, ModelEntry]:
    name = body.get("model")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("model: Field required")
    entry = await catalog.resolve(name)
    note_model(req, entry)
    if entry.facts.is_embedding:
        raise Unsupported(f"model '{name}' does not support chat")
    return name, entry


def anthropic_status(exc: OllamaError | ProxyError) -> int:
    """The status an Anthropic client sees: ours, except the busy 503, which Anthropic calls 529."""
    status = exc.status if isinstance(exc, OllamaError) else status_of(exc)
    return _BUSY if status == 503 else status


def send_error(resp: falcon.asgi.Response, exc: OllamaError | ProxyError) -> None:
    """Any failure before the first byte, in Anthropic's shape (``retry-after`` kept on 429)."""
    status = anthropic_status(exc)
    resp.status = status
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = error_body(error_type(status), exc.message)
    for header, value in exc.headers.items():
        resp.set_header(header, value)
    if (
        isinstance(exc, UpstreamError)
        and exc.retry_after is not None
        and not any(h.lower() == "retry-after" for h in exc.headers)
    ):
        resp.set_header("Retry-After", str(max(1, round(exc.retry_after))))
