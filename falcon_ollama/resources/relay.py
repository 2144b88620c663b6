"""Sends a translated request upstream and relays the answer to the client, chunk by chunk.

The way of a streamed answer: upstream bytes -> ``SSEDecoder`` (events) -> ``StreamTranslator`` (NDJSON
lines) -> one ASGI write per upstream read. Nothing is buffered beyond the event being decoded and what the
translator keeps for the end (both bounded by FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES). Every line
translated before a failure is written before the error line, however the upstream's bytes were framed.
``data: [DONE]`` ends the answer: nothing after it is relayed, and an upstream that holds the connection
open after it is given a moment to end the body (so the connection can be reused), then cut.

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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import falcon.asgi
import orjson

from falcon_ollama.admission import Admission, Slot
from falcon_ollama.errors import OllamaError
from falcon_ollama.logs import redact
from falcon_ollama.requestlog import RequestInfo, info_of
from falcon_ollama.resources.common import send_json
from falcon_ollama.resources.format_fallback import with_format_fallback
from falcon_ollama.sse import MAX_STREAM_ACCUMULATED_BYTES, SSEDecoder, SSEError
from falcon_ollama.translate.chat_request import ChatPlan
from falcon_ollama.translate.chat_response import Kind, StreamTranslator, completion_to_ollama
from falcon_ollama.upstream import Upstream, UpstreamError, UpstreamStream
from falcon_ollama.wire import NDJSON_CONTENT_TYPE, error_body

log = logging.getLogger("falcon_ollama.relay")

RECEIVE_SCOPE_KEY = "falcon_ollama.receive"
# After [DONE]: how long, and how many bytes, the upstream may still take to end its body. A well-behaved one
# ends it at once (its connection then goes back to the pool); one that does not is cut when either runs out.
DRAIN_AFTER_DONE_SECONDS = 1.0
DRAIN_AFTER_DONE_BYTES = 64 * 1024
# The metrics status of a stream that ended with an error line after its 200 went out, and of one whose
# client left mid-stream (as before the answer started).
STREAM_ERROR = "stream_error"
CLIENT_GONE = "499"


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


async def drain_after_done(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` for a moment, discarding it: the end of the body, from a well-behaved
    upstream, which lets aiohttp return the connection to its pool; nothing more is waited for."""
    received = 0
    try:
        async with asyncio.timeout(DRAIN_AFTER_DONE_SECONDS):
            async for chunk in chunks:
                received += len(chunk)
                if received > DRAIN_AFTER_DONE_BYTES:
                    break
    except (TimeoutError, OllamaError):
        pass
    if received:
        log.info("the upstream sent %d bytes after [DONE]; ignored", received)


async def close_chunks(chunks: AsyncIterator[bytes]) -> None:
    """Finish the chunk generator now (rather than whenever it is collected) if it was left part-way."""
    if isinstance(chunks, AsyncGenerator):
        await chunks.aclose()


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

    def __init__(
        self,
        upstream: Upstream,
        admission: Admission,
        *,
        log_bodies: bool = False,
        max_accumulated: int = MAX_STREAM_ACCUMULATED_BYTES,
    ) -> None:
        self._upstream = upstream
        self._admission = admission
        self._log_bodies = log_bodies
        self._max_accumulated = max_accumulated

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
                answer = await with_format_fallback(
                    plan,
                    body,
                    lambda b: self._upstream.post_json(plan.path, b, model=model, request_id=request_id),
                )
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
            stream = await with_format_fallback(
                plan,
                body,
                lambda b: self._upstream.open_stream(plan.path, b, model=model, request_id=request_id),
            )
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
            max_accumulated=self._max_accumulated,
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
        decoder = SSEDecoder(self._max_accumulated)
        decode, translate = decoder.feed, translator.feed
        first = True
        chunks = stream.chunks()
        # Lines translated from one read, not yet written: if a later event of that read fails, they are
        # written before the error line, so what reaches the client does not depend on the framing.
        pending: list[bytes] = []
        try:
            async for chunk in chunks:
                payloads = decode(chunk)
                # Usually one event per read (tokens arrive one by one): no list or join for it.
                if len(payloads) == 1:
                    out = translate(payloads[0])
                else:
                    for payload in payloads:
                        pending.append(translate(payload))
                        if translator.saw_done:
                            break
                    out = b"".join(pending)
                    pending.clear()
                if out:
                    if first and info is not None:
                        info.first_chunk()
                        first = False
                    yield out
                if translator.saw_done:
                    break
            else:
                for payload in decoder.flush():
                    pending.append(translate(payload))
                    if translator.saw_done:
                        break
            pending.append(translator.finish())
            out = b"".join(pending)
            pending.clear()
            yield out
            if info is not None:
                info.prompt_tokens, info.completion_tokens = translator.counts()
            if translator.saw_done:
                await drain_after_done(chunks)
        except (OllamaError, SSEError) as exc:
            if watcher.disconnected:
                log.info("client disconnected mid-stream; upstream request cancelled")
                if info is not None:
                    info.outcome = CLIENT_GONE
                return
            if pending:
                yield b"".join(pending)
            message = self._upstream.redactor.text(
                exc.message if isinstance(exc, OllamaError) else f"the upstream stream is invalid: {exc}"
            )
            log.warning("stream failed after the first byte: %s", message)
            if info is not None:
                info.outcome = STREAM_ERROR
            yield error_body(message) + b"\n"
        finally:
            await close_chunks(chunks)
            await end_stream(stream, watcher, slot, info)
