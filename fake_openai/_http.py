"""A minimal HTTP/1.1 server connection: httptools parses requests, responses are written byte by byte.

Writing the bytes by hand is the point of the fake: it must be able to send a Content-Length it never
honours, stop a chunked body half way, or stall between events, all of which a framework would refuse to do.
Requests on one connection are answered strictly in order (pipelining-safe): while an answer is being
delivered asynchronously, later requests wait in a queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

import httptools

from ._types import RecordedRequest

log = logging.getLogger("fake_openai")

_REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}
# Stop reading from a client that pipelines this many requests ahead of the answers.
_MAX_PENDING = 64


class IncomingRequest:
    """One parsed request. Header names are lower-case; repeated headers are joined with ", "."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "received_at")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
        received_at: float,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.received_at = received_at


# A handler answers at once with the full response bytes, or returns a coroutine that writes the answer
# itself through the connection (delays, streaming with pauses, faults).
Handled = bytes | Coroutine[Any, Any, None]
RequestHandler = Callable[[IncomingRequest, "Connection"], Handled]


class DateCache:
    """The Date header value, recomputed at most once per second (formatting it per request is costly)."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


def render_head(
    status: int,
    *,
    content_type: str,
    content_length: int | None,
    keep_alive: bool,
    date: bytes,
    request_id: bytes,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The status line and headers. ``content_length=None`` means a chunked body."""
    reason = _REASONS.get(status, b"Unknown")
    parts = [b"HTTP/1.1 %d %b\r\ndate: %b\r\n" % (status, reason, date)]
    if not extra or not any(k.lower() == "content-type" for k, _ in extra):
        parts.append(b"content-type: %b\r\n" % content_type.encode())
    if content_length is None:
        parts.append(b"transfer-encoding: chunked\r\n")
    else:
        parts.append(b"content-length: %d\r\n" % content_length)
    parts.append(b"connection: keep-alive\r\n" if keep_alive else b"connection: close\r\n")
    parts.append(b"x-request-id: %b\r\nopenai-version: 2020-10-01\r\n" % request_id)
    parts.extend(b"%b: %b\r\n" % (k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked transfer-encoded body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class PeerGone(Exception):
    """Raised inside a delivery coroutine when the client has gone away."""


class Connection(asyncio.Protocol):
    """One client connection. The fake's handler is called once per complete request."""

    def __init__(self, handler: RequestHandler, registry: set[Connection]) -> None:
        self._handler = handler
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._pending: deque[IncomingRequest] = deque()
        self._busy = False
        self._reading_paused = False
        self._task: asyncio.Task[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed_by_us = False
        self.closed = False
        # The record of the answer being delivered asynchronously, so a disconnect can be noted on it.
        self.current: RecordedRequest | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast rather than a check.
        self._transport = cast(asyncio.Transport, transport)
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            if not self._busy:
                self.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n"
                    b"connection: close\r\n\r\nBad Request"
                )
            self.close()

    def eof_received(self) -> bool | None:
        # A client that half-closes is treated as gone: no HTTP client we care about does that mid-request.
        self._peer_gone()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed_by_us:
            self._peer_gone()
        self.closed = True
        self._registry.discard(self)
        self._pending.clear()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # -- httptools callbacks ----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        # Only when idle: an interim response must not land in the middle of an earlier answer.
        expect = self._headers.get("expect")
        if expect is not None and expect.lower() == "100-continue" and not self._busy:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        request = IncomingRequest(
            self._parser.get_method().decode("latin-1"),
            path,
            query,
            self._headers,
            b"".join(self._body) if len(self._body) != 1 else self._body[0],
            self._parser.should_keep_alive(),
            time.monotonic(),
        )
        if self._busy:
            self._pending.append(request)
            if len(self._pending) >= _MAX_PENDING and self._transport is not None:
                self._transport.pause_reading()
                self._reading_paused = True
            return
        self._start(request)

    # -- answering --------------------------------------------------------------------------------------

    def _start(self, request: IncomingRequest) -> None:
        if self.closed or self._closed_by_us:
            return
        try:
            result = self._handler(request, self)
        except Exception:
            log.exception("fake upstream handler failed for %s %s", request.method, request.path)
            body = b'{"error":{"message":"fake upstream bug","type":"server_error","param":null,"code":null}}'
            result = (
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(body), body)
            )
            request.keep_alive = False
        if isinstance(result, bytes):
            self.write(result)
            if not request.keep_alive:
                self.close()
            return
        self._busy = True
        self._task = asyncio.get_running_loop().create_task(self._run(result, request.keep_alive))

    async def _run(self, delivery: Coroutine[Any, Any, None], keep_alive: bool) -> None:
        try:
            await delivery
        except (asyncio.CancelledError, PeerGone, ConnectionError):
            # The peer went away (connection_lost cancels us) or the server is stopping: nothing to tell.
            keep_alive = False
        except Exception:
            log.exception("fake upstream delivery failed")
            keep_alive = False
        finally:
            self._task = None
            self._busy = False
            self.current = None
        if not keep_alive:
            self.close()
            return
        while self._pending and not self._busy and not self.closed and not self._closed_by_us:
            self._start(self._pending.popleft())
        if self._reading_paused and not self._pending and self._transport is not None and not self.closed:
            self._reading_paused = False
            self._transport.resume_reading()

    def _peer_gone(self) -> None:
        if self.closed:
            return
        current = self.current
        if current is not None and not current.completed and current.disconnected_at is None:
            current.disconnected_at = time.monotonic()
        if self._task is not None:
            self._task.cancel()

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._drain_waiter = None

    # -- used by delivery coroutines --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not self.closed and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's buffer is full; raise PeerGone once the client is gone."""
        if self.closed:
            raise PeerGone
        if self._write_paused:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiter = waiter
            await waiter
            if self.closed:
                raise PeerGone

    def close(self) -> None:
        """Close after flushing what was written (FIN): used for Connection: close and the cut faults."""
        self._closed_by_us = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def shutdown(self) -> None:
        """Used when the server stops: drop the connection and cancel any delivery in progress."""
        self._closed_by_us = True
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.abort()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task
