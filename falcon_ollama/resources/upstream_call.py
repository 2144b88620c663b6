"""One way to call the upstream for a translated request: admission, disconnect watching, relaying.

The dialect resources (Anthropic Messages, OpenAI Responses) hand this a translated body and, for a stream,
a :class:`~falcon_ollama.translate.dialect.StreamTranslator`; everything about connections, slots, client
disconnects and the end-of-stream bookkeeping happens here. Failures before the first byte are raised
(``UpstreamError``/``OllamaError``) for the resource to render in its own dialect; after it, the translator
frames them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import falcon.asgi
import orjson

from falcon_ollama.admission import Admission, Slot
from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.requestlog import RequestInfo, info_of
from falcon_ollama.resources.relay import RECEIVE_SCOPE_KEY, DisconnectWatcher, end_stream
from falcon_ollama.sse import SSEDecoder, SSEError
from falcon_ollama.translate.dialect import StreamTranslator
from falcon_ollama.upstream import Upstream, UpstreamError, UpstreamResponse, UpstreamStream

log = logging.getLogger("falcon_ollama.upstream_call")

_DONE = b"[DONE]"


class ClientDisconnected(Exception):
    """The client left before the upstream answered; the resource answers nothing more (status 499)."""


class UpstreamCall:
    """Shared by the dialect resources; one per worker, built by ``create_app``."""

    def __init__(self, upstream: Upstream, admission: Admission) -> None:
        self._upstream = upstream
        self._admission = admission

    async def complete(
        self, req: falcon.asgi.Request, path: str, body: bytes, *, model: str
    ) -> UpstreamResponse:
        """POST ``body`` and read the whole answer, holding an admission slot; a gone client cancels it."""
        info = info_of(req)
        watcher = DisconnectWatcher(req.scope.get(RECEIVE_SCOPE_KEY))
        slot: Slot | None = None
        try:
            slot = await self._admission.acquire()
            answer = await self._upstream.post_json(
                path, body, model=model, request_id=info.id if info is not None else None
            )
        except asyncio.CancelledError:
            if watcher.absorb_cancel():
                raise ClientDisconnected from None
            raise
        except UpstreamError as exc:
            if info is not None:
                info.upstream_status = exc.upstream_status
            raise
        finally:
            if slot is not None:
                slot.release()
            watcher.stop()
        if info is not None:
            info.upstream_status = answer.status
        return answer

    async def stream(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        path: str,
        body: bytes,
        *,
        model: str,
        translator: StreamTranslator,
        content_type: str,
    ) -> None:
        """Open the upstream stream (failures raised) and set ``resp.stream`` to the translated relay."""
        info = info_of(req)
        watcher = DisconnectWatcher(req.scope.get(RECEIVE_SCOPE_KEY))
        slot: Slot | None = None
        try:
            slot = await self._admission.acquire()
            stream = await self._upstream.open_stream(
                path, body, model=model, request_id=info.id if info is not None else None
            )
        except asyncio.CancelledError:
            if slot is not None:
                slot.release()
            if watcher.absorb_cancel():
                raise ClientDisconnected from None
            raise
        except BaseException as exc:
            if slot is not None:
                slot.release()
            watcher.stop()
            if isinstance(exc, UpstreamError) and info is not None:
                info.upstream_status = exc.upstream_status
            raise
        watcher.on_disconnect(stream.aclose)
        if info is not None:
            info.upstream_status = stream.status
        resp.content_type = content_type
        resp.stream = _relay(stream, translator, watcher, info, slot)


async def _relay(
    stream: UpstreamStream,
    translator: StreamTranslator,
    watcher: DisconnectWatcher,
    info: RequestInfo | None,
    slot: Slot,
) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()
    first = True
    done = False
    try:
        async for chunk in stream.chunks():
            out, done = _translate(decoder.feed(chunk), translator)
            if out:
                if first and info is not None:
                    info.first_chunk()
                    first = False
                yield out
            if done:  # [DONE] ends the answer, whatever follows or however long the connection stays open
                break
        tail = b"" if done else _translate(decoder.flush(), translator)[0]
        yield tail + translator.finish()
    except (OllamaError, ProxyError, SSEError) as exc:
        if watcher.disconnected:
            log.info("client disconnected mid-stream; upstream request cancelled")
            return
        message = (
            exc.message
            if isinstance(exc, OllamaError | ProxyError)
            else f"the upstream stream is invalid: {exc}"
        )
        log.warning("stream failed after the first byte: %s", message)
        yield translator.fail(message)
    finally:
        if info is not None:
            info.prompt_tokens, info.completion_tokens = translator.counts()
        await end_stream(stream, watcher, slot, info)


def _translate(payloads: list[bytes], translator: StreamTranslator) -> tuple[bytes, bool]:
    """The client bytes for one read's events, and whether ``[DONE]`` was among them (nothing after it)."""
    parts: list[bytes] = []
    for payload in payloads:
        if payload == _DONE:
            return b"".join(parts), True
        parts.append(translator.feed(payload))
    return b"".join(parts), False


def json_bytes(value: object) -> bytes:
    """The request body bytes for the upstream (orjson, compact)."""
    return orjson.dumps(value)
