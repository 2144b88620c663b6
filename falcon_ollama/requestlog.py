"""Per-request bookkeeping: the request id, one summary log line and the request metrics.

``RequestTracking`` (Falcon middleware) gives every request a ``RequestInfo`` on ``req.context.info``: an id
(the client's ``X-Request-ID`` when it is sane, else a new one), returned in ``X-Request-ID`` and sent
upstream. Resources fill in the model and the relay the tokens, upstream status and time to first chunk.
The summary line and the metrics are written by :meth:`RequestInfo.finish`: for a plain response when the
response is complete, for a stream when its last byte was written (the stream's owner calls it). A stream
that failed after its ``200`` went out (it ended with an error line) counts with the status label
``stream_error``, and one whose client left mid-stream with ``499``: the owner sets ``outcome``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import falcon
import falcon.asgi

from falcon_ollama.catalog import ModelEntry
from falcon_ollama.metrics import Metrics

log = logging.getLogger("falcon_ollama.request")

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_NOT_LOGGED = frozenset({"/health", "/ready", "/metrics"})
# Not counted in the in-flight gauge: a scrape would otherwise always see itself (an idle server reading 1).
_NOT_COUNTED = frozenset({"/metrics"})


@dataclass(slots=True, eq=False)
class RequestInfo:
    """What is known about one request, filled in as it goes."""

    id: str
    method: str
    path: str
    route: str
    _metrics: Metrics
    client: str | None = None
    started_ns: int = field(default_factory=time.monotonic_ns)
    model: str | None = None
    model_label: str = "unknown"  # metrics label: a catalog name, "unlisted" or "unknown" (bounded)
    status: int = 200
    outcome: str | None = None  # the status label when it is not the HTTP status (failed streams)
    upstream_status: int | None = None
    backend: str | None = None  # the backend that answered (several backends: upstreams.py)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_chunk_ns: int | None = None
    tenant: str | None = None  # a named tenant of FALCON_OLLAMA_TENANTS_FILE (set by access.py)
    # Called once by finish(), with the final status and usage (a tenant's tokens charged, its stream's
    # lease released); and awaited before a stream opens upstream (a tenant's stream cap: may raise).
    on_finish: list[Callable[[RequestInfo], None]] = field(default_factory=list)
    stream_gate: Callable[[], Awaitable[None]] | None = None
    _done: bool = False
    _counted: bool = False

    def __post_init__(self) -> None:
        self._counted = self.path not in _NOT_COUNTED
        if self._counted:
            self._metrics.in_flight.inc()

    def first_chunk(self) -> None:
        if self.first_chunk_ns is None:
            self.first_chunk_ns = time.monotonic_ns()

    def finish(self) -> None:
        """Write the summary line and the metrics, once."""
        if self._done:
            return
        self._done = True
        now = time.monotonic_ns()
        total = (now - self.started_ns) / 1e9
        metrics = self._metrics
        model = self.model_label
        if self._counted:
            metrics.in_flight.dec()
        metrics.requests.labels(self.route, model, self.outcome or str(self.status)).inc()
        metrics.latency.labels(self.route).observe(total)
        fields: dict[str, Any] = {
            "request_id": self.id,
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "total_ms": round(total * 1000, 2),
        }
        if self.outcome:
            fields["outcome"] = self.outcome
        if self.client:
            fields["client"] = self.client
        if self.tenant:
            fields["tenant"] = self.tenant
        if self.model:
            fields["model"] = self.model
        if self.first_chunk_ns is not None:
            ttfc = (self.first_chunk_ns - self.started_ns) / 1e9
            metrics.first_chunk.labels(self.route).observe(ttfc)
            fields["first_chunk_ms"] = round(ttfc * 1000, 2)
        if self.upstream_status is not None:
            fields["upstream_status"] = self.upstream_status
        if self.backend is not None:
            fields["backend"] = self.backend
        if self.prompt_tokens is not None:
            fields["prompt_tokens"] = self.prompt_tokens
            metrics.tokens.labels(model, "prompt").inc(self.prompt_tokens)
        if self.completion_tokens is not None:
            fields["completion_tokens"] = self.completion_tokens
            metrics.tokens.labels(model, "completion").inc(self.completion_tokens)
        if self.tenant:
            self._charge(self.tenant, model)
        if self.route not in _NOT_LOGGED:
            log.info("%s %s %d", self.method, self.path, self.status, extra={"fields": fields})
        for callback in self.on_finish:
            try:
                callback(self)
            except Exception:
                log.exception("end-of-request hook failed (request %s)", self.id)

    def _charge(self, tenant: str, model: str) -> None:
        """Per-tenant accounting in Prometheus: the request, and its tokens once known."""
        metrics = self._metrics
        metrics.tenant_requests.labels(tenant, model, self.outcome or str(self.status)).inc()
        if self.prompt_tokens is not None:
            metrics.tenant_tokens.labels(tenant, model, "prompt").inc(self.prompt_tokens)
        if self.completion_tokens is not None:
            metrics.tenant_tokens.labels(tenant, model, "completion").inc(self.completion_tokens)


class RequestTracking:
    """Falcon middleware: creates the RequestInfo, sets ``X-Request-ID``, finishes plain responses."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        given = req.get_header("X-Request-ID")
        request_id = given if given and _SANE_ID.match(given) else new_request_id()
        req.context.info = RequestInfo(
            request_id, req.method, req.path, req.path, self._metrics, req.remote_addr
        )
        resp.set_header("X-Request-ID", request_id)

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, params: dict[str, Any]
    ) -> None:
        if req.uri_template:
            req.context.info.route = req.uri_template

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: object, req_succeeded: bool
    ) -> None:
        info: RequestInfo | None = getattr(req.context, "info", None)
        if info is None:
            return
        info.status = resp.status_code
        if info.route == info.path and resource is None:
            info.route = "unmatched"  # unknown paths share one label value
        if resp.stream is None:
            info.finish()
        # else: the stream's owner calls info.finish() after its last byte


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, exactly what ``uuid.uuid4().hex`` returns, for a third of
    its cost (no UUID object)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def info_of(req: falcon.asgi.Request) -> RequestInfo | None:
    info: RequestInfo | None = getattr(req.context, "info", None)
    return info


def note_model(req: falcon.asgi.Request, entry: ModelEntry) -> None:
    """Record the resolved model: its name in the log line, a bounded label in the metrics (a name the
    catalog does not list, passed through by FALCON_OLLAMA_ALLOW_UNLISTED_MODELS, counts as "unlisted")."""
    info: RequestInfo | None = getattr(req.context, "info", None)
    if info is not None:
        info.model = entry.name
        info.model_label = entry.name if entry.listed else "unlisted"
