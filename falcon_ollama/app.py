"""``create_app(settings)``: builds every collaborator once, wires the routes, owns start-up and shutdown.

Following Falcon's asgilook layout: no module-level state; each resource gets what it needs through its
constructor; tests call ``create_app`` with their own Settings. Under gunicorn each worker calls
:func:`app_from_env` and opens its own upstream pool at ASGI start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import falcon
import falcon.asgi

from falcon_ollama import memory_budget
from falcon_ollama.access import AccessControl, OriginPolicy
from falcon_ollama.admission import Admission
from falcon_ollama.catalog import Catalog
from falcon_ollama.errors import OllamaError, ProxyError
from falcon_ollama.ledger import LedgerWriter, make_ledger
from falcon_ollama.limit_store import FAIL_CLOSED, Limiter, make_store
from falcon_ollama.logs import WarnOnce
from falcon_ollama.memory_budget import MemoryBudget
from falcon_ollama.metrics import Metrics, MetricsResource, multiprocess_dir_from_env
from falcon_ollama.ratelimit import default_store_path
from falcon_ollama.requestlog import RequestTracking
from falcon_ollama.resources.chat import ChatResource, CompletionDeps, GenerateResource
from falcon_ollama.resources.cloud import (
    NOT_CONNECTED,
    AccountResource,
    RecommendationsResource,
    StatusResource,
    WebToolResource,
)
from falcon_ollama.resources.completions import CompletionsResource
from falcon_ollama.resources.discovery import (
    PsResource,
    RootResource,
    ShowResource,
    TagsResource,
    VersionResource,
    process_start_time,
)
from falcon_ollama.resources.embed import EmbedDeps, EmbeddingsResource, EmbedResource
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.resources.health import HealthResource, ReadyResource
from falcon_ollama.resources.manage import NotManagedResource, PullResource
from falcon_ollama.resources.messages import CountTokensResource, MessagesDeps, MessagesResource
from falcon_ollama.resources.openai_compat import ForwardResource, ModelResource, ModelsResource
from falcon_ollama.resources.relay import Relay
from falcon_ollama.resources.responses import ResponsesResource, forwards
from falcon_ollama.resources.upstream_call import RECEIVE_SCOPE_KEY, UpstreamCall
from falcon_ollama.running import RunningModels
from falcon_ollama.settings import Settings
from falcon_ollama.translate.rules import RequestRules
from falcon_ollama.upstream import Upstream
from falcon_ollama.upstreams import Upstreams
from falcon_ollama.wire import JSON_CONTENT_TYPE, error_body

log = logging.getLogger("falcon_ollama.app")


@dataclass(frozen=True, slots=True)
class Services:
    """The app-scoped collaborators, exposed for tests and operator tooling."""

    settings: Settings
    upstream: Upstream  # the first backend's (the only one without [backends] in the catalog file)
    catalog: Catalog
    running: RunningModels
    backends: Upstreams
    ledger: LedgerWriter | None = None  # the tenants' usage ledger (FALCON_OLLAMA_TENANTS_FILE set)


class _Lifespan:
    """ASGI lifespan hooks: open the upstream pool and warm the model list per worker; close at shutdown."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self._services.backends.start()
        self._services.catalog.start_background_refresh()

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self._services.catalog.close()
        await self._services.backends.close()
        if self._services.ledger is not None:
            await self._services.ledger.drain()  # writes still in flight, then the file or connection


class FalconOllamaApp(falcon.asgi.App):  # type: ignore[type-arg]
    """Falcon's ASGI app plus the ``services`` it was built with.

    It also puts the ASGI ``receive`` callable into the request scope: the streaming relay needs it to see
    a client disconnect (Falcon does not expose it, and uvicorn's ``send`` is silent after a disconnect).
    With the worker's memory budget on, each HTTP request holds its share of it (memory_budget.py) from here
    until its last byte was sent, released however it ends."""

    services: Services
    memory_budget: MemoryBudget | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # type: ignore[override]
        scope[RECEIVE_SCOPE_KEY] = receive
        budget = self.memory_budget
        if budget is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        hold = budget.open()
        token = memory_budget.enter(hold)  # in the request's own task: its context
        try:
            await super().__call__(scope, receive, send)
        finally:
            memory_budget.leave(token, hold)


