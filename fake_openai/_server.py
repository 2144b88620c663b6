"""The fake upstream server: recording, scripted faults, delivery timing and the admin endpoints.

The common case (no delay, no fault) is answered synchronously from the parser callback with one write, so
the fake costs little CPU in benchmarks. Anything involving time or misbehaviour becomes a coroutine that
writes the answer piece by piece through the connection.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import orjson

from ._http import LAST_CHUNK, Connection, DateCache, Handled, IncomingRequest, chunk, render_head
from ._openai import CONTROL_TOKEN, INVALID_JSON, OpenAIResponder
from ._types import Answer, FakeConfig, Fault, FullAnswer, RecordedRequest, StreamAnswer
from ._validate import auth_error, error_body, not_found

_SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_DONE = b"data: [DONE]\n\n"
_DONE_CHUNK = chunk(_DONE)
_GARBAGE = b"data: {not json\n\n"
_KEEP_ALIVE = b": keep-alive\r\n\r\n"
_PREANSWER_FAULTS = frozenset({"status", "html", "text", "close"})
_CANNED_LIMIT = 1024
_UNPARSED: Any = object()

_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1>"
    "</center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)
_STATUS_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _default_fault_error(status: int, model: str | None) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """OpenAI's usual error body (and headers) for a scripted status."""
    name = model or "gpt-4o"
    if status == 429:
        body = error_body(
            f"Rate limit reached for {name} in organization org-fake on tokens per min (TPM): Limit 30000, "
            "Used 30000, Requested 120. Please try again in 1s. Visit "
            "https://platform.openai.com/account/rate-limits to learn more.",
            "tokens",
            None,
            "rate_limit_exceeded",
        )
        return body, (
            ("retry-after", "1"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1s"),
        )
    if status == 401:
        return error_body(
            "Incorrect API key provided: sk-ab***xyz. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        ), ()
    if status == 403:
        message = "Country, region, or territory not supported"
        return error_body(message, "request_forbidden", None, "unsupported_country_region_territory"), ()
    if status == 404:
        return error_body(
            f"The model `{name}` does not exist or you do not have access to it.", code="model_not_found"
        ), ()
    if status == 503:
        return error_body("The engine is currently overloaded, please try again later", "server_error"), ()
    if status >= 500:
        return error_body(
            "The server had an error while processing your request. Sorry about that!", "server_error"
        ), ()
    return error_body(f"Scripted error {status}"), ()


class _Scripted:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.times if fault.times >= 1 else -1


class FakeUpstream:
    """An OpenAI-compatible HTTP server for tests, benchmarks and demos. All state lives on the instance."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = config if config is not None else FakeConfig()
        self.host = "127.0.0.1"
        self.port = 0
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Scripted] = []
        # Guards the request log and the fault queue, which other threads touch via FakeUpstreamThread.
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._openai = OpenAIResponder()
        self._dates = DateCache()
        self._request_numbers = itertools.count(1)
        self._request_prefix = b"%08x" % random.getrandbits(32)
        self._canned: dict[tuple[Any, ...], Answer] = {}

    # -- public API -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:1234`` (the admin endpoints live under it)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client wants as its base URL: the root plus ``/v1``."""
        return self.url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first (the live list; at most ``config.max_recorded`` entries)."""
        return self._requests

    @property
    def faults(self) -> list[Fault]:
        """The faults still queued."""
        with self._lock:
            return [entry.fault for entry in self._faults]

    def script(self, *faults: Fault) -> None:
        """Queue faults; each is consumed FIFO by the next request(s) it matches. Thread-safe."""
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        with self._lock:
            self._faults.extend(_Scripted(f) for f in faults)

    def reset(self) -> None:
        """Forget recorded requests and queued faults (the config is kept). Thread-safe."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._canned.clear()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._server is not None:
            raise RuntimeError("FakeUpstream is already running")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self._handle, self._connections), host, port, backlog=1024
        )
        self.host = host
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        server.close()
        tasks = []
        for conn in list(self._connections):
            if conn.task is not None:
                tasks.append(conn.task)
            conn.shutdown()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> FakeUpstream:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- request handling -------------------------------------------------------------------------------

    def _handle(self, req: IncomingRequest, conn: Connection) -> Handled:
        if req.path.startswith("/_fake/"):
            return self._render(self._admin(req), req.keep_alive)
        cfg = self.config
        record = self._record(req, cfg) if cfg.record else None
        data: Any = _UNPARSED
        fault: Fault | None = None
        if self._faults:
            data = _parse(req.body)
            fault = self._take_fault(req.path, data)
            if fault is not None and record is not None:
                record.fault = fault.kind
        answer: Answer
        if fault is not None and fault.kind in _PREANSWER_FAULTS:
            answer = _fault_answer(fault, data)
        else:
            answer = self._answer(req, data, cfg)
        if record is not None:
            if isinstance(answer, FullAnswer):
                record.status = answer.status
            else:
                record.status = 200
                record.stream = True
        if fault is None and cfg.ttfb_ms <= 0:
            if isinstance(answer, FullAnswer):
                if record is not None:
                    record.completed = True
                return self._render(answer, req.keep_alive)
            if cfg.token_delay_ms <= 0:
                if record is not None:
                    record.completed = True
                return self._render_stream(answer, req.keep_alive)
        conn.current = record
        return self._deliver(conn, record, answer, fault, cfg, req.keep_alive)

    def _answer(self, req: IncomingRequest, data: Any, cfg: FakeConfig) -> Answer:
        problem = auth_error(cfg, req.headers.get("authorization"))
        if problem is not None:
            return problem
        if not req.path.startswith("/v1/"):
            return not_found(req.method, req.path)
        key: tuple[Any, ...] | None = None
        if cfg.canned:
            key = (req.method, req.path, req.body, _config_key(cfg))
            cached = self._canned.get(key)
            if cached is not None:
                return cached
        if data is _UNPARSED:
            data = _parse(req.body)
        answer = self._openai.route(req.method, req.path, data, cfg)
        if key is not None:
            if len(self._canned) >= _CANNED_LIMIT:
                self._canned.clear()
            self._canned[key] = answer
        return answer

    def _record(self, req: IncomingRequest, cfg: FakeConfig) -> RecordedRequest:
        record = RecordedRequest(req.method, req.path, req.headers, req.body, req.received_at, req.query)
        with self._lock:
            requests = self._requests
            requests.append(record)
            excess = len(requests) - max(cfg.max_recorded, 1)
            if excess > 0:
                del requests[:excess]
        return record

    def _take_fault(self, path: str, data: Any) -> Fault | None:
        model: Any = data.get("model") if isinstance(data, dict) else None
        if model is None and path.startswith("/v1/models/"):
            model = unquote(path[len("/v1/models/") :])
        stream = isinstance(data, dict) and data.get("stream") is True
        with self._lock:
            for index, entry in enumerate(self._faults):
                if entry.fault.matches(path, model if isinstance(model, str) else None, stream):
                    if entry.remaining > 0:
                        entry.remaining -= 1
                        if entry.remaining == 0:
                            del self._faults[index]
                    return entry.fault
        return None

    # -- rendering and delivery -------------------------------------------------------------------------

    def _request_id(self) -> bytes:
        return b"req_%b%016x" % (self._request_prefix, next(self._request_numbers))

    def _render(self, answer: FullAnswer, keep_alive: bool) -> bytes:
        head = render_head(
            answer.status,
            content_type=answer.content_type,
            content_length=len(answer.body),
            keep_alive=keep_alive,
            date=self._dates.get(),
            request_id=self._request_id(),
            extra=answer.headers,
        )
        return head + answer.body

    def _stream_head(self, keep_alive: bool) -> bytes:
        return render_head(
            200,
            content_type=_SSE_CONTENT_TYPE,
            content_length=None,
            keep_alive=keep_alive,
            date=self._dates.get(),
            request_id=self._request_id(),
        )

    def _render_stream(self, answer: StreamAnswer, keep_alive: bool) -> bytes:
        parts = [self._stream_head(keep_alive)]
        if answer.names is not None:  # the Responses API: named events, no [DONE]
            parts.extend(chunk(frame) for frame in _named_frames(answer.names, answer.events))
        else:
            parts.extend(chunk(b"data: " + event + b"\n\n") for event in answer.events)
            parts.append(_DONE_CHUNK)
        parts.append(LAST_CHUNK)
        return b"".join(parts)

    async def _deliver(
        self,
        conn: Connection,
        record: RecordedRequest | None,
        answer: Answer,
        fault: Fault | None,
        cfg: FakeConfig,
        keep_alive: bool,
    ) -> None:
        kind = fault.kind if fault is not None else None
        delay = cfg.ttfb_ms / 1000.0
        if fault is not None and kind == "stall":
            delay += fault.seconds
        if delay > 0:
            await asyncio.sleep(delay)
        if kind == "close":
            conn.close()
            return
        if isinstance(answer, FullAnswer):
            data = self._render(answer, keep_alive)
            if kind == "half_body":
                conn.write(data[: len(data) - len(answer.body) + len(answer.body) // 2])
                conn.close()
                return
            conn.write(data)
            if record is not None:
                record.completed = True
            return
        frames, payloads = _stream_frames(answer, fault)
        conn.write(self._stream_head(keep_alive))
        token_delay = cfg.token_delay_ms / 1000.0
        cut_at = min(fault.after_events, payloads) if fault is not None and kind == "cut" else -1
        stall_at = min(fault.after_events, payloads) if fault is not None and kind == "stall_after" else -1
        for index, frame in enumerate(frames):
            if index == cut_at:
                conn.close()
                return
            if index == stall_at and fault is not None:
                await asyncio.sleep(fault.seconds)
            elif index and token_delay > 0:
                await asyncio.sleep(token_delay)
            conn.write(chunk(frame))
            await conn.drain()
        conn.write(LAST_CHUNK)
        if record is not None:
            record.completed = True

    # -- admin ------------------------------------------------------------------------------------------

    def _admin(self, req: IncomingRequest) -> FullAnswer:
        path, method = req.path, req.method
        try:
            if path == "/_fake/requests" and method == "GET":
                with self._lock:
                    snapshot = list(self._requests)
                return _json(200, [r.to_json() for r in snapshot])
            if path == "/_fake/faults" and method == "GET":
                return _json(200, [f.to_json() for f in self.faults])
            if path == "/_fake/script" and method == "POST":
                data = orjson.loads(req.body)
                items = data if isinstance(data, list) else [data]
                faults = [Fault.from_json(item) for item in items]
                self.script(*faults)
                return _json(200, {"scripted": len(faults)})
            if path == "/_fake/reset" and method == "POST":
                self.reset()
                return _json(200, {"reset": True})
            if path == "/_fake/config" and method in ("GET", "POST"):
                if method == "POST":
                    changes = orjson.loads(req.body) if req.body else {}
                    if not isinstance(changes, dict):
                        raise ValueError("the config must be a JSON object")
                    self.config.update(changes)
                    self._canned.clear()
                return _json(200, self.config.to_dict())
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            return _json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
        return _json(404, {"error": {"message": f"no admin endpoint {method} {path}", "type": "not_found"}})


def _parse(body: bytes) -> Any:
    if not body:
        return INVALID_JSON
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return INVALID_JSON


def _json(status: int, value: Any) -> FullAnswer:
    return FullAnswer(status, orjson.dumps(value))


def _config_key(cfg: FakeConfig) -> tuple[Any, ...]:
    """Everything in the config that shapes an answer's bytes, so canned answers follow config changes."""
    return (
        cfg.tokens,
        cfg.send_usage,
        cfg.embedding_dim,
        cfg.max_embedding_inputs,
        cfg.answer_any_model,
        cfg.models_have_created_owned_by,
        cfg.reasoning_tokens,
        cfg.require_json_word,
        cfg.reject_unknown_params,
        cfg.context_window,
        tuple(cfg.models),
    )


def _fault_answer(fault: Fault, data: Any) -> FullAnswer:
    """The answer for the faults that replace the response entirely (status, html, text, close)."""
    model = data.get("model") if isinstance(data, dict) else None
    headers = tuple(fault.headers.items())
    if fault.kind == "html":
        status = fault.status or 502
        reason = _STATUS_REASONS.get(status, "Error")
        page = fault.body if fault.body is not None else _HTML_PAGE.format(status=status, reason=reason)
        return FullAnswer(status, _to_bytes(page), "text/html", headers)
    if fault.kind == "text":
        status = fault.status or 500
        text = fault.body if fault.body is not None else _STATUS_REASONS.get(status, "Error")
        return FullAnswer(status, _to_bytes(text), "text/plain; charset=utf-8", headers)
    status = fault.status or 500
    if fault.body is not None:
        return FullAnswer(status, _to_bytes(fault.body), "application/json", headers)
    body, default_headers = _default_fault_error(status, model if isinstance(model, str) else None)
    given = {k.lower() for k in fault.headers}
    merged = tuple(h for h in default_headers if h[0] not in given) + headers
    return FullAnswer(status, body, "application/json", merged)


def _to_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def _named_frames(names: list[bytes], events: list[bytes]) -> list[bytes]:
    return [b"event: " + n + b"\ndata: " + e + b"\n\n" for n, e in zip(names, events, strict=True)]


def _stream_frames(answer: StreamAnswer, fault: Fault | None) -> tuple[list[bytes], int]:
    """The SSE frames to send (the [DONE] frame included unless suppressed) and how many carry payloads."""
    events = answer.events
    kind = fault.kind if fault is not None else None
    if answer.names is not None:
        frames = _named_frames(answer.names, events)
        return frames, len(frames)
    if kind == "empty_deltas":
        build = answer.content_event
        empty, null = build(""), build(None)
        start, end = answer.content_start, answer.content_end
        middle: list[bytes] = []
        for event in events[start:end]:
            middle += (empty, event, null)
        if end > start:
            middle.append(build(CONTROL_TOKEN))
        else:
            middle += (empty, null)
        events = events[:start] + middle + events[end:]
    elif kind == "huge_event" and fault is not None:
        base = len(answer.content_event(""))
        huge = answer.content_event("x" * max(0, fault.size - base))
        at = min(fault.after_events, len(events))
        events = [*events[:at], huge, *events[at:]]
    if kind == "sse_variant":
        frames = [
            (_KEEP_ALIVE if i else b"") + b"event: message\r\ndata: " + e + b"\r\n\r\n"
            for i, e in enumerate(events)
        ]
        # The final event has no blank line after it: a robust reader dispatches it at end of stream.
        frames.append(_KEEP_ALIVE + b"event: message\r\ndata: [DONE]\r\n")
        return frames, len(events)
    frames = [b"data: " + e + b"\n\n" for e in events]
    payloads = len(frames)
    if kind == "garbage" and fault is not None:
        frames.insert(min(fault.after_events, payloads), _GARBAGE)
        payloads += 1
    if kind != "no_done":
        frames.append(_DONE)
    return frames, payloads


class FakeUpstreamThread:
    """A FakeUpstream on its own event loop in a daemon thread, for sync tests and other processes' use."""

    def __init__(self, config: FakeConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = FakeUpstream(config)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    def start(self) -> FakeUpstreamThread:
        if self._thread is not None:
            raise RuntimeError("FakeUpstreamThread is already running")
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fake upstream did not start within 30 s")
        if self._startup_error is not None:
            error, self._startup_error = self._startup_error, None
            self._thread.join(5)
            self._thread = None
            raise error
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self.fake.start(self._host, self._port))
            except BaseException as exc:
                self._startup_error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self.fake.stop())
        finally:
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._thread = None

    def __enter__(self) -> FakeUpstreamThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def config(self) -> FakeConfig:
        return self.fake.config

    @config.setter
    def config(self, value: FakeConfig) -> None:
        self.fake.config = value

    @property
    def host(self) -> str:
        return self.fake.host

    @property
    def port(self) -> int:
        return self.fake.port

    @property
    def url(self) -> str:
        return self.fake.url

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests (the records themselves still update as answers finish)."""
        with self.fake._lock:
            return list(self.fake._requests)

    @property
    def faults(self) -> list[Fault]:
        return self.fake.faults

    def script(self, *faults: Fault) -> None:
        self.fake.script(*faults)

    def reset(self) -> None:
        self.fake.reset()
