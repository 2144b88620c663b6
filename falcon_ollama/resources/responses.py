"""``POST /v1/responses``: the OpenAI Responses API, forwarded or translated to chat completions.

Forward mode (the backend serves the Responses API itself, as OpenAI does) passes the request on as
``/v1/chat/completions`` is passed on: alias resolved, our key, bytes relayed. Translate mode (llama.cpp,
vLLM, the bundled fake) turns the request into a chat completion and the answer back into a Response
object or its event stream. ``FALCON_OLLAMA_RESPONSES_MODE`` chooses (docs/configuration.md). Errors are
OpenAI error objects either way.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass, field

import falcon
import falcon.asgi
import orjson

from falcon_ollama.catalog import Catalog
from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.logs import WarnOnce
from falcon_ollama.requestlog import info_of
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.resources.format_fallback import with_format_fallback
from falcon_ollama.resources.openai_compat import read_model_request
from falcon_ollama.resources.upstream_call import ClientDisconnected, UpstreamCall, json_bytes
from falcon_ollama.translate.responses_request import responses_to_chat
from falcon_ollama.translate.responses_response import (
    ResponsesStreamTranslator,
    completion_to_response,
)
from falcon_ollama.translate.rules import RequestRules
from falcon_ollama.upstream import UpstreamError
from falcon_ollama.wire import JSON_CONTENT_TYPE

log = logging.getLogger("falcon_ollama.responses")

RESPONSES_MODES = ("auto", "translate", "forward")
_CHAT = "chat/completions"
_TYPES = {400: "invalid_request_error", 404: "not_found_error", 413: "invalid_request_error",
          429: "rate_limit_error", 503: "server_error"}  # fmt: skip


def forwards(mode: str, base_url: str) -> bool:
    """Whether ``/v1/responses`` is forwarded: ``forward``, or ``auto`` with OpenAI's own API as upstream."""
    if mode == "auto":
        return (urllib.parse.urlsplit(base_url).hostname or "").lower() == "api.openai.com"
    return mode == "forward"


def openai_error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> bytes:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


@dataclass(slots=True)
class ResponsesResource:
    """``POST /v1/responses`` in translate mode (forward mode is a ForwardResource, see app.py)."""

    catalog: Catalog
    call: UpstreamCall
    rules: RequestRules
    warn_once: WarnOnce = field(default_factory=lambda: WarnOnce(log))

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        try:
            await self._respond(req, resp)
        except ClientDisconnected:
            resp.status = 499
        except UpstreamError as exc:
            _send_upstream_error(resp, exc)
        except OllamaError as exc:
            code = "model_not_found" if exc.status == 404 else None
            _send(resp, exc.status, openai_error_body(exc.status, exc.message, code), exc.headers)
        except ProxyError as exc:
            status = status_of(exc)
            _send(resp, status, openai_error_body(status, exc.message), exc.headers)

    async def _respond(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body, name, entry = await read_model_request(req, self.rules.limits, self.catalog)
        plan = responses_to_chat(body, entry.facts, entry.upstream_id, self.rules)
        for dropped in plan.dropped:
            self.warn_once(dropped, f"/v1/responses: ignoring {dropped!r}, no chat completions equivalent")
        upstream_body = json_bytes(plan.body)
        # An upstream refusing json_schema (llama.cpp) gets the request again in JSON mode, as /api/chat does.
        if plan.stream:
            translator = ResponsesStreamTranslator(plan.shape(name))
            await with_format_fallback(
                plan,
                upstream_body,
                lambda b: self.call.stream(req, resp, _CHAT, b, model=name, translator=translator),
            )
            resp.set_header("Cache-Control", "no-cache")  # as Ollama's ResponsesMiddleware (and /v1/messages)
            return
        answer = await with_format_fallback(
            plan, upstream_body, lambda b: self.call.complete(req, _CHAT, b, model=name)
        )
        response = completion_to_response(answer.body, plan.shape(name))
        info = info_of(req)
        if info is not None and response.get("usage"):
            usage = response["usage"]
            if usage is not None:
                info.prompt_tokens, info.completion_tokens = usage["input_tokens"], usage["output_tokens"]
        resp.content_type = JSON_CONTENT_TYPE
        resp.data = orjson.dumps(response)


def _send(resp: falcon.asgi.Response, status: int, data: bytes, headers: dict[str, str]) -> None:
    resp.status = status
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = data
    for header, value in headers.items():
        resp.set_header(header, value)


def _send_upstream_error(resp: falcon.asgi.Response, error: UpstreamError) -> None:
    """The upstream's own OpenAI-shaped 4xx body goes on as is (never 401/403: it may echo our key)."""
    status = error.upstream_status or 0
    if 400 <= status < 500 and status not in (401, 403, 404) and error.raw_body:
        try:
            parsed = orjson.loads(error.raw_body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            _send(resp, status, error.raw_body, error.headers)
            return
    code = "model_not_found" if error.status == 404 else None
    _send(resp, error.status, openai_error_body(error.status, error.message, code), error.headers)
