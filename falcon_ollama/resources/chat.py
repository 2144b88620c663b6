"""``POST /api/chat`` and ``POST /api/generate``: validate, resolve the model, translate, relay.

The order of checks follows Ollama's handlers: body, model name, model lookup (404), the load/unload reply
for an empty conversation, then the translation's own checks (capabilities, think, options).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import falcon
import falcon.asgi

from falcon_ollama.catalog import Catalog, ModelEntry
from falcon_ollama.errors import OllamaError, model_not_found
from falcon_ollama.logs import WarnOnce
from falcon_ollama.requestlog import note_model
from falcon_ollama.resources.common import model_field, read_json_object, send_json
from falcon_ollama.resources.relay import Relay
from falcon_ollama.running import RunningModels
from falcon_ollama.translate.chat_request import (
    ChatPlan,
    Common,
    check_chat,
    check_generate,
    check_raw,
    ollama_to_openai,
    parse_common,
)
from falcon_ollama.translate.chat_response import reply_chunk
from falcon_ollama.translate.rules import RequestRules


@dataclass(frozen=True, slots=True)
class CompletionDeps:
    """The collaborators and settings chat and generate share."""

    catalog: Catalog
    running: RunningModels
    relay: Relay
    warn_once: WarnOnce
    rules: RequestRules  # the input limits, and whether streams ask for usage
    keep_alive_default: float


class _Completion:
    """What chat and generate share: the load/unload reply, the warnings, the relay."""

    def __init__(self, deps: CompletionDeps) -> None:
        self._catalog = deps.catalog
        self._running = deps.running
        self._relay = deps.relay
        self._warn_once = deps.warn_once
        self._rules = deps.rules
        self._limits = deps.rules.limits
        self._keep_alive_default = deps.keep_alive_default

    def _load_reply(
        self,
        resp: falcon.asgi.Response,
        entry: ModelEntry,
        requested: str,
        keep_alive: float | None,
        *,
        chat: bool,
    ) -> None:
        """Ollama's reply to an empty conversation: the model is "loaded" ("unloaded" with keep_alive 0)."""
        self._touch(entry, keep_alive)  # keep_alive 0 unloads
        reason = "unload" if keep_alive == 0 else "load"
        payload = reply_chunk(requested, "chat" if chat else "generate")
        payload["done_reason"] = reason
        payload["done"] = True
        send_json(resp, payload)

    def _touch(self, entry: ModelEntry, keep_alive: float | None) -> None:
        """Record the use for /api/ps: the request's keep_alive, else the configured default."""
        self._running.touch(entry, self._keep_alive_default if keep_alive is None else keep_alive)

    async def _relay_translated(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        body: dict[str, Any],
        entry: ModelEntry,
        requested: str,
        kind: Literal["chat", "generate"],
        common: Common,
    ) -> None:
        """Translate the request, warn about what it drops, record the use, relay the answer."""
        plan = ollama_to_openai(kind, body, entry, requested, self._rules, common)
        self._warn_dropped(plan)
        self._touch(entry, plan.keep_alive)
        await self._relay.respond(req, resp, plan, model=requested, kind=kind)

    def _warn_dropped(self, plan: ChatPlan) -> None:
        for name in plan.dropped:
            option, _, reason = name.partition(" (")
            if reason.startswith("outside"):  # a value OpenAI refuses, brought inside its range
                text = f"option {option!r} {reason.rstrip(')')} (logged once)"
            elif reason:  # "stop (not supported by reasoning models)": the model refuses it, not the API
                text = f"ignoring {option!r} for this model: {reason.rstrip(')')} (logged once)"
            else:
                text = (
                    f"ignoring Ollama option {name!r}: it has no equivalent in the OpenAI API (logged once)"
                )
            self._warn_once(name, text)


class ChatResource(_Completion):
    """``POST /api/chat``."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json_object(req, self._limits)
        # Ollama decodes the fields (their types, keep_alive, think) and checks top_logprobs before the model
        common = parse_common(body)
        messages = body.get("messages")
        if messages is not None and not isinstance(messages, list):
            raise OllamaError(400, "invalid value for 'messages': expected an array")
        name = model_field(body)
        if not name:
            raise OllamaError(400, "model is required")
        entry = await self._catalog.resolve(name)
        note_model(req, entry)
        if not messages:
            if common.keep_alive != 0:  # Ollama unloads first; a load is refused as a chat would be
                check_chat(entry, name, common)
            self._load_reply(resp, entry, name, common.keep_alive, chat=True)
            return
        await self._relay_translated(req, resp, body, entry, name, "chat", common)


class GenerateResource(_Completion):
    """``POST /api/generate``."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.answer(req, resp, await read_json_object(req, self._limits))

    async def answer(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, body: dict[str, Any]
    ) -> None:
        """Answer a generate request already read (``/v1/completions`` comes here translated)."""
        # Ollama decodes the fields (their types, keep_alive, think) and checks top_logprobs before the model
        common = parse_common(body)
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise OllamaError(400, "invalid value for 'prompt': expected a string")
        name = model_field(body)
        if not name:
            raise model_not_found(name)  # Ollama's generate answers 404 "model '' not found" here
        entry = await self._catalog.resolve(name)
        note_model(req, entry)
        if not prompt and not body.get("suffix"):
            if common.keep_alive != 0:  # Ollama unloads first; a load is refused as a generate would be
                check_raw(body)
                check_generate(entry, name, common)
            self._load_reply(resp, entry, name, common.keep_alive, chat=False)
            return
        await self._relay_translated(req, resp, body, entry, name, "generate", common)
