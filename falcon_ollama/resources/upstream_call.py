"""The one way every route calls the upstream: admission, disconnect watching, request id, relaying.

The Ollama relay (``/api/chat``, ``/api/generate``), the ``/v1`` forward, embeddings and the dialect
resources (Anthropic Messages, OpenAI Responses) all go through :class:`UpstreamCall`. A call holds an
admission slot and watches the client from the moment it is admitted; the upstream's status is recorded for
the request log. Failures before the first byte are raised (``UpstreamError``/``OllamaError``/``ProxyError``)
for the resource to render in its own dialect; a client gone before the answer started is
:class:`ClientDisconnected` (answered 499).

A stream is relayed by one of two strategies: translated (SSE events -> a
:class:`~falcon_ollama.translate.dialect.StreamTranslator`, one write per upstream read) or bytes unchanged up
to the end of ``data: [DONE]`` (``/v1`` forward, found by ``DoneFinder`` without decoding). Both share the
end-of-stream bookkeeping: ``[DONE]`` ends the answer (what follows is drained for a moment so the connection
can be reused, then cut), a failure after the first byte is framed by the dialect with the upstream's words
redacted, and the slot, connection, watcher and summary line are released whichever way the stream ends.

Client disconnects: uvicorn's ``send`` silently does nothing once the client is gone, so without help we
would keep reading (and paying for) tokens nobody reads. The watcher hears of it from the request's
``GoneSignal`` (client_gone.py: our protocol fires it, no task per request), or under another server from a
task awaiting ASGI ``receive`` for ``http.disconnect``. Before the response starts it cancels the request
(the upstream call in progress, or the back-off sleep between retries, is abandoned and its connection
closed); once streaming, it closes the upstream connection, which ends the relay's pending read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import falcon.asgi
import orjson

from falcon_ollama import memory_budget
from falcon_ollama.admission import Admission, Slot
from falcon_ollama.backends import current_route
from falcon_ollama.client_gone import SCOPE_KEY as GONE_SCOPE_KEY
from falcon_ollama.client_gone import GoneSignal
from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.requestlog import info_of
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.sse import MAX_STREAM_ACCUMULATED_BYTES, DoneFinder, SSEDecoder, SSEError
from falcon_ollama.translate.chat_to_responses import (
    ResponsesAnswerError,
    ResponsesStreamToChat,
    chat_to_responses,
    response_to_chat,
)
from falcon_ollama.translate.dialect import StreamTranslator
from falcon_ollama.translate.openai_adapt import CHAT_PATH
from falcon_ollama.translate.output_cap import cap_from_refusal, within_cap
from falcon_ollama.upstream import Upstream, UpstreamError, UpstreamResponse, UpstreamStream
from falcon_ollama.upstreams import Upstreams

log = logging.getLogger("falcon_ollama.upstream_call")

RECEIVE_SCOPE_KEY = "falcon_ollama.receive"
# After [DONE]: how long, and how many bytes, the upstream may still take to end its body. A well-behaved one
# ends it at once (its connection then goes back to the pool); one that does not is cut when either runs out.
DRAIN_AFTER_DONE_SECONDS = 1.0
DRAIN_AFTER_DONE_BYTES = 64 * 1024
# The metrics status of a stream that ended with an error line after its 200 went out, and of one whose
# client left mid-stream (as before the answer started).
STREAM_ERROR = "stream_error"
CLIENT_GONE = "499"
DONE = b"[DONE]"

_Answer = TypeVar("_Answer", UpstreamResponse, "OpenStream")
# A dialect's in-stream error framing for a failure after the first byte (``/v1`` forward: an SSE event).
ErrorFrame = Callable[[int, str], bytes]


class ClientDisconnected(Exception):
    """The client left before the upstream answered; the resource answers nothing more (status 499)."""


class DisconnectWatcher:
    """Watches for the client's going while the request body has been read: through the request's
    :class:`~falcon_ollama.client_gone.GoneSignal` (our protocol's, no task), else a task awaiting ASGI
    ``receive`` for ``http.disconnect`` (another server)."""

    __slots__ = ("_closing", "_gone", "_on_disconnect", "_target", "_watch", "disconnected")

    def __init__(
        self,
        receive: Callable[[], Awaitable[dict[str, Any]]] | None,
        gone: GoneSignal | None = None,
    ) -> None:
        self.disconnected = False
        self._target = asyncio.current_task()
        self._on_disconnect: Callable[[], Awaitable[None]] | None = None
        self._closing: asyncio.Task[None] | None = None  # the on_disconnect callback, run for a signal
        self._gone = gone
        self._watch: asyncio.Task[None] | None = None
        if gone is not None:
            gone.watch(self._signalled)
        elif receive is not None:
            self._watch = asyncio.get_running_loop().create_task(self._run(receive))

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

    def _signalled(self) -> None:
        self.disconnected = True
        if self._on_disconnect is not None:
            self._closing = asyncio.ensure_future(self._on_disconnect())
        elif self._target is not None:
            self._target.cancel()

    def on_disconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """From now on, a disconnect runs ``callback`` instead of cancelling the request task."""
        self._on_disconnect = callback

    def stop(self) -> None:
        if self._gone is not None:
            self._gone.unwatch()
        elif self._watch is not None and not self._watch.done():
            self._watch.cancel()

    def absorb_cancel(self) -> bool:
        """After a CancelledError: True (and the cancel undone) if it was our own, for a gone client.

        The request then ends normally, so uvicorn logs no "Exception in ASGI application"."""
        task = asyncio.current_task()
        if self.disconnected and task is not None and task.cancelling():
            task.uncancel()
            return True
        return False


class Session:
    """One request's admitted hold on the upstream: its slot, its disconnect watcher, its request id.

    Each call goes along the route the catalog recorded when it resolved the request's model
    (falcon_ollama/backends.py): that model's backend, or an alias's fallback chain (upstreams.py). Each
    try speaks its own backend's dialect (a chat completions request to a ``responses`` backend is
    translated there and back: :func:`dialect_post`, :func:`dialect_open`)."""

    __slots__ = ("_caps", "_upstreams", "handed_over", "info", "max_event", "slot", "watcher")

    def __init__(
        self,
        req: falcon.asgi.Request,
        upstreams: Upstreams,
        max_event: int = MAX_STREAM_ACCUMULATED_BYTES,
        caps: OutputCaps | None = None,
    ) -> None:
        self._upstreams = upstreams
        self._caps = caps if caps is not None else OutputCaps()
        self.max_event = max_event  # the SSE event bound, for a stream translated from another dialect
        self.info = info_of(req)
        scope = req.scope
        self.watcher = DisconnectWatcher(scope.get(RECEIVE_SCOPE_KEY), scope.get(GONE_SCOPE_KEY))
        self.slot: Slot | None = None
        self.handed_over = False  # a stream's relay owns the slot and the watcher now

    @property
    def request_id(self) -> str | None:
        return self.info.id if self.info is not None else None

    async def post(self, path: str, body: bytes, *, model: str) -> UpstreamResponse:
        """POST ``body`` and read the whole answer (the upstream's retries and the route's fallbacks
        included)."""
        rid = self.request_id
        as_chat = path == CHAT_PATH  # a chat completions request: a responses backend is asked in its dialect

        def attempt(upstream: Upstream, sent: bytes, retries: bool) -> Awaitable[UpstreamResponse]:
            self._note_backend(upstream)
            if as_chat and upstream.dialect == "responses":
                return dialect_post(upstream, sent, model, rid, retries)
            return upstream.post_json(path, sent, model=model, request_id=rid, retries=retries)

        return await self._noted(self._upstreams.send(current_route(), body, self._caps.wrap(attempt, model)))

    async def open(self, path: str, body: bytes, *, model: str) -> OpenStream:
        """Open a stream; from here a client disconnect closes its connection (ending the relay's read)."""
        rid = self.request_id
        as_chat = path == CHAT_PATH  # a chat completions request: a responses backend is asked in its dialect
        max_event = self.max_event

        def attempt(upstream: Upstream, sent: bytes, retries: bool) -> Awaitable[OpenStream]:
            self._note_backend(upstream)
            if as_chat and upstream.dialect == "responses":
                return dialect_open(upstream, sent, model, rid, retries, max_event)
            return upstream.open_stream(path, sent, model=model, request_id=rid, retries=retries)

        stream = await self._noted(
            self._upstreams.send(current_route(), body, self._caps.wrap(attempt, model))
        )
        self.watcher.on_disconnect(stream.aclose)
        return stream

    def _note_backend(self, upstream: Upstream) -> None:
        if self.info is not None:
            self.info.backend = upstream.name

    async def _noted(self, call: Awaitable[_Answer]) -> _Answer:
        """``call``'s result, with the upstream's status (or its error's) noted for the request log."""
        try:
            answer = await call
        except UpstreamError as exc:
            if self.info is not None:
                self.info.upstream_status = exc.upstream_status
            raise
        if self.info is not None:
            self.info.upstream_status = answer.status
        return answer

    def release(self) -> None:
        self.watcher.stop()
        if self.slot is not None:
            self.slot.release()
            self.slot = None


class OutputCaps:
    """Models' own completion limits, learnt per worker from upstream refusals of a larger one
    (translate/output_cap.py): a refused request is asked once more within the limit, and later requests for
    that model are brought within it before they are sent (a parse of the body, for those models only)."""

    __slots__ = ("_caps",)

    MAX_MODELS = 1024  # learnt limits kept per worker; all forgotten when full (they are learnt again)

    def __init__(self) -> None:
        self._caps: dict[tuple[str, str], int] = {}

    def wrap(
        self, attempt: Callable[[Upstream, bytes, bool], Awaitable[_Answer]], model: str
    ) -> Callable[[Upstream, bytes, bool], Awaitable[_Answer]]:
        caps = self._caps

        async def capped(upstream: Upstream, sent: bytes, retries: bool) -> _Answer:
            key = (upstream.name, model)
            cap = caps.get(key)
            if cap is not None:
                sent = within_cap(sent, cap) or sent
            try:
                return await attempt(upstream, sent, retries)
            except UpstreamError as exc:
                cap = cap_from_refusal(exc.raw_body) if exc.upstream_status == 400 else None
                smaller = within_cap(sent, cap) if cap is not None else None
                if cap is None or smaller is None:
                    raise
                if len(caps) >= self.MAX_MODELS:
                    caps.clear()
                caps[key] = cap
                log.warning(
                    "the upstream %s takes at most %d completion tokens for %s: asked again within it, "
                    "and so will later requests be",
                    upstream.name,
                    cap,
                    model,
                )
            return await attempt(upstream, smaller, retries)

        return capped


class Admitted:
    """``async with``: the session's admission slot held, and its watcher running, until the block ends
    (a plain class: cheaper per request than a generator-based context manager)."""

    __slots__ = ("_admission", "_session")

    def __init__(self, session: Session, admission: Admission) -> None:
        self._session = session
        self._admission = admission

    async def __aenter__(self) -> Session:
        session = self._session
        admission = self._admission
        try:
            session.slot = admission.try_acquire() or await admission.acquire()
        except BaseException as exc:
            self._end(type(exc))
            raise
        return session

    async def __aexit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        self._end(kind)

    def _end(self, kind: type[BaseException] | None) -> None:
        session = self._session
        if not session.handed_over:
            session.release()
        if kind is asyncio.CancelledError and session.watcher.absorb_cancel():
            raise ClientDisconnected from None


class UpstreamCall:
    """Shared by every route that calls the upstream; one per worker, built by ``create_app``."""

    def __init__(
        self,
        upstreams: Upstreams,
        admission: Admission,
        *,
        max_accumulated: int = MAX_STREAM_ACCUMULATED_BYTES,
    ) -> None:
        self._upstreams = upstreams
        self._admission = admission
        self.max_accumulated = max_accumulated
        self._caps = OutputCaps()

    def redact(self, text: str) -> str:
        """``text`` (an upstream's own words) with the configuration's secrets removed (every backend's
        redactor knows every key)."""
        return self._upstreams.first.redactor.text(text)

    def session(self, req: falcon.asgi.Request) -> Admitted:
        """Admitted (slot held) and watched until the block ends; a client gone meanwhile cancels the
        block and raises :class:`ClientDisconnected`. A stream's relay takes the session over."""
        return Admitted(Session(req, self._upstreams, self.max_accumulated, self._caps), self._admission)

    async def complete(
        self, req: falcon.asgi.Request, path: str, body: bytes, *, model: str
    ) -> UpstreamResponse:
        """POST ``body`` and read the whole answer, holding an admission slot; a gone client cancels it."""
        async with self.session(req) as session:
            return await session.post(path, body, model=model)

    async def stream(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        path: str,
        body: bytes,
        *,
        model: str,
        translator: StreamTranslator | None = None,
        error_frame: ErrorFrame | None = None,
    ) -> None:
        """Open the upstream stream (failures raised) and set ``resp.stream`` to its relay: translated by
        ``translator``, or (without one) the upstream's bytes unchanged with ``error_frame`` for failures."""
        async with self.session(req) as session:
            if session.info is not None and session.info.stream_gate is not None:
                await session.info.stream_gate()  # a tenant's concurrent-stream cap (429 when full)
            stream = await session.open(path, body, model=model)
            session.handed_over = True
        if translator is not None:
            resp.content_type = translator.content_type
            resp.stream = self._translated(stream, translator, session)
        else:
            assert error_frame is not None, "a byte relay needs its dialect's error frame"
            resp.content_type = stream.headers.get("content-type", "text/event-stream")
            resp.stream = self._bytes(stream, error_frame, session)

    async def _translated(
        self, stream: OpenStream, translator: StreamTranslator, session: Session
    ) -> AsyncIterator[bytes]:
        decoder = SSEDecoder(self.max_accumulated)
        decode, translate = decoder.feed, translator.feed
        info = session.info
        first = True
        done = False
        chunks = stream.chunks()
        # Bytes translated from one read, not yet written: if a later event of that read fails, they are
        # written before the error, so what reaches the client does not depend on the framing.
        pending: list[bytes] = []
        # Charged to the worker's memory budget as they arrive, up to what may be kept; never refused.
        charge, uncharged = memory_budget.stream_charger(), 2 * self.max_accumulated
        try:
            async for chunk in chunks:
                if uncharged > 0:
                    charge(len(chunk))
                    uncharged -= len(chunk)
                payloads = decode(chunk)
                # Usually one event per read (tokens arrive one by one): no list or join for it.
                if len(payloads) == 1 and payloads[0] != DONE:
                    out = translate(payloads[0])
                else:
                    done = _feed_all(payloads, translate, pending)
                    out = b"".join(pending)
                    pending.clear()
                if out:
                    if first and info is not None:
                        info.first_chunk()
                        first = False
                    yield out
                if done:  # [DONE] ends the answer, whatever follows or however long the connection stays open
                    break
            else:
                done = _feed_all(decoder.flush(), translate, pending)
            pending.append(translator.finish(done=done))
            out = b"".join(pending)
            pending.clear()
            yield out
            if done:
                await drain_after_done(chunks)
        except (OllamaError, ProxyError, SSEError) as exc:
            if pending:
                yield b"".join(pending)
            message = self._failed(exc, session)
            if message is not None:
                yield translator.fail(message)
        finally:
            if info is not None:
                info.prompt_tokens, info.completion_tokens = translator.counts()
            await close_chunks(chunks)
            await end_stream(stream, session)

    async def _bytes(
        self, stream: OpenStream, error_frame: ErrorFrame, session: Session
    ) -> AsyncIterator[bytes]:
        info = session.info
        first = True
        find_done = DoneFinder().feed
        observe = getattr(error_frame, "observe", None)  # a frame that needs to see what went by
        chunks = stream.chunks()
        try:
            async for chunk in chunks:
                if first and info is not None:
                    info.first_chunk()
                    first = False
                if observe is not None:
                    observe(chunk)
                end = find_done(chunk)
                if end >= 0:
                    # The [DONE] line, completed with the line ending the upstream uses, ends the answer.
                    yield chunk[:end] + (b"\r\n\r\n" if chunk.startswith(b"\r", end) else b"\n\n")
                    await drain_after_done(chunks)
                    break
                yield chunk
        except (OllamaError, ProxyError, SSEError) as exc:
            message = self._failed(exc, session)
            if message is not None:
                yield error_frame(exc.status if isinstance(exc, OllamaError) else _status(exc), message)
        finally:
            await close_chunks(chunks)
            await end_stream(stream, session)

    def _failed(self, exc: OllamaError | ProxyError | SSEError, session: Session) -> str | None:
        """A stream broke after its first byte: the outcome noted, and the message for the client (redacted)
        -- or None when the client is gone (nobody to tell)."""
        info = session.info
        if session.watcher.disconnected:
            log.info("client disconnected mid-stream; upstream request cancelled")
            if info is not None:
                info.outcome = CLIENT_GONE
            return None
        if isinstance(exc, SSEError):
            message = self.redact(f"the upstream stream is invalid: {exc}")
        else:
            message = self.redact(exc.message)
        log.warning("stream failed after the first byte: %s", message)
        if info is not None:
            info.outcome = STREAM_ERROR
        return message


def _status(exc: ProxyError | SSEError) -> int:
    return status_of(exc) if isinstance(exc, ProxyError) else 502


def _feed_all(payloads: list[bytes], translate: Callable[[bytes], bytes], pending: list[bytes]) -> bool:
    """Translate ``payloads`` into ``pending`` up to ``[DONE]``; whether ``[DONE]`` was among them."""
    for payload in payloads:
        if payload == DONE:
            return True
        pending.append(translate(payload))
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


async def end_stream(stream: OpenStream, session: Session) -> None:
    """What a stream's owner owes at its end, whichever way it ends: stop watching the client, drop the
    upstream connection if it was not read to the end, free the admission slot, write the summary."""
    session.watcher.stop()
    with contextlib.suppress(Exception):
        await stream.aclose()
    session.release()
    if session.info is not None:
        session.info.finish()


def json_bytes(value: object) -> bytes:
    """The request body bytes for the upstream (orjson, compact)."""
    return orjson.dumps(value)


# --- the "responses" upstream dialect (a backend's ``dialect = "responses"``) ------------------------------
# A chat completions request bound for a backend spoken to in the Responses API is translated here, posted
# to its /responses, and its answer (whole or streamed) translated back to chat completions, so the routes
# and their translators do not know. Chosen per try (Session.post/open): each link of a fallback chain in
# its own backend's dialect.

RESPONSES_PATH = "responses"


class OpenStream(Protocol):
    """An open streamed answer: an :class:`UpstreamStream` or one translated from another dialect."""

    status: int
    headers: Mapping[str, str]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


def responses_body(body: bytes) -> bytes:
    """A chat completions request body as the Responses request that asks the same."""
    try:
        chat = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # our own request: cannot happen
        raise UpstreamError(500, "the upstream request is not JSON") from exc
    return orjson.dumps(chat_to_responses(chat).body)


async def dialect_post(
    upstream: Upstream, body: bytes, model: str, request_id: str | None, retries: bool
) -> UpstreamResponse:
    """``body`` (chat completions) posted to ``upstream`` as a Responses request; the answer as a chat
    completion. An answer that is no Responses object is a 502 (it answered: no fallback)."""
    answer = await upstream.post_json(
        RESPONSES_PATH, responses_body(body), model=model, request_id=request_id, retries=retries
    )
    try:
        chat = response_to_chat(orjson.loads(answer.body))
    except (orjson.JSONDecodeError, ResponsesAnswerError, AttributeError, TypeError) as exc:
        message = (
            str(exc)
            if isinstance(exc, ResponsesAnswerError)
            else "the upstream answer is not a Responses object"
        )
        raise UpstreamError(502, upstream.redactor.text(message)) from exc
    return UpstreamResponse(answer.status, answer.headers, orjson.dumps(chat))


async def dialect_open(
    upstream: Upstream, body: bytes, model: str, request_id: str | None, retries: bool, max_event: int
) -> OpenStream:
    """A Responses stream opened on ``upstream`` for ``body`` (chat completions), read as a chat
    completions stream."""
    stream = await upstream.open_stream(
        RESPONSES_PATH, responses_body(body), model=model, request_id=request_id, retries=retries
    )
    return ResponsesAsChatStream(stream, max_event)


class ResponsesAsChatStream:
    """A Responses event stream read as chat completion chunks (``data: {...}`` blocks, ``data: [DONE]``)."""

    __slots__ = ("_inner", "_max_event", "headers", "status")

    def __init__(self, inner: UpstreamStream, max_event: int) -> None:
        self._inner = inner
        self._max_event = max_event
        self.status = inner.status
        self.headers: Mapping[str, str] = inner.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        decoder = SSEDecoder(self._max_event)
        convert = ResponsesStreamToChat()
        source = self._inner.chunks()
        ended = False
        try:
            async for chunk in source:
                if ended:  # what follows the end: passed on for the relay's drain to discard
                    yield chunk
                    continue
                out: list[bytes] = []
                for payload in decoder.feed(chunk):
                    try:
                        made = convert.feed(payload)
                    except ResponsesAnswerError as exc:
                        if out:
                            yield b"".join(out)
                        raise UpstreamError(502, str(exc)) from exc
                    out.extend(b"data: " + c + b"\n\n" for c in made)
                    if convert.done:
                        out.append(b"data: [DONE]\n\n")
                        ended = True
                        break
                if out:
                    yield b"".join(out)
        finally:
            await close_chunks(source)

    async def aclose(self) -> None:
        await self._inner.aclose()
