"""Configuration: environment variables and an optional ``.env`` file -> one validated, immutable Settings.

Everything is read and checked once, at start-up, so that a bad value stops the process with a single line
that names the variable (``SettingsError``), instead of surfacing later as a failed request. Real environment
variables win over the ``.env`` file, as with docker compose and most twelve-factor tools.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, cast

from falcon_ollama.access import (
    DEFAULT_AUTH_EXEMPT_PATHS,
    ApiKeys,
    parse_api_keys,
    parse_exempt_paths,
    parse_origins,
    read_api_keys_file,
)
from falcon_ollama.backends import DIALECTS, BackendConfig, Dialect, implicit_backend
from falcon_ollama.catalog_config import CatalogConfig, load_catalog_file
from falcon_ollama.limits import MAX_JSON_DEPTH, Limits
from falcon_ollama.secret_urls import redacted_url
from falcon_ollama.sse import MAX_STREAM_ACCUMULATED_BYTES
from falcon_ollama.tenants import Tenants, read_tenants_file
from falcon_ollama.variables import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    SECONDS,
    Choice,
    Integer,
    SettingsError,
    Variable,
    boolean,
    group,
    http_url,
    keep_alive_seconds,
    redis_url,
    text,
    version,
    writable_directory,
    writable_file,
)

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OLLAMA_PORT = 11434
# Ollama's newest stable release when written: clients that gate features on /api/version (GitHub Copilot's
# Ollama provider needs >= 0.6.4) enable them all.
DEFAULT_REPORTED_VERSION = "0.32.15"
# Below this a request line with a long path and the usual headers no longer fits.
MIN_HEADER_BYTES = 1024

# Names the .env file itself: read before the file, so not one of VARIABLES.
ENV_FILE_VARIABLE = "FALCON_OLLAMA_ENV_FILE"
_AT_LEAST_1 = Integer(minimum=1, expected="an integer >= 1")  # the gunicorn variables' wording

V = TypeVar("V")

# The catalog shipped inside the package, served when FALCON_OLLAMA_CATALOG is unset (gunicorn from a
# checkout, ``falcon-ollama serve``, the image): every start path answers the same names.
SHIPPED_CATALOG = Path(__file__).with_name("models.toml")
CATALOG_SHIPPED = "shipped"  # FALCON_OLLAMA_CATALOG's word for it (the default)
CATALOG_OFF = "none"  # FALCON_OLLAMA_CATALOG's word for no file: built-in facts only, no aliases


def _shipped_catalog() -> CatalogConfig:
    return load_catalog_file(SHIPPED_CATALOG)


def _catalog_setting(text: str) -> str | None:
    """FALCON_OLLAMA_CATALOG: ``shipped`` (the default), ``none`` (no file: built-in facts, no aliases), or
    a path."""
    return None if text.lower() == CATALOG_OFF else text


def catalog_file(setting: str) -> Path:
    """The file a FALCON_OLLAMA_CATALOG value names."""
    return SHIPPED_CATALOG if setting == CATALOG_SHIPPED else Path(setting)


__all__ = ["VARIABLES", "BindAddress", "Settings", "SettingsError", "Variable"]


@dataclass(frozen=True, slots=True)
class BindAddress:
    """Where the server listens, parsed the way Ollama parses ``OLLAMA_HOST``."""

    host: str
    port: int

    @property
    def gunicorn_bind(self) -> str:
        """The ``bind`` string gunicorn understands (IPv6 literals in brackets)."""
        host = self.host or "0.0.0.0"
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def uvicorn_host(self) -> str:
        """An empty host means every interface, as with Go's ``net.Listen(":port")``."""
        return self.host or "0.0.0.0"

    @property
    def is_loopback(self) -> bool:
        if self.host in ("localhost", ""):
            return self.host == "localhost"
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_ollama_host(value: str | None) -> BindAddress:
    """Parse ``OLLAMA_HOST`` like Ollama's ``envconfig.Host``.

    Accepted: ``host:port``, ``:port`` (every interface), a bare host (port 11434), ``[::1]:port``, a bare
    IPv6 literal, and an optional ``http://`` / ``https://`` scheme and trailing path (both ignored for
    binding; a scheme without a port implies 80 / 443 as in Ollama). Unlike Ollama, which logs a warning and
    falls back to the default port, an invalid port is an error here: a server that silently listens somewhere
    else than configured is worse than one that refuses to start.
    """
    raw = (value or "").strip()
    if not raw:
        return BindAddress("127.0.0.1", DEFAULT_OLLAMA_PORT)
    default_port = DEFAULT_OLLAMA_PORT
    scheme, sep, rest = raw.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme == "http":
            default_port = 80
        elif scheme == "https":
            default_port = 443
        else:
            raise SettingsError(f"OLLAMA_HOST: unsupported scheme {scheme!r} in {raw!r}")
        hostport = rest
    else:
        hostport = raw
    hostport = hostport.split("/", 1)[0]
    host, port_text = _split_host_port(hostport)
    if port_text is None:
        return BindAddress(host if host is not None else "127.0.0.1", default_port)
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise SettingsError(f"OLLAMA_HOST: invalid port {port_text!r} in {raw!r} (expected 1-65535)")
    return BindAddress(host or "", int(port_text))


