"""The only owner of upstream connections: pool, auth headers, timeouts, and failure -> Ollama error mapping.

One ``Upstream`` is built per worker by ``create_app`` and opened at ASGI start-up (so a gunicorn worker never
inherits a pool from its parent), closed at shutdown. Callers get raw bytes: parsing the upstream's JSON is
the translator's job, and a streamed answer is relayed chunk by chunk without this module looking inside.

Every failure leaves this module as an ``OllamaError`` that already carries the status and message an Ollama
client should see; the mapping rules live in :func:`map_status_error` and :func:`map_transport_error`.

Every read is bounded after decompression (a hostile upstream or a gzip bomb cannot fill the worker's memory):
whole answers by ``FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES`` (over it: a 502 naming the limit), error bodies by
``FALCON_OLLAMA_MAX_UPSTREAM_ERROR_BYTES`` (read that far, then the connection is dropped), streams by
``FALCON_OLLAMA_MAX_UPSTREAM_STREAM_BYTES`` in total. Upstream text that reaches a client passes the
:class:`Redactor` built here from the configured keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import logging
import random
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import aiohttp
import orjson

from falcon_ollama import __version__, memory_budget
from falcon_ollama.backends import BackendConfig, Dialect, implicit_backend
from falcon_ollama.errors import OllamaError
from falcon_ollama.metrics import Metrics
from falcon_ollama.redaction import BELT_ONLY, Redactor, redactor_for
from falcon_ollama.settings import Settings

log = logging.getLogger("falcon_ollama.upstream")

T = TypeVar("T")

_MAX_ERROR_MESSAGE = 400
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_YIELD_EVERY = 1 << 20  # bytes of a whole answer read between two yields to the event loop
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HTML_TITLE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# Where an upstream's error text turns into its internals: the start of a traceback or stack trace (Python's
# header or a frame line, as llama-cpp-python appends to its messages; JS/Java frames; Go; Rust).
_TRACEBACK = re.compile(
    r'^\s*(?:Traceback \(most recent call last\)|File "[^"]*", line \d+|goroutine \d+ \[|stack backtrace:)'
    r"|^\s+at \S.*(?::\d+|\))\s*$"
)
# A file-system path in a message: absolute, home-relative or with a drive letter, two segments or more.
_PATH = re.compile(r"(?<![\w/.~:-])(?:~|[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")
_FILE_SUFFIX = re.compile(r"\.[A-Za-z]\w{0,7}$")
_SYSTEM_ROOTS = frozenset(
    ("home", "Users", "usr", "opt", "var", "tmp", "root", "srv", "app", "etc", "mnt", "nix", "private", "lib")
)
# A 500 whose message says the request itself cannot be served (llama-cpp-python answers its request
# validation errors with 500): retrying cannot help, and the client is told 400, as for a 4xx refusal.
_REQUEST_REFUSED = re.compile(
    r"\bvalidation errors?\b|\binput should be\b|\bextra inputs are not permitted\b|\bnot supported\b"
    r"|\bunsupported\b|\binvalid (?:request|parameter|argument|value|type)\b",
    re.IGNORECASE,
)


# What kind of upstream failure an UpstreamError is, decided where the upstream's answer is parsed, so that
# callers (embeddings' truncation retry, ``falcon-ollama check``) branch on it instead of on message text.
ErrorKind = Literal["context_length", "key_rejected", "unreachable", "no_api_root"]


class UpstreamError(OllamaError):
    """An upstream failure, already mapped for the client, that remembers what retrying needs to know."""

    __slots__ = ("kind", "raw_body", "retry_after", "retryable", "upstream_status")
    kind: ErrorKind | None
    retry_after: float | None
    retryable: bool
    upstream_status: int | None
    raw_body: bytes

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        upstream_status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        raw_body: bytes = b"",
        kind: ErrorKind | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.kind = kind
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.raw_body = raw_body  # the upstream's own error body (bounded, redacted), for the /v1 passthrough


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of 429, 5xx and connection failures, only before anything reached the client.

    Exponential back-off with full jitter (``base * 2**attempt``, random in [0, that]); a ``Retry-After``
    (or OpenAI's ``retry-after-ms``) is honoured when it is no longer than ``max_wait``; a longer one ends
    the retries at once, so the client gets the 429 and its ``Retry-After`` without waiting for nothing."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_wait: float = 20.0

    def delay(
        self, attempt: int, error: UpstreamError, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up."""
        if attempt >= self.max_retries or not error.retryable:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_wait else None
        return min(self.max_wait, self.base_delay * (1 << attempt)) * rand()


