"""Prometheus metrics, one ``Metrics`` per app (no module-level registry, so tests can build many apps).

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by gunicorn.conf.py (cleaned at start, dead workers
marked): every worker writes its samples to memory-mapped files there and one scrape of ``/metrics`` on any
worker aggregates them all. Without it (``falcon-ollama serve``, tests) the metrics live in this process.

Label values are bounded: ``route`` is the route template (``unmatched`` for unknown paths), ``model`` is a
model the catalog lists (``unlisted`` for names passed through by FALCON_OLLAMA_ALLOW_UNLISTED_MODELS,
``unknown`` before a model was resolved), ``status`` an HTTP status, or ``stream_error`` for a stream that
failed after its 200 went out (it ended with an error line; a client that left mid-stream counts as ``499``),
``backend`` a backend the configuration names: a client cannot blow up the series count.
"""

from __future__ import annotations

import os
from typing import Any, Literal, TypeVar

import falcon
import falcon.asgi
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.metrics import MetricWrapperBase

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_M = TypeVar("_M", bound="_CachedLabels")


class _CachedLabels(MetricWrapperBase):
    """``labels(*values)`` answered from a dict once a label set has been seen.

    prometheus_client's own ``labels`` checks, converts and locks on every call (about 0.7 µs, and a request
    makes several); the child it returns is the same object every time, so it is kept here, keyed by the
    values as given. Label sets are bounded (see the module docstring), and nothing here removes children."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._children: dict[tuple[object, ...], Any] = {}
        super().__init__(*args, **kwargs)

    def labels(self: _M, *labelvalues: object, **labelkwargs: object) -> _M:
        if labelkwargs:
            return super().labels(*labelvalues, **labelkwargs)
        child: _M | None = self._children.get(labelvalues)
        if child is None:
            child = self._children[labelvalues] = super().labels(*labelvalues)
        return child


class _Counter(_CachedLabels, Counter):
    pass


class _Histogram(_CachedLabels, Histogram):
    pass


class Metrics:
    """The service's metrics; ``multiprocess_dir`` set means gunicorn's shared-file mode."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        registry = CollectorRegistry(auto_describe=True)
        self._registry = registry

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> _Counter:
            return _Counter(name, doc, labels, registry=registry)

        def seconds(name: str, doc: str, labels: tuple[str, ...]) -> _Histogram:
            return _Histogram(name, doc, labels, buckets=_LATENCY_BUCKETS, registry=registry)

        def gauge(name: str, doc: str, multiprocess_mode: Literal["livesum", "livemin"]) -> Gauge:
            """``multiprocess_mode``: how gunicorn's workers' values combine (livesum, livemin)."""
            return Gauge(name, doc, registry=registry, multiprocess_mode=multiprocess_mode)

        self.requests = counter(
            "falcon_ollama_requests",
            "Requests handled (status: HTTP status, or stream_error for a stream that failed after its 200)",
            ("route", "model", "status"),
        )
        self.latency = seconds(
            "falcon_ollama_request_duration_seconds",
            "Time from request to the last byte of the answer",
            ("route",),
        )
        self.first_chunk = seconds(
            "falcon_ollama_time_to_first_chunk_seconds",
            "Time from request to the first streamed chunk written to the client",
            ("route",),
        )
        self.upstream_latency = seconds(
            "falcon_ollama_upstream_response_seconds",
            "Time until the upstream's response head (or whole answer when not streamed)",
            ("path", "backend"),
        )
        self.upstream_errors = counter(
            "falcon_ollama_upstream_errors",
            "Upstream failures by upstream status (0: no answer) and backend",
            ("status", "backend"),
        )
        self.retries = counter("falcon_ollama_upstream_retries", "Upstream requests retried", ("backend",))
        # A fallback chain moving on from one backend to the next (falcon_ollama/upstreams.py).
        self.backend_fallbacks = counter(
            "falcon_ollama_backend_fallbacks",
            "Requests a fallback chain moved from one backend to the next",
            ("backend", "to"),
        )
        self.in_flight = gauge(
            "falcon_ollama_in_flight_requests",
            "Requests being handled (streams count until their last byte)",
            "livesum",
        )
        self.tokens = counter("falcon_ollama_tokens", "Tokens reported by the upstream", ("model", "kind"))
        # Per named tenant (FALCON_OLLAMA_TENANTS_FILE): the tenant label is bounded by that file.
        self.tenant_requests = counter(
            "falcon_ollama_tenant_requests", "Requests of named tenants", ("tenant", "model", "status")
        )
        self.tenant_tokens = counter(
            "falcon_ollama_tenant_tokens",
            "Tokens reported by the upstream, per named tenant",
            ("tenant", "model", "kind"),
        )
        self.tenant_limited = counter(
            "falcon_ollama_tenant_limited",
            "Requests of named tenants refused by a limit (requests, tokens or streams per tenant)",
            ("tenant", "limit"),
        )
        # The tenants' limit store (falcon_ollama/limit_store.py): 0 while a worker cannot reach it.
        self.limit_store_up = gauge(
            "falcon_ollama_limit_store_up",
            "1 while the limit store (Redis or embedded) answers, 0 during an outage",
            "livemin",
        )
        self.limit_store_errors = Counter(
            "falcon_ollama_limit_store_errors",
            "Limit checks the store failed or did not answer in time",
            registry=registry,
        )
        # The bytes reserved on the workers' memory budgets (falcon_ollama/memory_budget.py), summed.
        self.memory_held = Gauge(
            "falcon_ollama_memory_budget_held_bytes",
            "Bytes reserved for requests in flight on the worker memory budget",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "falcon_ollama_rejected_requests",
            "Requests refused before any work",
            ["reason"],
            registry=registry,
        )

    def render(self) -> bytes:
        """The exposition text: every worker's samples in multiprocess mode, else this process's."""
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self._registry)


def multiprocess_dir_from_env() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when it names an existing directory (prometheus_client's contract)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


class MetricsResource:
    """``GET /metrics``: Prometheus text format."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = CONTENT_TYPE
        resp.data = self._metrics.render()
