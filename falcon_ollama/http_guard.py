"""Client connections bounded before the app sees a request: uvicorn's httptools protocol with limits.

A client needs no key to open a socket and send a head, so what it can make a worker hold there is bounded
here, below the app: the header block's size (fed to the parser in slices, so an 80 MB header is refused
after 64 KiB instead of parsed in quadratic time), the number of header fields, the time to send the head
and the body (silent and trickling sockets are closed), and the open connections per worker. Refusals are
one JSON error (Ollama's shape, OpenAI's on ``/v1``) with ``connection: close``.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from falcon_ollama.client_gone import SCOPE_KEY, GoneSignal
from falcon_ollama.wire import error_body

log = logging.getLogger("falcon_ollama.connections")

# At shutdown a request still sending its body gets at most this much longer (not its whole body timeout):
# a trickling client must not hold a worker's graceful drain, while an upload nearly done still completes.
SHUTDOWN_RECEIVE_GRACE = 5.0
# Refusals are logged at most once per this many seconds per worker (with a count): an attack must not
# become a flood of log lines.
LOG_INTERVAL = 10.0


class _ThrottledLog:
    """One warning per LOG_INTERVAL per kind, saying how many were not logged in between."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -LOG_INTERVAL) < LOG_INTERVAL:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        skipped = self._skipped.pop(kind, 0)
        self._last[kind] = now
        log.warning("%s%s", message, f" (and {skipped} more since the last such line)" if skipped else "")


_throttled = _ThrottledLog()


