"""Sends a translated request upstream and relays the answer to the client, chunk by chunk.

The way of a streamed answer: upstream bytes -> ``SSEDecoder`` (events) -> ``StreamTranslator`` (NDJSON
lines) -> one ASGI write per upstream read. Nothing is buffered beyond the event being decoded.

Client disconnects: uvicorn's ``send`` silently does nothing once the client is gone, so without help we
would keep reading (and paying for) tokens nobody reads. A watcher task waits on ASGI ``receive`` for
``http.disconnect``. Before the response starts it cancels the request (the upstream call in progress,
or the back-off sleep between retries, is abandoned and its connection closed); once streaming, it closes
the upstream connection, which ends the relay's pending read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import falcon.asgi
import orjson

from falcon_ollama.admission import Admission, Slot
from falcon_ollama.errors import OllamaError
from falcon_ollama.logs import redact
from falcon_ollama.requestlog import RequestInfo, info_of
from falcon_ollama.resources.common import send_json
from falcon_ollama.sse import SSEDecoder, SSEError
from falcon_ollama.translate.chat_request import ChatPlan
from falcon_ollama.translate.chat_response import Kind, StreamTranslator, completion_to_ollama
from falcon_ollama.upstream import Upstream, UpstreamError, UpstreamStream
from falcon_ollama.wire import NDJSON_CONTENT_TYPE, error_body

log = logging.getLogger("falcon_ollama.relay")

RECEIVE_SCOPE_KEY = "falcon_ollama.receive"


class ClientGone(Exception):
    """The client disconnected before the response started; nothing more to do."""


class DisconnectWatcher:
    """Watches ASGI ``receive`` for ``http.disconnect`` while the request body has been read."""

    __slots__ = ("_on_disconnect", "_target", "_watch", "disconnected")

    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]] | None) -> None:
        self.disconnected = False
        self._target = asyncio.current_task()
        self._on_disconnect: Callable[[], Awaitable[None]] | None = None
        self._watch = asyncio.get_running_loop().create_task(self._run(receive)) if receive else None

    async def _run(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                break
        self.disconnected = True
        if self._on_disconnect is not None:
            await self._on_disconnect()
        elif self._target is not None:
            self._target.cancel()

    def on_disconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """From now on, a disconnect runs ``callback`` instead of cancelling the request task."""
        self._on_disconnect = callback

    def stop(self) -> None:
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()

    def absorb_cancel(self) -> bool:
        """After a CancelledError: True (and the cancel undone) if it was our own, for a gone client.

        The request then ends normally, so uvicorn logs no "Exception in ASGI application"."""
        task = asyncio.current_task()
        if self.disconnected and task is not None and task.cancelling():
            task.uncancel()
            return True
        return False


async def end_stream(
    stream: UpstreamStream, watcher: DisconnectWatcher, slot: Slot, info: RequestInfo | None
) -> None:
    """What a stream's owner owes at its end, whichever way it ends: stop watching the client, drop the
    upstream connection if it was not read to the end, free the admission slot, write the summary."""
    watcher.stop()
    with contextlib.suppress(Exception):
        await stream.aclose()
    slot.release()
    if info is not None:
        info.finish()


class Relay:
    """Shared by ``/api/chat`` and ``/api/generate``: one per worker, built by ``create_app``."""

    def __init__(self, upstream: Upstream, admission: Admission, *, log_bodies: bool = False) -> None:
        self._upstream = upstream
        self._admission = admission
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
        request_id = info.id if info is not None else None
        if self._log_bodies:
            fields = {"request_id": request_id, "upstream_body": redact(plan.body)}
            log.info("upstream request body (FALCON_OLLAMA_LOG_BODIES)", extra={"fields": fields})
        watcher = DisconnectWatcher(req.scope.get(RECEIVE_SCOPE_KEY))
        slot: Slot | None = None
        try:
            slot = await self._admission.acquire()
            if not plan.stream:
                answer = await self._upstream.post_json(plan.path, body, model=model, request_id=request_id)
                slot.release()
                watcher.stop()
                out = self._translate_answer(
                    answer.body,
                    model=model,
                    kind=kind,
                    emit_thinking=plan.emit_thinking,
                    logprobs=plan.logprobs,
                    started_ns=started,
                    prompt_chars=plan.prompt_chars,
                    history=plan.history,
                )
                if info is not None:
                    info.upstream_status = answer.status
                    info.prompt_tokens = out.get("prompt_eval_count")
                    info.completion_tokens = out.get("eval_count")
                send_json(resp, out)
                return
            stream = await self._upstream.open_stream(plan.path, body, model=model, request_id=request_id)
        except asyncio.CancelledError:
            if slot is not None:
                slot.release()
            if watcher.absorb_cancel():
                log.info("client disconnected before the upstream answered; request abandoned")
                resp.status = 499
                return
            raise
        except BaseException as exc:
            if slot is not None:
                slot.release()
            watcher.stop()
            if isinstance(exc, UpstreamError) and info is not None:
                info.upstream_status = exc.upstream_status
            raise
        watcher.on_disconnect(stream.aclose)
        translator = StreamTranslator(
            model=model,
            kind=kind,
            emit_thinking=plan.emit_thinking,
            logprobs=plan.logprobs,
            started_ns=started,
            prompt_chars=plan.prompt_chars,
            history=plan.history,
        )
        if info is not None:
            info.upstream_status = stream.status
        resp.content_type = NDJSON_CONTENT_TYPE
        resp.stream = self._relay(stream, translator, watcher, info, slot)

    def _translate_answer(self, body: bytes, **kwargs: Any) -> dict[str, Any]:
        """completion_to_ollama, with the upstream's own words in an error (``200 {"error": …}``) redacted."""
        try:
            return completion_to_ollama(body, **kwargs)
        except OllamaError as exc:
            raise OllamaError(exc.status, self._upstream.redactor.text(exc.message), exc.headers) from None

    async def _relay(
        self,
        stream: UpstreamStream,
        translator: StreamTranslator,
        watcher: DisconnectWatcher,
        info: RequestInfo | None,
        slot: Slot,
    ) -> AsyncIterator[bytes]:
        decoder = SSEDecoder()
        decode, translate = decoder.feed, translator.feed
        first = True
        try:
            async for chunk in stream.chunks():
                payloads = decode(chunk)
                # Usually one event per read (tokens arrive one by one): no list or join for it.
                if len(payloads) == 1:
                    out = translate(payloads[0])
                else:
                    out = b"".join([translate(payload) for payload in payloads])
                if out:
                    if first and info is not None:
                        info.first_chunk()
                        first = False
                    yield out
            lines = [translator.feed(payload) for payload in decoder.flush()]
            yield b"".join(lines) + translator.finish()
            if info is not None:
                info.prompt_tokens, info.completion_tokens = translator.counts()
        except (OllamaError, SSEError) as exc:
            if watcher.disconnected:
                log.info("client disconnected mid-stream; upstream request cancelled")
                return
            message = self._upstream.redactor.text(
                exc.message if isinstance(exc, OllamaError) else f"the upstream stream is invalid: {exc}"
            )
            log.warning("stream failed after the first byte: %s", message)
            yield error_body(message) + b"\n"
        finally:
            await end_stream(stream, watcher, slot, info)