def _split_host_port(hostport: str) -> tuple[str | None, str | None]:
    """Split like Go's ``net.SplitHostPort``; ``(host, None)`` when there is no port part."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SettingsError(f"OLLAMA_HOST: missing ']' in {hostport!r}")
        host = hostport[1:end]
        rest = hostport[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise SettingsError(f"OLLAMA_HOST: unexpected {rest!r} after the address")
        return host, rest[1:]
    if hostport.count(":") > 1:  # a bare IPv6 literal such as ::1
        try:
            return str(ipaddress.IPv6Address(hostport)), None
        except ValueError as exc:
            raise SettingsError(f"OLLAMA_HOST: invalid address {hostport!r}") from exc
    if ":" in hostport:
        host, _, port = hostport.partition(":")
        return host, port
    return (hostport or None), None


# --- every variable, declared once -------------------------------------------------------------------------
# To add one: a row `_V("FALCON_OLLAMA_X", parser, default, "one doc line")` in its group below (add
# `attribute="..."` when the Settings field is not the name in lower case without FALCON_OLLAMA_), and the
# field `x: type = _default("x")` on Settings. Bounded numbers parse with Integer(...) / Real(...) or the
# shared POSITIVE_INT, NON_NEGATIVE_INT, SECONDS, NON_NEGATIVE (falcon_ollama/variables.py). The reader, the
# docs tests and gunicorn.conf.py pick the row up; document it in .env.example, README and configuration.md.
_L = Limits()  # the input limits' defaults live on Limits
_V = Variable
VARIABLES: tuple[Variable, ...] = (
    *group(
        "upstream",
        _V("OPENAI_API_KEY", text, None, "the upstream's API key (unset: offline demo)"),
        _V("OPENAI_BASE_URL", http_url, DEFAULT_OPENAI_BASE_URL, "the upstream's /v1 URL"),
        _V("OPENAI_ORGANIZATION", text, None, "sent as OpenAI-Organization"),
        _V("OPENAI_PROJECT", text, None, "sent as OpenAI-Project"),
        _V(
            "FALCON_OLLAMA_UPSTREAM_DIALECT",
            Choice(DIALECTS, "chat or responses"),
            "chat",
            "default backend's API: chat or responses",
        ),
        _V("FALCON_OLLAMA_CONNECT_TIMEOUT", SECONDS, 10.0, "seconds to connect to the upstream"),
        _V("FALCON_OLLAMA_FIRST_BYTE_TIMEOUT", SECONDS, 600.0, "seconds until the upstream's first byte"),
        _V("FALCON_OLLAMA_IDLE_TIMEOUT", SECONDS, 300.0, "seconds a stream may stay silent"),
        _V("FALCON_OLLAMA_TOTAL_TIMEOUT", SECONDS, 1800.0, "seconds one upstream answer may take"),
        _V("FALCON_OLLAMA_MAX_CONNECTIONS", POSITIVE_INT, 1024, "upstream connections per worker"),
        _V("FALCON_OLLAMA_MAX_RETRIES", NON_NEGATIVE_INT, 2, "retries of a failed upstream request"),
        _V("FALCON_OLLAMA_RETRY_BASE_DELAY", NON_NEGATIVE, 0.5, "first retry back-off, seconds"),
        _V("FALCON_OLLAMA_MAX_RETRY_WAIT", NON_NEGATIVE, 20.0, "longest Retry-After honoured, seconds"),
        _V("FALCON_OLLAMA_BREAKER_FAILURES", POSITIVE_INT, 5, "failures in a row that open a breaker"),
        _V("FALCON_OLLAMA_BREAKER_COOLDOWN", SECONDS, 30.0, "seconds an open backend is skipped"),
        _V(
            "FALCON_OLLAMA_FALLBACK_MAX_RETRY_AFTER",
            NON_NEGATIVE,
            2.0,
            "longest Retry-After waited in a chain, s",
        ),
        _V("FALCON_OLLAMA_STREAM_USAGE", boolean, True, "ask streams for token usage"),
        _V(
            "FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES",
            POSITIVE_INT,
            128 * 1024 * 1024,
            "largest upstream answer",
        ),
        _V("FALCON_OLLAMA_MAX_UPSTREAM_ERROR_BYTES", POSITIVE_INT, 64 * 1024, "largest upstream error body"),
        _V(
            "FALCON_OLLAMA_MAX_UPSTREAM_STREAM_BYTES",
            POSITIVE_INT,
            256 * 1024 * 1024,
            "largest upstream stream",
        ),
        _V(
            "FALCON_OLLAMA_MAX_MODEL_LIST_BYTES",
            POSITIVE_INT,
            16 * 1024 * 1024,
            "largest upstream model list",
        ),
        _V(
            "FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES",
            POSITIVE_INT,
            MAX_STREAM_ACCUMULATED_BYTES,
            "what one stream may keep",
        ),
        _V(
            "FALCON_OLLAMA_RESPONSES_MODE",
            Choice(("auto", "translate", "forward"), "auto, translate or forward"),
            "auto",
            "/v1/responses: forward or translate",
        ),
    ),
    *group(
        "limits",
        _V("FALCON_OLLAMA_MAX_IN_FLIGHT", POSITIVE_INT, 1024, "upstream requests at once per worker"),
        _V("FALCON_OLLAMA_MAX_QUEUE", NON_NEGATIVE_INT, 512, "requests waiting for a slot per worker"),
        _V(
            "FALCON_OLLAMA_WORKER_MEMORY_BUDGET",
            NON_NEGATIVE_INT,
            512 * 1024 * 1024,
            "bytes held for requests per worker, 0 off",
        ),
        _V("FALCON_OLLAMA_MAX_BODY_BYTES", POSITIVE_INT, _L.max_body_bytes, "largest request body"),
        _V(
            "FALCON_OLLAMA_MAX_JSON_DEPTH",
            Integer(maximum=MAX_JSON_DEPTH, maximum_reason="JSON nested deeper cannot be forwarded"),
            _L.max_json_depth,
            "deepest JSON nesting",
        ),
        _V("FALCON_OLLAMA_MAX_MESSAGES", POSITIVE_INT, _L.max_messages, "messages per chat"),
        _V("FALCON_OLLAMA_MAX_IMAGES", NON_NEGATIVE_INT, _L.max_images, "images per request"),
        _V("FALCON_OLLAMA_MAX_IMAGE_BYTES", POSITIVE_INT, _L.max_image_bytes, "largest decoded image"),
        _V("FALCON_OLLAMA_MAX_TEXT_CHARS", POSITIVE_INT, _L.max_text_chars, "longest text field"),
        _V("FALCON_OLLAMA_MAX_JSON_VALUES", POSITIVE_INT, _L.max_json_values, "JSON values per body"),
        _V("FALCON_OLLAMA_MAX_EMBED_INPUTS", POSITIVE_INT, _L.max_embed_inputs, "inputs per embed request"),
    ),
    *group(
        "access",
        _V("FALCON_OLLAMA_API_KEYS", parse_api_keys, ApiKeys(), "inbound keys, comma-separated"),
        _V(
            "FALCON_OLLAMA_API_KEYS_FILE",
            read_api_keys_file,
            ApiKeys(),
            "inbound keys, one per line",
            attribute="api_keys",
        ),
        _V(
            "FALCON_OLLAMA_TENANTS_FILE",
            read_tenants_file,
            Tenants(),
            "tenants file (TOML): keys, models, limits",
            attribute="tenants",
        ),
        _V("FALCON_OLLAMA_REDIS_URL", redis_url, None, "Redis for limits shared by replicas"),
        _V("FALCON_OLLAMA_LIMIT_STORE_TIMEOUT", SECONDS, 0.25, "seconds a limit check may take"),
        _V("FALCON_OLLAMA_REDIS_MAX_BACKOFF", SECONDS, 30.0, "longest wait before Redis is retried"),
        _V(
            "FALCON_OLLAMA_LEDGER_PATH",
            text,
            None,
            "usage ledger (SQLite) without Redis",
        ),
        _V(
            "FALCON_OLLAMA_LEDGER_RETENTION_DAYS",
            NON_NEGATIVE_INT,
            400,
            "days of usage the ledger keeps, 0 forever",
        ),
        _V("FALCON_OLLAMA_STREAM_LEASE_SECONDS", SECONDS, 60.0, "a stream slot's lease, renewed while open"),
        _V(
            "FALCON_OLLAMA_LIMIT_STORE_FAILURE",
            Choice(("open", "closed"), "open or closed"),
            "open",
            "store down: open (accept) or closed (503)",
        ),
        _V(
            "FALCON_OLLAMA_AUTH_EXEMPT_PATHS",
            parse_exempt_paths,
            DEFAULT_AUTH_EXEMPT_PATHS,
            "paths open without a key",
        ),
        _V("OLLAMA_ORIGINS", parse_origins, (), "extra CORS origins"),
        _V("FALCON_OLLAMA_CHECK_HOST", boolean, True, "refuse non-local Host names on loopback"),
    ),
    *group(
        "models",
        _V("FALCON_OLLAMA_EMBED_BATCH_SIZE", POSITIVE_INT, 2048, "inputs per upstream embed call"),
        _V("FALCON_OLLAMA_EMBED_BATCH_TOKENS", POSITIVE_INT, 250_000, "estimated tokens per embed call"),
        _V("FALCON_OLLAMA_EMBED_CONCURRENCY", POSITIVE_INT, 4, "embed calls at once per request"),
        _V("FALCON_OLLAMA_MODELS_TTL", NON_NEGATIVE, 300.0, "seconds the model list is kept"),
        _V("FALCON_OLLAMA_MAX_MODELS", POSITIVE_INT, 10_000, "models kept from the upstream list"),
        _V("FALCON_OLLAMA_ALLOW_UNLISTED_MODELS", boolean, False, "forward names the list lacks"),
        _V(
            "FALCON_OLLAMA_CONTEXT_PROBE_TOKENS",
            Integer(
                minimum=0,
                expected="an integer >= 0",
                maximum=4_194_304,
                maximum_reason="a 25 MB probe request",
            ),
            262_144,
            "prompt tokens of llama-cpp-python's context probe (0: none)",
        ),
        _V("FALCON_OLLAMA_CONTEXT_PROBE_TIMEOUT", SECONDS, 30.0, "seconds one context probe may take"),
        _V("FALCON_OLLAMA_CONTEXT_PROBE_MODELS", POSITIVE_INT, 16, "models of one list probed at most"),
        _V("FALCON_OLLAMA_REPORTED_VERSION", version, DEFAULT_REPORTED_VERSION, "what /api/version says"),
        _V(
            "OLLAMA_KEEP_ALIVE",
            keep_alive_seconds,
            300.0,
            "reported keep_alive of a loaded model",
            attribute="keep_alive_default",
        ),
        _V(
            "FALCON_OLLAMA_CATALOG",
            _catalog_setting,
            CATALOG_SHIPPED,
            "model catalog: shipped, none, or a TOML path",
            attribute="catalog_path",
        ),
    ),
    *group(
        "server",
        _V(
            "OLLAMA_HOST",
            parse_ollama_host,
            BindAddress("127.0.0.1", DEFAULT_OLLAMA_PORT),
            "listen address, host:port",
            attribute="bind",
        ),
        _V(
            "FALCON_OLLAMA_MAX_HEADER_BYTES",
            Integer(floor=MIN_HEADER_BYTES, floor_reason="a request line and a few headers"),
            65536,
            "largest request head",
        ),
        _V("FALCON_OLLAMA_MAX_HEADERS", POSITIVE_INT, 100, "headers per request"),
        _V("FALCON_OLLAMA_REQUEST_HEAD_TIMEOUT", SECONDS, 30.0, "seconds to send a request head"),
        _V("FALCON_OLLAMA_REQUEST_BODY_TIMEOUT", SECONDS, 60.0, "seconds a body may stall"),
        _V("FALCON_OLLAMA_MAX_CLIENT_CONNECTIONS", POSITIVE_INT, 4096, "client connections per worker"),
        _V(
            "FALCON_OLLAMA_CONFIG_WATCH_SECONDS",
            NON_NEGATIVE,
            0.0,
            "reload when a config file changes (poll period), 0 off",
        ),
    ),
    *group(
        "gunicorn",  # gunicorn.conf.py; `falcon-ollama serve` uses FALCON_OLLAMA_KEEPALIVE too
        _V("WEB_CONCURRENCY", POSITIVE_INT, None, "gunicorn workers (unset: one per CPU)"),
        _V("FALCON_OLLAMA_KEEPALIVE", _AT_LEAST_1, 75, "seconds an idle client connection is kept"),
        _V("FALCON_OLLAMA_GRACEFUL_TIMEOUT", _AT_LEAST_1, 120, "seconds streams get on SIGTERM"),
        _V("FALCON_OLLAMA_WORKER_TIMEOUT", _AT_LEAST_1, 60, "gunicorn worker heartbeat, seconds"),
        _V("FALCON_OLLAMA_MAX_REQUESTS", NON_NEGATIVE_INT, 50000, "requests before a worker is recycled"),
        _V("FALCON_OLLAMA_MAX_REQUESTS_JITTER", NON_NEGATIVE_INT, 5000, "random spread of that"),
        _V(
            "FALCON_OLLAMA_REUSEPORT",
            Choice(("auto", "on", "off"), "auto, on or off"),
            "auto",
            "a listening socket per worker (auto: if the kernel migrates)",
        ),
        _V(
            "PROMETHEUS_MULTIPROC_DIR",
            writable_directory,
            None,
            "gunicorn's metrics files (emptied)",
            attribute="metrics_dir",
        ),
    ),
    *group(
        "logging",
        _V(
            "FALCON_OLLAMA_LOG_LEVEL",
            Choice(
                ("debug", "info", "warning", "error", "critical"),
                "one of debug, info, warning, error, critical",
            ),
            "info",
            "log level",
        ),
        _V("FALCON_OLLAMA_LOG_FORMAT", Choice(("json", "text"), "json or text"), "json", "log format"),
        _V("FALCON_OLLAMA_LOG_FILE", writable_file, None, "log to this file too"),
        _V("FALCON_OLLAMA_LOG_BODIES", boolean, False, "log request and answer bodies (debug)"),
    ),
)
BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}
_DEFAULTS: dict[str, Any] = {v.attribute: v.default for v in VARIABLES}


def _default(attribute: str) -> Any:
    """A Settings field's default: the one its variable declares."""
    return field(default=_DEFAULTS[attribute])


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Where the tokens come from and how long and how much we wait for them."""

    openai_api_key: str | None
    openai_base_url: str
    openai_organization: str | None
    openai_project: str | None
    upstream_dialect: str  # the implicit backend's (a [backends.<name>] table sets its own)
    connect_timeout: float
    first_byte_timeout: float
    idle_timeout: float
    total_timeout: float
    max_connections: int
    max_retries: int
    retry_base_delay: float
    max_retry_wait: float
    stream_usage: bool
    max_upstream_body_bytes: int
    max_upstream_error_bytes: int
    max_upstream_stream_bytes: int
    max_model_list_bytes: int
    max_stream_accumulated_bytes: int
    responses_mode: str


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Who may call: inbound keys (digests only), paths open without one, CORS origins, the Host check."""

    api_keys: ApiKeys
    auth_exempt_paths: frozenset[str]
    ollama_origins: tuple[str, ...]
    check_host: bool


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How the server listens and holds client connections, and gunicorn's process settings."""

    bind: BindAddress
    max_header_bytes: int
    max_headers: int
    request_head_timeout: float
    request_body_timeout: float
    max_client_connections: int
    web_concurrency: int | None
    keepalive: int
    graceful_timeout: int
    worker_timeout: int
    max_requests: int
    max_requests_jitter: int
    reuseport: str  # auto | on | off (gunicorn_support.worker_listeners)
    config_watch_seconds: float
    metrics_dir: str | None

    @property
    def workers(self) -> int:
        """``WEB_CONCURRENCY`` if set, else one async worker per CPU this process may use."""
        if self.web_concurrency is not None:
            return self.web_concurrency
        return max(
            1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the service: flat (one field per variable), and grouped in read-only views built
    once (``limits``, ``upstream``, ``access``, ``server``). Build with :meth:`from_env`; tests build it too.
    """

    openai_api_key: str | None = _default("openai_api_key")
    openai_base_url: str = _default("openai_base_url")
    openai_base_url_set: bool = False  # OPENAI_BASE_URL was given (not the default): not offline
    openai_organization: str | None = _default("openai_organization")
    openai_project: str | None = _default("openai_project")
    upstream_dialect: str = _default("upstream_dialect")  # the implicit backend's: chat | responses
    connect_timeout: float = _default("connect_timeout")
    first_byte_timeout: float = _default("first_byte_timeout")
    idle_timeout: float = _default("idle_timeout")
    total_timeout: float = _default("total_timeout")
    max_connections: int = _default("max_connections")
    max_retries: int = _default("max_retries")
    retry_base_delay: float = _default("retry_base_delay")
    max_retry_wait: float = _default("max_retry_wait")
    # Several backends (falcon_ollama/upstreams.py): circuit breaker and fallback chains.
    breaker_failures: int = _default("breaker_failures")
    breaker_cooldown: float = _default("breaker_cooldown")
    fallback_max_retry_after: float = _default("fallback_max_retry_after")
    stream_usage: bool = _default("stream_usage")
    # Bounds on what the upstream may send (after decompression): docs/security.md "Upstream answers".
    max_upstream_body_bytes: int = _default("max_upstream_body_bytes")
    max_upstream_error_bytes: int = _default("max_upstream_error_bytes")
    max_upstream_stream_bytes: int = _default("max_upstream_stream_bytes")
    max_model_list_bytes: int = _default("max_model_list_bytes")
    # What one stream may hold at a time: its pending SSE event, and its kept tool-call arguments or text.
    max_stream_accumulated_bytes: int = _default("max_stream_accumulated_bytes")
    # /v1/responses: forwarded to a backend with its own Responses API, or translated to chat completions.
    responses_mode: str = _default("responses_mode")
    max_in_flight: int = _default("max_in_flight")
    max_queue: int = _default("max_queue")
    # Bytes one worker may hold for requests in flight (bodies, upstream answers, streams): memory_budget.py.
    worker_memory_budget: int = _default("worker_memory_budget")
    max_body_bytes: int = _default("max_body_bytes")
    max_json_depth: int = _default("max_json_depth")
    max_messages: int = _default("max_messages")
    max_images: int = _default("max_images")
    max_image_bytes: int = _default("max_image_bytes")
    max_text_chars: int = _default("max_text_chars")
    max_json_values: int = _default("max_json_values")
    max_embed_inputs: int = _default("max_embed_inputs")
    # Access control (falcon_ollama/access.py): inbound keys (digests only), CORS origins, Host check.
    api_keys: ApiKeys = _default("api_keys")  # noqa: RUF009 (immutable: digests in a tuple)
    tenants: Tenants = _default("tenants")  # noqa: RUF009 (immutable: digests in a tuple; tenants.py)
    # Where the tenants' limits are counted (falcon_ollama/limit_store.py); the URL may hold a password.
    redis_url: str | None = _default("redis_url")
    limit_store_timeout: float = _default("limit_store_timeout")
    redis_max_backoff: float = _default("redis_max_backoff")
    stream_lease_seconds: float = _default("stream_lease_seconds")
    ledger_path: str | None = _default("ledger_path")
    ledger_retention_days: int = _default("ledger_retention_days")
    limit_store_failure: str = _default("limit_store_failure")
    auth_exempt_paths: frozenset[str] = _default("auth_exempt_paths")
    ollama_origins: tuple[str, ...] = _default("ollama_origins")
    check_host: bool = _default("check_host")
    embed_batch_size: int = _default("embed_batch_size")
    embed_batch_tokens: int = _default("embed_batch_tokens")
    embed_concurrency: int = _default("embed_concurrency")
    models_ttl: float = _default("models_ttl")
    max_models: int = _default("max_models")
    context_probe_tokens: int = _default("context_probe_tokens")
    context_probe_timeout: float = _default("context_probe_timeout")
    context_probe_models: int = _default("context_probe_models")
    allow_unlisted_models: bool = _default("allow_unlisted_models")
    reported_version: str = _default("reported_version")
    keep_alive_default: float = _default("keep_alive_default")
    catalog_path: str | None = _default("catalog_path")
    catalog: CatalogConfig = field(default_factory=_shipped_catalog)  # loaded from catalog_path
    bind: BindAddress = _default("bind")  # noqa: RUF009 (a frozen dataclass)
    # Client connections (falcon_ollama/http_guard.py): what a client can hold before the app sees a request.
    max_header_bytes: int = _default("max_header_bytes")
    max_headers: int = _default("max_headers")
    request_head_timeout: float = _default("request_head_timeout")
    request_body_timeout: float = _default("request_body_timeout")
    max_client_connections: int = _default("max_client_connections")
    # gunicorn (gunicorn.conf.py); `serve` uses keepalive for uvicorn too.
    web_concurrency: int | None = _default("web_concurrency")
    keepalive: int = _default("keepalive")
    graceful_timeout: int = _default("graceful_timeout")
    worker_timeout: int = _default("worker_timeout")
    max_requests: int = _default("max_requests")
    max_requests_jitter: int = _default("max_requests_jitter")
    reuseport: str = _default("reuseport")
    config_watch_seconds: float = _default("config_watch_seconds")
    metrics_dir: str | None = _default("metrics_dir")
    log_level: str = _default("log_level")
    log_format: str = _default("log_format")
    log_file: str | None = _default("log_file")
    log_bodies: bool = _default("log_bodies")
    # The grouped views, built once from the fields above (again by dataclasses.replace).
    limits: Limits = field(init=False, repr=False, compare=False)
    upstream: UpstreamSettings = field(init=False, repr=False, compare=False)
    access: AccessSettings = field(init=False, repr=False, compare=False)
    server: ServerSettings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        limits = self._view(Limits)
        if limits.max_json_depth > MAX_JSON_DEPTH:  # a Settings built directly, without the parser's bound
            limits = dataclasses.replace(limits, max_json_depth=MAX_JSON_DEPTH)
        object.__setattr__(self, "limits", limits)
        object.__setattr__(self, "upstream", self._view(UpstreamSettings))
        object.__setattr__(self, "access", self._view(AccessSettings))
        object.__setattr__(self, "server", self._view(ServerSettings))

    def _view(self, kind: type[V]) -> V:
        """One of the grouped views: its fields are Settings fields of the same names."""
        return kind(**{f.name: getattr(self, f.name) for f in fields(kind)})  # type: ignore[arg-type]

    @property
    def backends(self) -> tuple[BackendConfig, ...]:
        """The catalog file's backends, or the one implicit backend from OPENAI_* when it declares none."""
        if self.catalog.backends:
            return self.catalog.backends
        return (
            implicit_backend(
                self.openai_base_url,
                self.openai_api_key,
                self.openai_organization,
                self.openai_project,
                dialect=cast(Dialect, self.upstream_dialect),
            ),
        )

    @property
    def offline(self) -> bool:
        """No key, no upstream URL and no backends: the CLI runs the bundled fake upstream instead."""
        if self.catalog.backends:
            return False  # the catalog file names its backends
        return self.openai_api_key is None and not self.openai_base_url_set

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = None
    ) -> Settings:
        """Read the process environment (and ``.env``, or ``FALCON_OLLAMA_ENV_FILE``) and validate it."""
        return cls.from_mapping(environment(environ, env_file=env_file))

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Every declared variable read from ``env`` through its parser; the first bad one is the error."""
        values: dict[str, Any] = {}
        given: set[str] = set()
        for variable in VARIABLES:
            value, was_set = variable.read(env)
            if was_set:
                given.add(variable.name)
            if variable.attribute in values:  # several variables feeding one setting add up (API keys)
                value = values[variable.attribute] + value
            values[variable.attribute] = value
        catalog = CatalogConfig()
        if values["catalog_path"]:
            try:
                catalog = load_catalog_file(catalog_file(values["catalog_path"]), env)
            except (OSError, ValueError) as exc:
                raise SettingsError(f"FALCON_OLLAMA_CATALOG: {exc}") from exc
        return cls(**values, openai_base_url_set="OPENAI_BASE_URL" in given, catalog=catalog)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked, for logs and ``falcon-ollama check``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.init:
                continue  # a view: its values are the flat fields'
            value = getattr(self, f.name)
            if f.name == "openai_api_key":
                value = "(set)" if value else "(not set)"
            elif f.name == "redis_url" and value:
                value = redacted_url(value)
            elif f.name == "catalog":
                value = f"{len(value.aliases)} aliases, {len(value.backends) or 1} backends"
            elif isinstance(value, BindAddress):
                value = value.gunicorn_bind
            out[f.name] = value
        return out


def environment(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = None
) -> dict[str, str]:
    """The process environment over the ``.env`` file (or ``FALCON_OLLAMA_ENV_FILE``): real variables win."""
    env = dict(os.environ if environ is None else environ)
    named = env_file or env.get("FALCON_OLLAMA_ENV_FILE")
    file_values = read_env_file(Path(named or ".env"), required=bool(named))
    return {**file_values, **env}


def read_env_file(path: Path, *, required: bool = False) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional ``export`` and quotes.

    The default ``.env`` is optional; a file named explicitly (``--env-file``, ``FALCON_OLLAMA_ENV_FILE``)
    must exist. A malformed line is an error with its line number.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise SettingsError(f"FALCON_OLLAMA_ENV_FILE: {path}: no such file") from None
        return {}
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        values[key] = _env_value(value.strip(), path, number)
    return values


def _env_value(value: str, path: Path, number: int) -> str:
    """A value: quoted (anything after the closing quote must be a comment), or bare up to `` #``."""
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        if end < 0:
            raise SettingsError(f"{path}:{number}: unterminated quote")
        rest = value[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise SettingsError(f"{path}:{number}: unexpected text after the closing quote")
        return value[1:end]
    if " #" in value:
        return value.split(" #", 1)[0].rstrip()
    return value
