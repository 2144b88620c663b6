"""Configuration: environment variables and an optional ``.env`` file -> one validated, immutable Settings.

Everything is read and checked once, at start-up, so that a bad value stops the process with a single line
that names the variable (``SettingsError``), instead of surfacing later as a failed request. Real environment
variables win over the ``.env`` file, as with docker compose and most twelve-factor tools.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from falcon_ollama.access import (
    DEFAULT_AUTH_EXEMPT_PATHS,
    ApiKeys,
    parse_api_keys,
    parse_exempt_paths,
    parse_origins,
    read_api_keys_file,
)
from falcon_ollama.catalog_config import CatalogConfig, load_catalog_file
from falcon_ollama.limits import MAX_JSON_DEPTH, Limits
from falcon_ollama.sse import MAX_STREAM_ACCUMULATED_BYTES
from falcon_ollama.tenants import Tenants, read_tenants_file

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OLLAMA_PORT = 11434
# Ollama's newest stable release when written: clients that gate features on /api/version (GitHub Copilot's
# Ollama provider needs >= 0.6.4) enable them all.
DEFAULT_REPORTED_VERSION = "0.32.15"
# Below this a request line with a long path and the usual headers no longer fits.
MIN_HEADER_BYTES = 1024

T = TypeVar("T")

_LIMITS = Limits()  # the input limits' defaults live on Limits


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and is meant to be shown as is."""


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


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the service. Build with :meth:`from_env`; tests construct it directly."""

    bind: BindAddress = field(default_factory=lambda: BindAddress("127.0.0.1", DEFAULT_OLLAMA_PORT))
    openai_api_key: str | None = None
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    openai_base_url_set: bool = False
    openai_organization: str | None = None
    openai_project: str | None = None
    connect_timeout: float = 10.0
    first_byte_timeout: float = 600.0
    idle_timeout: float = 300.0
    total_timeout: float = 1800.0
    max_connections: int = 1024
    max_in_flight: int = 1024
    max_queue: int = 512
    max_retries: int = 2
    retry_base_delay: float = 0.5
    max_retry_wait: float = 20.0
    stream_usage: bool = True
    # Bounds on what the upstream may send (after decompression): docs/security.md "Upstream answers".
    max_upstream_body_bytes: int = 128 * 1024 * 1024
    max_upstream_error_bytes: int = 64 * 1024
    max_upstream_stream_bytes: int = 256 * 1024 * 1024
    max_model_list_bytes: int = 16 * 1024 * 1024
    max_models: int = 10_000
    # What one stream may hold at a time: its pending SSE event, and its kept tool-call arguments or text.
    max_stream_accumulated_bytes: int = MAX_STREAM_ACCUMULATED_BYTES
    # /v1/responses: forwarded to a backend with its own Responses API, or translated to chat completions.
    responses_mode: str = "auto"
    # Access control (falcon_ollama/access.py): inbound keys (digests only), CORS origins, Host check.
    api_keys: ApiKeys = field(default_factory=ApiKeys)
    tenants: Tenants = field(default_factory=Tenants)  # FALCON_OLLAMA_TENANTS_FILE (falcon_ollama/tenants.py)
    auth_exempt_paths: frozenset[str] = DEFAULT_AUTH_EXEMPT_PATHS
    ollama_origins: tuple[str, ...] = ()
    check_host: bool = True
    embed_batch_size: int = 2048
    embed_batch_tokens: int = 250_000
    embed_concurrency: int = 4
    models_ttl: float = 300.0
    allow_unlisted_models: bool = False
    reported_version: str = DEFAULT_REPORTED_VERSION
    keep_alive_default: float = 300.0
    max_body_bytes: int = _LIMITS.max_body_bytes
    max_json_depth: int = _LIMITS.max_json_depth
    max_messages: int = _LIMITS.max_messages
    max_images: int = _LIMITS.max_images
    max_image_bytes: int = _LIMITS.max_image_bytes
    max_text_chars: int = _LIMITS.max_text_chars
    max_json_values: int = _LIMITS.max_json_values
    max_embed_inputs: int = _LIMITS.max_embed_inputs
    # Client connections (falcon_ollama/http_guard.py): what a client can hold before the app sees a request.
    max_header_bytes: int = 65536
    max_headers: int = 100
    request_head_timeout: float = 30.0
    request_body_timeout: float = 60.0
    max_client_connections: int = 4096
    log_level: str = "info"
    log_format: str = "json"
    log_file: str | None = None
    log_bodies: bool = False
    catalog_path: str | None = None
    catalog: CatalogConfig = field(default_factory=CatalogConfig)

    @property
    def offline(self) -> bool:
        """No key and no upstream URL: the CLI runs the bundled fake upstream instead."""
        return self.openai_api_key is None and not self.openai_base_url_set

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = None
    ) -> Settings:
        """Read the process environment (and ``.env``, or ``FALCON_OLLAMA_ENV_FILE``) and validate it."""
        env = dict(os.environ if environ is None else environ)
        named = env_file or env.get("FALCON_OLLAMA_ENV_FILE")
        file_values = read_env_file(Path(named or ".env"), required=bool(named))
        merged = {**file_values, **env}
        return cls.from_mapping(merged)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        r = _Reader(env)
        d = cls()  # every default lives once, on the fields above
        base_url = r.get("OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL, _parse_url)
        catalog_path = r.get("FALCON_OLLAMA_CATALOG", None, str)
        catalog = CatalogConfig()
        if catalog_path:
            try:
                catalog = load_catalog_file(Path(catalog_path))
            except (OSError, ValueError) as exc:
                raise SettingsError(f"FALCON_OLLAMA_CATALOG: {exc}") from exc
        return cls(
            bind=parse_ollama_host(env.get("OLLAMA_HOST")),
            openai_api_key=r.get("OPENAI_API_KEY", None, str),
            openai_base_url=base_url,
            openai_base_url_set=bool(env.get("OPENAI_BASE_URL", "").strip()),
            openai_organization=r.get("OPENAI_ORGANIZATION", None, str),
            openai_project=r.get("OPENAI_PROJECT", None, str),
            connect_timeout=r.get("FALCON_OLLAMA_CONNECT_TIMEOUT", d.connect_timeout, _positive_float),
            first_byte_timeout=r.get(
                "FALCON_OLLAMA_FIRST_BYTE_TIMEOUT", d.first_byte_timeout, _positive_float
            ),
            idle_timeout=r.get("FALCON_OLLAMA_IDLE_TIMEOUT", d.idle_timeout, _positive_float),
            total_timeout=r.get("FALCON_OLLAMA_TOTAL_TIMEOUT", d.total_timeout, _positive_float),
            max_connections=r.get("FALCON_OLLAMA_MAX_CONNECTIONS", d.max_connections, _positive_int),
            max_in_flight=r.get("FALCON_OLLAMA_MAX_IN_FLIGHT", d.max_in_flight, _positive_int),
            max_queue=r.get("FALCON_OLLAMA_MAX_QUEUE", d.max_queue, _non_negative_int),
            max_retries=r.get("FALCON_OLLAMA_MAX_RETRIES", d.max_retries, _non_negative_int),
            retry_base_delay=r.get("FALCON_OLLAMA_RETRY_BASE_DELAY", d.retry_base_delay, _non_negative_float),
            max_retry_wait=r.get("FALCON_OLLAMA_MAX_RETRY_WAIT", d.max_retry_wait, _non_negative_float),
            stream_usage=r.get("FALCON_OLLAMA_STREAM_USAGE", d.stream_usage, _parse_bool),
            max_upstream_body_bytes=r.get(
                "FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES", d.max_upstream_body_bytes, _positive_int
            ),
            max_upstream_error_bytes=r.get(
                "FALCON_OLLAMA_MAX_UPSTREAM_ERROR_BYTES", d.max_upstream_error_bytes, _positive_int
            ),
            max_upstream_stream_bytes=r.get(
                "FALCON_OLLAMA_MAX_UPSTREAM_STREAM_BYTES", d.max_upstream_stream_bytes, _positive_int
            ),
            max_model_list_bytes=r.get(
                "FALCON_OLLAMA_MAX_MODEL_LIST_BYTES", d.max_model_list_bytes, _positive_int
            ),
            max_models=r.get("FALCON_OLLAMA_MAX_MODELS", d.max_models, _positive_int),
            max_stream_accumulated_bytes=r.get(
                "FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES", d.max_stream_accumulated_bytes, _positive_int
            ),
            responses_mode=r.get("FALCON_OLLAMA_RESPONSES_MODE", d.responses_mode, _responses_mode),
            api_keys=r.get("FALCON_OLLAMA_API_KEYS", ApiKeys(), parse_api_keys)
            + r.get("FALCON_OLLAMA_API_KEYS_FILE", ApiKeys(), read_api_keys_file),
            tenants=r.get("FALCON_OLLAMA_TENANTS_FILE", Tenants(), read_tenants_file),
            auth_exempt_paths=r.get(
                "FALCON_OLLAMA_AUTH_EXEMPT_PATHS", DEFAULT_AUTH_EXEMPT_PATHS, parse_exempt_paths
            ),
            ollama_origins=r.get("OLLAMA_ORIGINS", d.ollama_origins, parse_origins),
            check_host=r.get("FALCON_OLLAMA_CHECK_HOST", d.check_host, _parse_bool),
            embed_batch_size=r.get("FALCON_OLLAMA_EMBED_BATCH_SIZE", d.embed_batch_size, _positive_int),
            embed_batch_tokens=r.get("FALCON_OLLAMA_EMBED_BATCH_TOKENS", d.embed_batch_tokens, _positive_int),
            embed_concurrency=r.get("FALCON_OLLAMA_EMBED_CONCURRENCY", d.embed_concurrency, _positive_int),
            models_ttl=r.get("FALCON_OLLAMA_MODELS_TTL", d.models_ttl, _non_negative_float),
            allow_unlisted_models=r.get(
                "FALCON_OLLAMA_ALLOW_UNLISTED_MODELS", d.allow_unlisted_models, _parse_bool
            ),
            reported_version=r.get("FALCON_OLLAMA_REPORTED_VERSION", d.reported_version, _version),
            keep_alive_default=r.get("OLLAMA_KEEP_ALIVE", d.keep_alive_default, _keep_alive_seconds),
            max_body_bytes=r.get("FALCON_OLLAMA_MAX_BODY_BYTES", d.max_body_bytes, _positive_int),
            max_json_depth=r.get("FALCON_OLLAMA_MAX_JSON_DEPTH", d.max_json_depth, _json_depth),
            max_messages=r.get("FALCON_OLLAMA_MAX_MESSAGES", d.max_messages, _positive_int),
            max_images=r.get("FALCON_OLLAMA_MAX_IMAGES", d.max_images, _non_negative_int),
            max_image_bytes=r.get("FALCON_OLLAMA_MAX_IMAGE_BYTES", d.max_image_bytes, _positive_int),
            max_text_chars=r.get("FALCON_OLLAMA_MAX_TEXT_CHARS", d.max_text_chars, _positive_int),
            max_json_values=r.get("FALCON_OLLAMA_MAX_JSON_VALUES", d.max_json_values, _positive_int),
            max_embed_inputs=r.get("FALCON_OLLAMA_MAX_EMBED_INPUTS", d.max_embed_inputs, _positive_int),
            max_header_bytes=r.get("FALCON_OLLAMA_MAX_HEADER_BYTES", d.max_header_bytes, _header_bytes),
            max_headers=r.get("FALCON_OLLAMA_MAX_HEADERS", d.max_headers, _positive_int),
            request_head_timeout=r.get(
                "FALCON_OLLAMA_REQUEST_HEAD_TIMEOUT", d.request_head_timeout, _positive_float
            ),
            request_body_timeout=r.get(
                "FALCON_OLLAMA_REQUEST_BODY_TIMEOUT", d.request_body_timeout, _positive_float
            ),
            max_client_connections=r.get(
                "FALCON_OLLAMA_MAX_CLIENT_CONNECTIONS", d.max_client_connections, _positive_int
            ),
            log_level=r.get("FALCON_OLLAMA_LOG_LEVEL", d.log_level, _log_level),
            log_format=r.get("FALCON_OLLAMA_LOG_FORMAT", d.log_format, _log_format),
            log_file=r.get("FALCON_OLLAMA_LOG_FILE", None, _writable_file),
            log_bodies=r.get("FALCON_OLLAMA_LOG_BODIES", d.log_bodies, _parse_bool),
            catalog_path=catalog_path,
            catalog=catalog,
        )

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked, for logs and ``falcon-ollama check``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "openai_api_key":
                value = "(set)" if value else "(not set)"
            elif f.name == "catalog":
                value = f"{len(value.aliases)} aliases"
            elif isinstance(value, BindAddress):
                value = value.gunicorn_bind
            out[f.name] = value
        return out


class _Reader:
    """Reads one variable at a time and turns a parse failure into a SettingsError naming it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{name}: {exc}") from None


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _header_bytes(text: str) -> int:
    value = _positive_int(text)
    if value < MIN_HEADER_BYTES:
        raise ValueError(f"at least {MIN_HEADER_BYTES} (a request line and a few headers), got {text!r}")
    return value


def _json_depth(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_JSON_DEPTH:
        raise ValueError(f"at most {MAX_JSON_DEPTH} (JSON nested deeper cannot be forwarded), got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise ValueError(f"expected an integer >= 0, got {text!r}")
    return value


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def _version(text: str) -> str:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected a version like 0.32.15, got {text!r}")
    return text


def _log_level(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("debug", "info", "warning", "error", "critical"):
        raise ValueError(f"expected one of debug, info, warning, error, critical, got {text!r}")
    return lowered


def _responses_mode(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("auto", "translate", "forward"):
        raise ValueError(f"expected auto, translate or forward, got {text!r}")
    return lowered


def _log_format(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("json", "text"):
        raise ValueError(f"expected json or text, got {text!r}")
    return lowered


def _writable_file(text: str) -> str:
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise ValueError(f"cannot write a log file in {directory!r}")
    return text


def _keep_alive_seconds(text: str) -> float:
    from falcon_ollama.durations import parse_keep_alive

    return parse_keep_alive(text if not _is_number(text) else float(text))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