def create_app(settings: Settings) -> FalconOllamaApp:
    """Build the ASGI app for ``settings``. ``app.services`` holds the collaborators (for tests)."""
    metrics = Metrics(multiprocess_dir_from_env())
    backends = Upstreams(settings, metrics)  # one Upstream per backend (backends.py)
    upstream = backends.first
    admission = Admission(settings.max_in_flight, settings.max_queue, metrics)
    # Every route's one way upstream: slot, disconnect watching, request id, end-of-stream bookkeeping.
    upstream_call = UpstreamCall(backends, admission, max_accumulated=settings.max_stream_accumulated_bytes)
    catalog = Catalog(
        settings.catalog,
        list(backends),
        ttl=settings.models_ttl,
        allow_unlisted=settings.allow_unlisted_models,
        max_models=settings.max_models,
        probe_tokens=settings.context_probe_tokens,
        probe_models=settings.context_probe_models,
    )
    ledger = (
        LedgerWriter(
            make_ledger(
                settings.redis_url,
                settings.ledger_path,
                timeout=settings.limit_store_timeout,
                retention_days=settings.ledger_retention_days,
            )
        )
        if settings.tenants
        else None
    )
    services = Services(settings, upstream, catalog, RunningModels(), backends, ledger)

    # AccessControl last: when it refuses a request the others' process_request has already run.
    middleware: list[Any] = [
        _Lifespan(services),
        RequestTracking(metrics),
        access_control(settings, metrics, ledger),
    ]
    app = FalconOllamaApp(middleware=middleware, cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(falcon.HTTPError, _handle_http_error)
    app.add_error_handler(OllamaError, _handle_ollama_error)
    app.add_error_handler(ProxyError, _handle_proxy_error)

    started_at = process_start_time()
    limits = settings.limits
    rules = RequestRules(include_usage=settings.stream_usage, limits=limits)
    app.add_route("/", RootResource())
    app.add_route("/health", HealthResource())
    app.add_route("/metrics", MetricsResource(metrics))
    # Ready while the model list was refreshed within two TTLs (plus the failure back-off): the catalog
    # keeps serving a stale list through short outages, readiness reports a long one.
    ready = ReadyResource(catalog, max_age=2 * settings.models_ttl + 30, breakers=backends.breakers)
    app.add_route("/ready", ready)
    app.add_route("/api/version", VersionResource(settings.reported_version))
    app.add_route("/api/tags", TagsResource(catalog, started_at))
    app.add_route("/api/show", ShowResource(catalog, started_at, limits))
    app.add_route("/api/ps", PsResource(services.running))
    completion = CompletionDeps(
        catalog=catalog,
        running=services.running,
        relay=Relay(upstream_call, log_bodies=settings.log_bodies),
        warn_once=WarnOnce(logging.getLogger("falcon_ollama.options")),
        rules=rules,
        keep_alive_default=settings.keep_alive_default,
    )
    app.add_route("/api/chat", ChatResource(completion))
    generate = GenerateResource(completion)
    app.add_route("/api/generate", generate)
    embed = EmbedDeps(
        catalog=catalog,
        running=services.running,
        call=upstream_call,
        limits=limits,
        keep_alive_default=settings.keep_alive_default,
        batch_size=settings.embed_batch_size,
        batch_tokens=settings.embed_batch_tokens,
        concurrency=settings.embed_concurrency,
    )
    app.add_route("/api/embed", EmbedResource(embed))
    app.add_route("/api/embeddings", EmbeddingsResource(embed))
    app.add_route("/api/pull", PullResource(catalog, limits))
    app.add_route("/v1/models", ModelsResource(catalog, started_at))
    app.add_route("/v1/models/{model}", ModelResource(catalog, started_at))
    for path in ("chat/completions", "embeddings"):
        app.add_route(f"/v1/{path}", ForwardResource(path, catalog, upstream_call, limits))
    legacy = ForwardResource("completions", catalog, upstream_call, limits)
    app.add_route("/v1/completions", CompletionsResource(generate, legacy, catalog, limits))
    add_cloud_routes(app)
    # auto: forwarded only when every backend is OpenAI's own API (each model's backend must speak it).
    if all(forwards(settings.responses_mode, b.base_url) for b in settings.backends):
        app.add_route("/v1/responses", ForwardResource("responses", catalog, upstream_call, limits))
    else:
        responses = ResponsesResource(catalog, upstream_call, rules)
        app.add_route("/v1/responses", responses)
    messages = MessagesDeps(
        catalog=catalog,
        running=services.running,
        call=upstream_call,
        limits=limits,
        warn_once=WarnOnce(logging.getLogger("falcon_ollama.anthropic")),
        keep_alive_default=settings.keep_alive_default,
        stream_usage=settings.stream_usage,
    )
    app.add_route("/v1/messages", MessagesResource(messages))
    app.add_route("/v1/messages/count_tokens", CountTokensResource(messages))
    app.add_route("/api/push", NotManagedResource("/api/push", ("POST",)))
    app.add_route("/api/create", NotManagedResource("/api/create", ("POST",)))
    app.add_route("/api/copy", NotManagedResource("/api/copy", ("POST",)))
    app.add_route("/api/delete", NotManagedResource("/api/delete", ("DELETE",)))
    app.add_route("/api/blobs/{digest}", NotManagedResource("/api/blobs", ("HEAD", "POST")))

    app.services = services
    if settings.worker_memory_budget:
        app.memory_budget = MemoryBudget(
            settings.worker_memory_budget,
            on_refused=metrics.rejected.labels("memory").inc,
            on_change=metrics.memory_held.set,
        )
    return app


def add_cloud_routes(app: falcon.asgi.App) -> None:  # type: ignore[type-arg]
    """ollama.com's routes, as an Ollama with its cloud disabled answers them (resources/cloud.py)."""
    app.add_route("/api/status", StatusResource())
    app.add_route("/api/me", AccountResource(f"unauthorized: {NOT_CONNECTED}", "POST"))
    app.add_route("/api/signout", AccountResource("you are not currently signed in", "POST"))
    app.add_route("/api/user/keys/{key}", AccountResource("you are not currently signed in", "DELETE"))
    app.add_route("/api/experimental/web_search", WebToolResource("web search is unavailable"))
    app.add_route("/api/experimental/web_fetch", WebToolResource("web fetch is unavailable"))
    app.add_route("/api/experimental/model-recommendations", RecommendationsResource())


def access_control(
    settings: Settings, metrics: Metrics | None = None, ledger: LedgerWriter | None = None
) -> AccessControl:
    """The Host check applies only when bound to loopback, as in Ollama: elsewhere any name may fit."""
    access = settings.access
    return AccessControl(
        api_keys=access.api_keys,
        tenants=settings.tenants,
        limiter=limiter(settings, metrics) if settings.tenants.limited() else None,
        ledger=ledger,
        exempt_paths=access.auth_exempt_paths,
        origins=OriginPolicy(access.ollama_origins),
        check_host=access.check_host and settings.bind.is_loopback,
    )


def limiter(settings: Settings, metrics: Metrics | None = None) -> Limiter:
    """The tenants' limit store (Redis when configured, else the machine's embedded one) and its policy."""
    store = make_store(
        settings.redis_url,
        default_store_path(settings.tenants.source),
        timeout=settings.limit_store_timeout,
        max_backoff=settings.redis_max_backoff,
    )
    return Limiter(
        store,
        fail_closed=settings.limit_store_failure == FAIL_CLOSED,
        metrics=metrics,
        lease_seconds=settings.stream_lease_seconds,
    )


def app_from_env() -> FalconOllamaApp:
    """The uvicorn factory: settings from the environment (already validated by the launcher)."""
    return app_from_settings(Settings.from_env())


def app_from_settings(settings: Settings) -> FalconOllamaApp:
    """A server process's app: logging configured from ``settings``, then the app."""
    from falcon_ollama.logs import configure_logging
    from falcon_ollama.redaction import redactor_for

    configure_logging(settings.log_level, settings.log_format, settings.log_file, redactor_for(settings))
    return create_app(settings)


async def _handle_ollama_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: OllamaError, params: dict[str, Any]
) -> None:
    resp.status = ex.status
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = error_body(ex.message)
    for name, value in ex.headers.items():
        resp.set_header(name, value)