@dataclass(slots=True)
class UpstreamResponse:
    """A complete (non-streamed) upstream answer with a 2xx status."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream:
    """An open streamed answer with a 2xx status; iterate :meth:`chunks`, always :meth:`aclose`.

    Timeouts while streaming cost nothing per chunk: each chunk only stamps the time, and a watchdog that
    wakes every few seconds closes the response when the gap since the last chunk exceeds the idle timeout
    or the request exceeds its total time, which ends the pending read at once."""

    __slots__ = ("_closed", "_deadline", "_idle", "_last", "_loop", "_max_bytes", "_redactor", "_response",
                 "_timed_out", "_watchdog", "headers", "status")  # fmt: skip

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        idle_timeout: float,
        deadline: float,
        *,
        max_bytes: int = 1 << 62,
        redactor: Redactor = BELT_ONLY,
    ) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._redactor = redactor
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._loop = asyncio.get_running_loop()
        self._idle = idle_timeout
        self._deadline = deadline
        self._last = self._loop.time()
        self._timed_out: str | None = None
        self._closed = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        interval = min(self._idle / 2, max(0.05, self._deadline - self._loop.time()), 5.0)
        self._watchdog = self._loop.call_later(max(interval, 0.01), self._check)

    def _check(self) -> None:
        now = self._loop.time()
        if now - self._last > self._idle:
            self._timed_out = f"the upstream sent nothing for {self._idle:g} s"
        elif now >= self._deadline:
            self._timed_out = "the upstream answer took longer than the total timeout"
        if self._timed_out is not None:
            self._response.close()
            return
        self._arm()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body bytes as they arrive, the configured keys redacted; transport failures, timeouts and a
        stream longer than its byte bound become OllamaError."""
        content = self._response.content
        loop = self._loop
        clean = self._redactor.chunk
        left = self._max_bytes
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                self._last = loop.time()
                left -= len(chunk)
                if left < 0:
                    self._response.close()
                    raise UpstreamError(
                        502,
                        f"the upstream stream is larger than the limit of {self._max_bytes} bytes "
                        "(FALCON_OLLAMA_MAX_UPSTREAM_STREAM_BYTES)",
                    )
                yield clean(chunk)
        except (aiohttp.ClientError, OSError) as exc:
            if self._timed_out is not None:
                raise UpstreamError(504, self._timed_out) from exc
            if self._closed:
                raise UpstreamError(499, "request cancelled") from exc
            raise map_transport_error(exc) from exc
        if self._timed_out is not None:
            raise UpstreamError(504, self._timed_out)

    async def aclose(self) -> None:
        """Close the response: unread to the end, the connection is dropped (which cancels the upstream)."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._response.close()


class Upstream:
    """HTTP client for one OpenAI-compatible upstream (base URL ending in ``/v1`` or equivalent).

    One per backend (falcon_ollama/backends.py): its URL, key, extra headers, timeouts, pool size and
    retries; without a ``backend``, the implicit one of OPENAI_BASE_URL / OPENAI_API_KEY.

    aiohttp, chosen by measurement (docs/performance.md): about a tenth of httpx's CPU per request, and no
    throughput collapse at high concurrency. One session, connector and TLS context per worker; the proxy
    (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``) is resolved once at start-up, not per request."""

    def __init__(
        self,
        settings: Settings,
        retry: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        *,
        backend: BackendConfig | None = None,
    ) -> None:
        if backend is None:
            backend = implicit_backend(
                settings.openai_base_url,
                settings.openai_api_key,
                settings.openai_organization,
                settings.openai_project,
                dialect=cast(Dialect, settings.upstream_dialect),
            )
        if backend.overrides():
            settings = dataclasses.replace(settings, **backend.overrides())
        self.backend = backend
        self.name = backend.name
        self.dialect: Dialect = backend.dialect
        self._settings = settings
        self._metrics = metrics
        self._retry = retry or RetryPolicy(
            settings.max_retries, settings.retry_base_delay, settings.max_retry_wait
        )
        self.retries = 0  # retries made since start (for metrics and tests)
        self.redactor = redactor_for(settings)
        self._base_url = backend.base_url.rstrip("/") + "/"
        # A named backend's address never reaches a client: connect and TLS errors quote the OS's words,
        # which name the host and port (the implicit backend keeps them: docs/troubleshooting.md).
        host = urllib.parse.urlsplit(self._base_url).hostname or ""
        self._address = (
            re.compile(rf"\(?'?\[?{re.escape(host)}\]?'?(?:(?:,\s*|:)\d+)?\)?", re.IGNORECASE)
            if host and not backend.implicit
            else None
        )
        headers = {"user-agent": f"falcon-ollama/{__version__}", "accept": "application/json"}
        headers.update(backend.auth_headers())
        self._headers = headers
        self._json_headers = {**headers, "content-type": "application/json"}
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        # Shown each 4xx refusal's (model, bounded body): the catalog learns a served context there.
        self.on_refusal: Callable[[str, bytes], None] | None = None

    @property
    def base_url(self) -> str:
        return self._base_url.rstrip("/")

    def without_address(self, error: UpstreamError) -> UpstreamError:
        """``error`` with this backend's host (and port) taken out of its message (named backends only)."""
        if self._address is not None:
            error.message = self._address.sub("[backend address]", error.message)
        return error

    async def start(self) -> None:
        """Create the connection pool. Called once per worker at ASGI start-up."""
        if self._session is not None:
            return
        s = self._settings
        connector = aiohttp.TCPConnector(
            limit=s.max_connections,
            limit_per_host=0,
            keepalive_timeout=30.0,
            ttl_dns_cache=300,
            ssl=ssl.create_default_context(),  # honours SSL_CERT_FILE / SSL_CERT_DIR; built once
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=s.connect_timeout, connect=s.connect_timeout
            ),
            auto_decompress=True,
            raise_for_status=False,
            skip_auto_headers=("User-Agent",),
        )
        self._proxy = resolve_proxy(self._base_url)

    async def close(self) -> None:
        """Close every pooled connection. Called at ASGI shutdown."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstream.start() was not called")
        return self._session

    async def get(
        self, path: str, *, model: str | None = None, request_id: str | None = None
    ) -> UpstreamResponse:
        """GET ``path`` (relative to the base URL); non-2xx -> OllamaError."""
        return await self._with_retries(lambda: self._send_once("GET", path, None, model, request_id))

    async def post_json(
        self,
        path: str,
        body: bytes,
        *,
        model: str | None = None,
        request_id: str | None = None,
        retries: bool = True,
    ) -> UpstreamResponse:
        """POST a JSON body and read the whole answer; non-2xx -> OllamaError. ``retries=False``: one try
        (a fallback chain moves on to its next backend instead)."""
        try:  # the first try called directly: the usual answer costs no retry machinery
            return await self._send_once("POST", path, body, model, request_id)
        except UpstreamError as exc:
            failed = exc
        return await self._with_retries(
            lambda: self._send_once("POST", path, body, model, request_id), retries=retries, failed=failed
        )

    async def _with_retries(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        retries: bool = True,
        failed: UpstreamError | None = None,
    ) -> T:
        """``attempt()`` until it succeeds or the retry policy gives up; ``failed``: the first try's error,
        when the caller made that try itself."""
        tries = 0
        while True:
            if failed is None:
                try:
                    return await attempt()
                except UpstreamError as exc:
                    failed = exc
            if self._metrics is not None:
                self._metrics.upstream_errors.labels(str(failed.upstream_status or 0), self.name).inc()
            delay = self._retry.delay(tries, failed) if retries else None
            if delay is None:
                raise failed
            tries += 1
            self.retries += 1
            if self._metrics is not None:
                self._metrics.retries.labels(self.name).inc()
            what = f"upstream {failed.upstream_status}" if failed.upstream_status else failed.message
            log.info("%s; retry %d in %.2f s", what, tries, delay)
            failed = None
            await asyncio.sleep(delay)

    async def _request(
        self, method: str, path: str, body: bytes | None, request_id: str | None
    ) -> aiohttp.ClientResponse:
        """Send and wait for the response head, within the first-byte timeout."""
        session = self._require_session()
        timeout = min(self._settings.first_byte_timeout, self._settings.total_timeout)
        headers = self._json_headers if body is not None else self._headers
        if request_id is not None:
            headers = {**headers, "x-request-id": request_id}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                response = await session.request(
                    method,
                    self._base_url + path.lstrip("/"),
                    data=body,
                    headers=headers,
                    proxy=self._proxy,
                    allow_redirects=False,
                )
            if self._metrics is not None:
                self._metrics.upstream_latency.labels(path, self.name).observe(time.perf_counter() - started)
            return response
        except TimeoutError:
            raise UpstreamError(504, f"the upstream did not answer within {timeout:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise map_transport_error(exc) from exc

    async def _read_bounded(
        self, response: aiohttp.ClientResponse, limit: int, reserve: Callable[[int], None] | None = None
    ) -> tuple[bytes, bool]:
        """At most ``limit`` decompressed bytes, and whether that was the whole body; ``reserve`` is told
        each chunk's size before it is kept (it may refuse by raising: memory_budget.py).

        Read chunk by chunk (aiohttp inflates a bounded amount per read), so a gzip bomb costs at most the
        limit. A body cut short leaves its connection closed, not returned to the pool."""
        content = response.content
        if content.is_eof():  # the whole body arrived with the head (a small answer): no loop, no timer
            return _read_buffered(response, limit, reserve)
        parts: list[bytes] = []
        size = 0
        next_yield = _YIELD_EVERY
        complete = False
        try:
            async with asyncio.timeout(self._settings.idle_timeout):
                while True:
                    chunk = await content.readany()
                    if not chunk:
                        complete = True
                        break
                    size += len(chunk)
                    if reserve is not None:
                        reserve(len(chunk))
                    if size > limit:
                        parts.append(chunk[: len(chunk) - (size - limit)])
                        break
                    parts.append(chunk)
                    if size >= next_yield:
                        # aiohttp inflates as fast as we read, without giving the loop back: do it here.
                        next_yield += _YIELD_EVERY
                        await asyncio.sleep(0)
        except TimeoutError:
            raise UpstreamError(
                504, f"the upstream sent nothing for {self._settings.idle_timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise map_transport_error(exc) from exc
        finally:
            _settle(response, complete)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), complete

    async def _read_answer(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._settings.max_upstream_body_bytes
        content, complete = await self._read_bounded(response, limit, memory_budget.reserve_answer)
        if not complete:
            raise UpstreamError(
                502,
                f"the upstream answer is larger than the limit of {limit} bytes "
                "(FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES)",
            )
        return self.redactor.chunk(content)

    async def _send_once(
        self, method: str, path: str, body: bytes | None, model: str | None, request_id: str | None
    ) -> UpstreamResponse:
        response = await self._request(method, path, body, request_id)
        if response.status >= 300:
            raise await self._status_error(response, model)
        content = await self._read_answer(response)
        return UpstreamResponse(response.status, response.headers, content)

    async def _status_error(self, response: aiohttp.ClientResponse, model: str | None) -> UpstreamError:
        """The mapped error of a non-2xx answer; its body is read only up to the error bound, once."""
        try:
            body, _ = await self._read_bounded(response, self._settings.max_upstream_error_bytes)
        except UpstreamError:
            body = b""
        if model is not None and 400 <= response.status < 500 and self.on_refusal is not None:
            self.on_refusal(model, body)
        return map_status_error(response.status, body, response.headers, model, self.redactor)

    async def open_stream(
        self,
        path: str,
        body: bytes,
        *,
        model: str | None = None,
        request_id: str | None = None,
        retries: bool = True,
    ) -> UpstreamStream:
        """POST a JSON body and return the open streamed answer once its head arrived with a 2xx status.

        Failures before that point are retried (nothing has reached the client yet); after it, never."""
        return await self._with_retries(
            lambda: self._open_stream_once(path, body, model, request_id), retries=retries
        )

    async def _open_stream_once(
        self, path: str, body: bytes, model: str | None, request_id: str | None
    ) -> UpstreamStream:
        started = asyncio.get_running_loop().time()
        response = await self._request("POST", path, body, request_id)
        if response.status >= 300:
            raise await self._status_error(response, model)
        return UpstreamStream(
            response,
            self._settings.idle_timeout,
            started + self._settings.total_timeout,
            max_bytes=self._settings.max_upstream_stream_bytes,
            redactor=self.redactor,
        )

    async def list_models(self) -> tuple[bytes, bool]:
        """The upstream's ``/models`` body, at most ``FALCON_OLLAMA_MAX_MODEL_LIST_BYTES`` of it, and
        whether that is all of it. Not an error when longer: the catalog keeps the models in that prefix."""
        return await self._with_retries(self._list_models_once)

    async def _list_models_once(self) -> tuple[bytes, bool]:
        response = await self._request("GET", "models", None, None)
        if response.status >= 300:
            raise await self._status_error(response, None)
        body, complete = await self._read_bounded(response, self._settings.max_model_list_bytes)
        return self.redactor.chunk(body), complete

    async def server_props(self) -> bytes | None:
        """llama.cpp's server ``/props`` (beside ``/v1``, at the server's root): the context it serves.
        One try, bounded like the model list; None when the upstream has no such page or fails."""
        path = "../props" if self._base_url.rstrip("/").endswith("/v1") else "props"
        try:
            response = await self._request("GET", path, None, None)
            if response.status >= 300:
                response.release()
                return None
            body, complete = await self._read_bounded(response, self._settings.max_model_list_bytes)
        except (TimeoutError, OllamaError, aiohttp.ClientError):
            return None
        return body if complete else None

    async def probe_context(self, body: bytes) -> tuple[int, bytes] | None:
        """Send the context probe (translate/context_probe.py) to ``/completions``: one try within
        ``FALCON_OLLAMA_CONTEXT_PROBE_TIMEOUT``, the answer's status and at most an error body's bytes of
        it; None when the upstream did not answer."""
        try:
            async with asyncio.timeout(self._settings.context_probe_timeout):
                response = await self._request("POST", "completions", body, None)
                answer, _ = await self._read_bounded(response, self._settings.max_upstream_error_bytes)
        except (TimeoutError, OllamaError, aiohttp.ClientError):
            return None
        return response.status, answer


def _read_buffered(
    response: aiohttp.ClientResponse, limit: int, reserve: Callable[[int], None] | None
) -> tuple[bytes, bool]:
    """:meth:`Upstream._read_bounded` for a body received whole (aiohttp has buffered it, inflated)."""
    complete = False
    try:
        body = response.content.read_nowait()
        if reserve is not None:
            reserve(len(body))
        complete = len(body) <= limit
    except (aiohttp.ClientError, OSError) as exc:
        raise map_transport_error(exc) from exc
    finally:
        _settle(response, complete)
    return (body if complete else body[:limit]), complete


def _settle(response: aiohttp.ClientResponse, complete: bool) -> None:
    """A body read whole gives its connection back to the pool; one cut short closes it."""
    if complete:
        response.release()
    else:
        response.close()


def map_status_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    model: str | None,
    redactor: Redactor = BELT_ONLY,
) -> UpstreamError:
    """Map an upstream non-2xx answer (see :func:`_map_status`) and note whether a retry may help.

    The body kept for the /v1 passthrough is JSON re-encoded by orjson (so a key cannot hide behind escapes)
    and redacted; a body that is not JSON is never passed through, so it is dropped."""
    try:
        payload: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    mapped = _map_status(status, body, payload, headers, model, redactor)
    if isinstance(payload, dict):
        _without_internals_in(payload)
    raw = redactor.data(orjson.dumps(payload)) if isinstance(payload, dict) else b""
    return UpstreamError(
        mapped.status,
        mapped.message,
        mapped.headers,
        upstream_status=status,
        # a 500 mapped to 400 said the request itself cannot be served (_map_status): not worth a retry
        retryable=status in _RETRY_STATUSES and mapped.status != 400,
        retry_after=parse_retry_after(headers),
        raw_body=raw,
        kind=_kind_of(status, mapped, payload, model),
    )


def _kind_of(status: int, mapped: OllamaError, payload: Any, model: str | None) -> ErrorKind | None:
    if status in (401, 403):
        return "key_rejected"
    if status == 404 and model is None:
        return "no_api_root"
    if mapped.status == 400:
        error = payload.get("error") if isinstance(payload, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        lowered = mapped.message.lower()
        if code == "context_length_exceeded" or "context length" in lowered or "too long" in lowered:
            return "context_length"
    return None


def parse_retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI), or ``Retry-After`` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _map_status(
    status: int, body: bytes, payload: Any, headers: Mapping[str, str], model: str | None, redactor: Redactor
) -> OllamaError:
    """Map an upstream non-2xx answer to what an Ollama client should see.

    400 -> 400 with the upstream's message; model_not_found or 404 -> 404 ``model '<name>' not found``;
    429 -> 429 keeping ``Retry-After``; 401/403 -> 502 saying the key was rejected (the upstream's own message
    is dropped: OpenAI's echoes part of the key); 408/5xx/other -> 502 or 504 with a short clean message,
    except a 500 whose message says the request is invalid or unsupported (``_REQUEST_REFUSED``) -> 400.
    """
    message, code = _error_message_and_code(body, payload, redactor)
    if status == 404 and model is None:  # not about a model: the URL itself is wrong
        return OllamaError(
            502,
            "the upstream answered 404 Not Found: is OPENAI_BASE_URL the API root (usually ending in /v1)?",
        )
    if code == "model_not_found" or (status == 404 and model is not None):
        return OllamaError(404, f"model '{model}' not found" if model is not None else "not found")
    if status in (401, 403):
        return OllamaError(
            502,
            f"the upstream rejected the API key (HTTP {status}); "
            "check OPENAI_API_KEY and the key's permissions",
        )
    if status == 429:
        extra = {"Retry-After": headers["retry-after"]} if "retry-after" in headers else None
        return OllamaError(429, message or "upstream rate limit exceeded", extra)
    if status == 413:
        return OllamaError(413, message or "request too large for the upstream")
    if status == 408 or status == 504:
        return OllamaError(504, f"the upstream timed out (HTTP {status})")
    if 400 <= status < 500:
        return OllamaError(400, message or f"the upstream rejected the request (HTTP {status})")
    if status == 500 and _REQUEST_REFUSED.search(message):
        return OllamaError(400, f"the upstream refused the request (HTTP 500): {message}")
    detail = f": {message}" if message else ""
    return OllamaError(502, f"upstream error (HTTP {status}){detail}")


def map_transport_error(exc: BaseException) -> UpstreamError:
    """Connection refused, DNS and TLS failures -> 502; timeouts -> 504.

    Failing to connect is retried (the upstream never saw the request); a connection dropped mid-answer is
    not, since the upstream may already be generating (and billing) the answer."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamError(504, "timed out connecting to the upstream", retryable=True, kind="unreachable")
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return UpstreamError(504, "timed out waiting for the upstream", kind="unreachable")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return UpstreamError(
            502, f"TLS failure talking to the upstream: {_clean(str(exc))}", kind="unreachable"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        detail = _clean(str(exc.os_error) if exc.os_error else str(exc)) or type(exc).__name__
        return UpstreamError(
            502, f"could not connect to the upstream: {detail}", retryable=True, kind="unreachable"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return UpstreamError(502, "the upstream closed the connection before the answer was complete")
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return UpstreamError(502, "the upstream closed the connection before the answer was complete")
    return UpstreamError(502, f"upstream request failed: {type(exc).__name__}")


def resolve_proxy(url: str) -> str | None:
    """The proxy for ``url`` from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``, unless ``NO_PROXY``
    excludes its host (urllib's rules, which curl and most tools share)."""
    parsed = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parsed.hostname or ""):
        return None
    return proxy


def _error_message_and_code(body: bytes, payload: Any, redactor: Redactor) -> tuple[str, str | None]:
    """Extract a short message (and OpenAI error code) from JSON, text or HTML error bodies."""
    if not body:
        return "", None
    r = redactor
    if isinstance(payload, dict):
        err = payload.get("error", payload)
        if isinstance(err, dict):
            code = err.get("code")
            message = err.get("message") or err.get("detail") or ""
            return _clean(str(message), r), code if isinstance(code, str) else None
        if isinstance(err, str):
            return _clean(err, r), None
        for key in ("message", "detail"):
            if isinstance(payload.get(key), str):
                return _clean(payload[key], r), None
        return "", None
    title = _HTML_TITLE.search(body)
    if title is not None:
        return _clean(title.group(1).decode("utf-8", "replace"), r), None
    if body.lstrip()[:1] == b"<":
        return "", None
    return _clean(body.decode("utf-8", "replace"), r), None


def _without_internals(text: str) -> str:
    """The upstream's message without its internals: the lines before a traceback or stack trace (or, when
    the text is one from its first line, the exception line that ends it), file paths replaced by
    ``[path]``. Paths of API routes (``/v1/chat/completions``) are not file paths and stay."""
    lines = text.splitlines()
    cut = next((i for i, line in enumerate(lines) if _TRACEBACK.match(line)), None)
    if cut is not None:
        kept = [line for line in lines[:cut] if line.strip()]
        if not kept:  # a bare traceback: its last unindented line names the error
            tail = [line for line in lines[cut:] if line.strip() and not line[:1].isspace()]
            kept = tail[-1:] if tail and not _TRACEBACK.match(tail[-1]) else []
        text = "\n".join(kept)
    return _PATH.sub(_path_or_route, text)


def _path_or_route(match: re.Match[str]) -> str:
    path = match.group(0)
    first = re.split(r"[/\\]", path.lstrip("~"), maxsplit=2)
    root = first[1] if len(first) > 1 else ""
    is_file = path[:1] == "~" or path[1:2] == ":" or root in _SYSTEM_ROOTS
    return "[path]" if is_file or _FILE_SUFFIX.search(path.rstrip("/\\")) else path


def _without_internals_in(payload: dict[str, Any]) -> None:
    """The same cleaning for the message of an error body kept for the /v1 passthrough."""
    err = payload.get("error")
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        err["message"] = _without_internals(err["message"])


def _clean(text: str, redactor: Redactor = BELT_ONLY) -> str:
    """One line without internals (:func:`_without_internals`), no control characters, no keys or key-like
    strings, bounded length (cut after redacting, so a cut never leaves half a key)."""
    text = redactor.text(_CONTROL.sub("", " ".join(_without_internals(text).split())))
    if len(text) > _MAX_ERROR_MESSAGE:
        text = text[: _MAX_ERROR_MESSAGE - 1] + "…"
    return text