@dataclass(frozen=True, slots=True)
class ConnectionBounds:
    """The per-connection and per-worker limits (Settings' values; the connection cap fitted to the fds)."""

    max_header_bytes: int
    max_headers: int
    head_timeout: float
    body_timeout: float
    max_connections: int


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that breaks a bound."""


def guarded_protocol(bounds: ConnectionBounds) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http=`` option, carrying ``bounds``."""
    return type("GuardedProtocol", (GuardedHttpToolsProtocol,), {"bounds": bounds})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the bounds of :class:`ConnectionBounds` (see the module doc)."""

    bounds: ClassVar[ConnectionBounds]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = False  # a message began and its headers are not complete
        self._head_seen = 0  # head bytes fed to the parser for the current message (an upper bound)
        self._began = False  # a message began during the last feed
        self._refusal: tuple[int, str] | None = None
        self._closed = False
        # The deadlines of the head being received (or of the first byte, on a new connection) and of the
        # body. One timer per connection checks them; it is not re-armed per request (a keep-alive
        # connection's requests set a deadline each, a plain float), only when it fires with one pending.
        self._head_deadline: float | None = None
        self._body_deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer fires (loop time)

    # --- connection ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.bounds.max_connections
        if len(self.connections) > limit:
            _throttled.warning("cap", f"connection refused: {limit} connections open (the limit per worker)")
            self._refuse(503, f"too many open connections to this server (limit {limit} per worker)")
            return
        self._head_deadline = self.loop.time() + self.bounds.head_timeout
        self._arm(self._head_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        super().connection_lost(exc)
        self._tell_gone()

    def shutdown(self) -> None:
        super().shutdown()
        if self._body_deadline is not None and not self.transport.is_closing():
            self._body_deadline = min(self._body_deadline, self.loop.time() + SHUTDOWN_RECEIVE_GRACE)
            self._arm(self._body_deadline)

    # --- bytes in ---------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Feed the parser at most what is left of the head allowance at a time.

        Outside a head, slices of a quarter of the limit bound what a head pipelined behind a body can bring
        in unchecked: a head that begins inside a slice is counted as the whole slice (an upper bound, never
        an undercount), so such a head is still allowed at least three quarters of the limit.
        """
        self._unset_keepalive_if_required()
        limit = self.bounds.max_header_bytes
        if len(data) <= (limit - self._head_seen if self._in_head else limit // 4):
            self._feed_counted(data)  # the usual case: one piece, no slicing
        else:
            view = memoryview(data)
            while view and not self._closed:
                allowance = limit - self._head_seen if self._in_head else limit // 4
                piece, view = view[:allowance], view[allowance:]
                if not self._feed_counted(piece):
                    return
        if self._body_deadline is not None and not self._closed:  # the body is still to come
            self._arm(self._body_deadline)

    def _feed_counted(self, piece: bytes | memoryview) -> bool:
        """Feed one piece and count it against the head's bounds; False when the connection is done."""
        self._began = False
        if not self._feed(piece):
            return False
        if self._in_head:
            limit = self.bounds.max_header_bytes
            self._head_seen = len(piece) if self._began else self._head_seen + len(piece)
            if self._head_seen >= limit:
                _throttled.warning("size", f"request head over {limit} bytes refused (431)")
                self._refuse(431, f"request header fields too large (limit {limit} bytes)")
                return False
            if len(self.headers) > self.bounds.max_headers:  # refused before the head is even complete
                self._refuse(*self._too_many_headers())
                return False
        return True

    def _feed(self, piece: bytes | memoryview) -> bool:
        """uvicorn's own feeding and error handling, plus our refusals; False when the connection is done."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return False
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            self._closed = True
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    # --- parser callbacks -------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[SCOPE_KEY] = GoneSignal()  # type: ignore[literal-required]
        self._in_head = True
        self._began = True
        if self._head_deadline is None:  # else the connection's first head: its clock runs from the connect
            self._head_deadline = self.loop.time() + self.bounds.head_timeout
            self._arm(self._head_deadline)

    def on_headers_complete(self) -> None:
        # Counted here, once per request, rather than per header (uvicorn's on_header runs for each): the
        # head's byte bound already bounds how many a parse can see before this.
        if len(self.headers) > self.bounds.max_headers:
            self._refusal = self._too_many_headers()
            raise _Refused
        self._in_head = False
        self._head_deadline = None
        self._body_deadline = self.loop.time() + self.bounds.body_timeout
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_seen = 0
        self._body_deadline = None
        super().on_message_complete()
        if not self.pipeline:
            # uvicorn pauses reading while over 64 KiB of body wait for the app, and only the app's next
            # receive() resumes it; the app has the whole body now and calls receive() no more (the
            # GoneSignal replaced the watcher's receive), so read on, or the client's close is never seen.
            # A pipelined next request pauses reading again on its own.
            self.flow.resume_reading()

    def _too_many_headers(self) -> tuple[int, str]:
        limit = self.bounds.max_headers
        _throttled.warning("count", f"request with over {limit} header fields refused")
        return 431, f"too many header fields (limit {limit})"

    # --- timeouts and refusals --------------------------------------------------------------------------

    def _check_deadlines(self) -> None:
        """The connection's timer: act on a deadline that has passed, else wait for the next one."""
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        head, body = self._head_deadline, self._body_deadline
        if head is not None and now >= head:
            self._head_timed_out()
        elif body is not None and now >= body:
            _throttled.warning("body", "request body not received within its timeout: connection closed")
            self._refuse(408, f"request body not received within {self.bounds.body_timeout:g} s")
        else:
            pending = head if body is None else body if head is None else min(head, body)
            if pending is not None:
                self._arm(pending)

    def _arm(self, deadline: float) -> None:
        """The timer set to fire by ``deadline``: left alone when it fires sooner (it then re-arms itself
        for what is pending), so back-to-back requests on a connection set no timer each."""
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._check_deadlines)

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._in_head:  # part of a head arrived: say why before closing
            _throttled.warning("head", "request head not received within its timeout: connection closed")
            self._refuse(408, f"request head not received within {self.bounds.head_timeout:g} s")
            return
        if self.cycle is None or self.cycle.response_complete:
            self._close()  # a silent socket: nothing to answer

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` (unless a response is under way on this connection) and close."""
        cycle = self.cycle
        if not self.pipeline and (cycle is None or cycle.response_complete or not cycle.response_started):
            self.transport.write(self._error_response(status, message))
        if cycle is not None:  # the app sees a gone client, and writes nothing more
            cycle.disconnected = True
            cycle.message_event.set()
            self._tell_gone()
        self._close()

    def _tell_gone(self) -> None:
        """Fire the current request's GoneSignal, as uvicorn tells a task awaiting ``receive``."""
        cycle = self.cycle
        if cycle is not None and cycle.disconnected:
            signal = cycle.scope.get(SCOPE_KEY)
            if isinstance(signal, GoneSignal):
                signal.fire()

    def _close(self) -> None:
        self._closed = True
        self._cancel_timer()
        self.transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _error_response(self, status: int, message: str) -> bytes:
        url = getattr(self, "url", b"")  # set once a request line began
        if url.startswith(b"/v1/"):  # OpenAI's error object, as resources/openai_compat answers
            error = {"message": message, "type": "api_error", "param": None, "code": None}
            body = orjson.dumps({"error": error})
        else:
            body = error_body(message)
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}".encode()]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: application/json; charset=utf-8",
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body