async def _handle_proxy_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: ProxyError, params: dict[str, Any]
) -> None:
    """A domain error from translation or validation: the status from the edge's table, Ollama's shape."""
    resp.status = status_of(ex)
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = error_body(ex.message)
    for name, value in ex.headers.items():
        resp.set_header(name, value)


async def _handle_http_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: falcon.HTTPError, params: dict[str, Any]
) -> None:
    """Falcon's own errors (unknown route, wrong method, bad headers) in Ollama's JSON shape."""
    status = ex.status_code
    if status == 404:
        message = "404 page not found"  # gin's text, as Ollama answers an unknown route
    elif status == 405:
        message = "405 method not allowed"
    else:
        message = ex.description or ex.title or f"HTTP {status}"
    resp.status = status
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = error_body(message)
    headers = ex.headers
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if name.lower() != "content-type":
                resp.set_header(name, value)


async def _handle_unexpected(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: dict[str, Any]
) -> None:
    """A bug: log it with the traceback, answer 500 in Ollama's shape, keep the worker alive."""
    if isinstance(ex, falcon.HTTPError):  # Falcon dispatches to the most specific handler; belt and braces
        await _handle_http_error(req, resp, ex, params)
        return
    log.exception("unhandled error on %s %s", req.method, req.path)
    resp.status = 500
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = error_body("internal server error")
