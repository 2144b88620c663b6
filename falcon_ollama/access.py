"""Access control: inbound API keys, CORS the way Ollama does it, and Ollama's Host allow-list.

A real Ollama has no keys, but it does guard its loopback port against web pages: gin-contrib/cors with
``OLLAMA_ORIGINS`` plus a fixed default list (a foreign page's request gets 403), and
``allowedHostsMiddleware``, which refuses a non-local ``Host`` header while bound to loopback, so a
DNS-rebinding page cannot reach the API under its own name. We do the same, in the same order (CORS,
then Host), and add optional Bearer keys for deployments that expose the proxy, since it spends someone's
upstream credit.

Everything is decided once at start-up; :class:`AccessControl` is a single Falcon middleware whose hot path,
with nothing configured, is a missing ``Origin`` header, one cached Host lookup and an empty-keys check. The
check compares SHA-256 digests only; the keys themselves are kept for the redactor alone, and no repr or
settings dump shows one.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
from collections.abc import Hashable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import orjson

from falcon_ollama.errors import OllamaError
from falcon_ollama.ledger import LedgerWriter
from falcon_ollama.limit_store import Limiter, StoreUnavailable
from falcon_ollama.ratelimit import retry_after_header
from falcon_ollama.tenants import (
    UNLIMITED,
    DigestSet,
    Limits,
    Tenant,
    Tenants,
    find_digest,
    key_digest,
    read_secrets_file,
    set_current_tenant,
)

if TYPE_CHECKING:
    import falcon.asgi

log = logging.getLogger("falcon_ollama.access")
NO_LIMITS: Final = Limits()

DEFAULT_AUTH_EXEMPT_PATHS: Final = frozenset({"/", "/health", "/ready"})
MIN_KEY_LENGTH: Final = 16
REALM: Final = "falcon-ollama"

# Ollama's envconfig.AllowedOrigins(): appended after OLLAMA_ORIGINS, always.
DEFAULT_ORIGINS: Final = (
    *(
        f"{scheme}://{host}{port}"
        for host in ("localhost", "127.0.0.1", "0.0.0.0")
        for port in ("", ":*")
        for scheme in ("http", "https")
    ),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)
# gin-contrib/cors accepts a configured origin without '*' only with one of these schemes (Ollama turns on
# AllowBrowserExtensions); anything else makes Ollama panic at start-up, and is a SettingsError here.
_ORIGIN_SCHEMES: Final = (
    "http://",
    "https://",
    "chrome-extension://",
    "safari-extension://",
    "moz-extension://",
    "ms-browser-extension://",
)
# The preflight headers exactly as gin-contrib/cors renders Ollama's config (DefaultConfig methods, 12 h
# max age, Ollama's header list passed through Go's http.CanonicalHeaderKey, joined with ",").
_ALLOW_HEADERS: Final = ",".join(
    (
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "Openai-Beta",
        *(
            "X-Stainless-" + name
            for name in (
                "Arch",
                "Async",
                "Custom-Poll-Interval",
                "Helper-Method",
                "Lang",
                "Os",
                "Package-Version",
                "Poll-Helper",
                "Retry-Count",
                "Runtime",
                "Runtime-Version",
                "Timeout",
            )
        ),
    )
)
_PREFLIGHT_HEADERS: Final = {
    "Access-Control-Allow-Methods": "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS",
    "Access-Control-Allow-Headers": _ALLOW_HEADERS,
    "Access-Control-Max-Age": "43200",
}
_PREFLIGHT_VARY: Final = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

# RFC 6750 b64token: what a Bearer credential may contain. It also keeps ',' '#' and spaces out of keys, so
# the comma-separated variable and the commented key file cannot be misread.
_KEY_PATTERN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_KEY_RULE: Final = (
    f"a key is at least {MIN_KEY_LENGTH} characters of A-Z a-z 0-9 - . _ ~ + / (an RFC 6750 Bearer token), "
    "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)
# Go's netip.Addr.IsPrivate (RFC 1918 and fc00::/7); Python's is_private is much wider.
_GO_PRIVATE: Final = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal")

_JSON: Final = "application/json; charset=utf-8"
_MISSING: Final = "unauthorized: missing API key (send Authorization: Bearer <key>)"
_INVALID: Final = "unauthorized: invalid API key"
_KEY_CODE: Final = "invalid_api_key"  # OpenAI's code for a missing or wrong key on /v1
_HOST_FORBIDDEN: Final = orjson.dumps(
    {"error": "forbidden: the Host header is not a local name (DNS-rebinding protection)"}
)


class ApiKeys(DigestSet):
    """The configured inbound keys, held only as SHA-256 digests; ``repr`` shows how many, never a key.

    Comparing fixed-length digests makes :meth:`verify` independent of the keys' lengths as well as their
    content, and every digest is compared on every call, so timing does not tell which key (if any) matched.
    """

    __slots__ = ("_digests", "_secrets")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        keys = tuple(dict.fromkeys(keys))
        self._digests: tuple[bytes, ...] = tuple(dict.fromkeys(key_digest(k) for k in keys))
        # Kept only for falcon_ollama.redaction (finding a key in text needs the key); never in repr.
        self._secrets = keys

    def secrets(self) -> tuple[str, ...]:
        """The keys themselves, for the redactor that scrubs them from responses and logs."""
        return self._secrets

    def verify(self, token: str) -> bool:
        return find_digest(token, self._digests) is not None

    def __add__(self, other: ApiKeys) -> ApiKeys:
        combined = ApiKeys()
        combined._digests = tuple(dict.fromkeys((*self._digests, *other._digests)))
        combined._secrets = tuple(dict.fromkeys((*self._secrets, *other._secrets)))
        return combined

    def _members(self) -> tuple[Hashable, ...]:
        return self._digests

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._digests)} configured)"


def _check_key(key: str, where: str) -> str:
    """The key itself, or a ValueError that says where the bad key is but never what it is."""
    if len(key) < MIN_KEY_LENGTH or not _KEY_PATTERN.fullmatch(key):
        raise ValueError(f"{where} is not a valid key: {_KEY_RULE}")
    return key


def parse_api_keys(text: str) -> ApiKeys:
    """``FALCON_OLLAMA_API_KEYS``: comma-separated keys. A value that yields no key is an error, not "off"."""
    entries = [e.strip() for e in text.split(",")]
    keys = [_check_key(e, f"entry {n}") for n, e in enumerate(entries, start=1) if e]
    if not keys:
        raise ValueError("no keys in the value (unset the variable to turn keys off)")
    return ApiKeys(keys)


def read_api_keys_file(path_text: str) -> ApiKeys:
    """``FALCON_OLLAMA_API_KEYS_FILE``: one key per line, ``#`` comments, read once at start-up.

    An unreadable or empty file fails start-up: silently running without keys would expose the proxy."""
    path, text = read_secrets_file(path_text)
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.split("#", 1)[0].strip()
        if key:
            keys.append(_check_key(key, f"line {number} of {str(path)!r}"))
    if not keys:
        raise ValueError(f"no keys in {str(path)!r}")
    return ApiKeys(keys)


def parse_origins(text: str) -> tuple[str, ...]:
    """``OLLAMA_ORIGINS``: comma-separated origins, each with at most one ``*`` wildcard.

    Validated as gin-contrib/cors validates Ollama's list (where a bad entry is a panic at start-up).
    Entries are trimmed and lower-cased; empty entries are skipped."""
    origins: list[str] = []
    for raw in text.split(","):
        origin = raw.strip().lower()
        if not origin:
            continue
        if origin.count("*") > 1:
            raise ValueError(f"{origin!r}: only one '*' is allowed")
        if "*" not in origin and not origin.startswith(_ORIGIN_SCHEMES):
            schemes = ", ".join(_ORIGIN_SCHEMES)
            raise ValueError(f"{origin!r}: an origin must contain '*' or start with one of {schemes}")
        origins.append(origin)
    return tuple(origins)


def parse_exempt_paths(text: str) -> frozenset[str]:
    """``FALCON_OLLAMA_AUTH_EXEMPT_PATHS``: exact paths (trailing slash ignored) open without a key."""
    paths: set[str] = set()
    for raw in text.split(","):
        path = raw.strip()
        if not path:
            continue
        if not path.startswith("/"):
            raise ValueError(f"{path!r}: a path must start with '/'")
        paths.add(path.rstrip("/") or "/")
    return frozenset(paths)


class OriginPolicy:
    """Which browser origins may call us: gin-contrib/cors matching, ``OLLAMA_ORIGINS`` + Ollama's defaults.

    An exact entry matches the ``Origin`` header as sent; an entry with ``*`` matches by prefix and suffix
    around it (``http://localhost:*`` is any port); the entry ``*`` alone allows every origin."""

    __slots__ = ("_exact", "_wildcards", "allow_all")

    def __init__(self, configured: Iterable[str] = ()) -> None:
        entries = (*configured, *DEFAULT_ORIGINS)
        self.allow_all = "*" in entries
        self._exact = frozenset(e for e in entries if "*" not in e)
        wildcards = (e.partition("*") for e in entries if "*" in e and e != "*")
        self._wildcards = tuple((prefix, suffix) for prefix, _, suffix in wildcards)

    def allows(self, origin: str) -> bool:
        if self.allow_all or origin in self._exact:
            return True
        size = len(origin)
        return any(
            size >= len(prefix) + len(suffix) and origin.startswith(prefix) and origin.endswith(suffix)
            for prefix, suffix in self._wildcards
        )


def host_of(host_header: str) -> str:
    """The host part of a ``Host`` header, as Go's ``net.SplitHostPort`` (falling back to the whole value).

    One deliberate difference: a bracketed IPv6 literal without a port (``[::1]``) is unwrapped, where Ollama
    keeps the brackets and so refuses it."""
    if host_header.startswith("["):
        end = host_header.find("]")
        if end > 0 and (end == len(host_header) - 1 or host_header[end + 1] == ":"):
            return host_header[1:end]
        return host_header
    if host_header.count(":") == 1:
        return host_header.partition(":")[0]
    return host_header  # no port, or a bare IPv6 literal


@lru_cache(maxsize=1024)
def host_allowed(host_header: str, hostname: str) -> bool:
    """Ollama's allowedHostsMiddleware test for a ``Host`` header (``hostname`` is the machine's, lower case).

    Local IP literals (loopback, RFC 1918 / fc00::/7, unspecified) and local names (empty, ``localhost``, the
    machine's hostname, ``*.localhost``, ``*.local``, ``*.internal``) pass, with or without a port. Cached:
    a client sends the same few values over and over."""
    host = host_of(host_header)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback or ip.is_unspecified or any(ip in net for net in _GO_PRIVATE):
            return True
    name = host.lower()
    return name in ("", "localhost", hostname) or name.endswith(_LOCAL_SUFFIXES)


class AccessControl:
    """Falcon ASGI middleware: CORS, then the Host check, then the API key; the first refusal answers.

    It runs in ``process_request`` (before routing), so a preflight is answered 204 for every path, known or
    not, and never needs a key; Falcon's own OPTIONS responder (200 + Allow) only sees non-CORS OPTIONS.
    Install it after any middleware whose ``process_response`` expects its own ``process_request`` to have
    run: setting ``resp.complete`` skips the ``process_request`` of later middleware only."""

    __slots__ = (
        "_check_host",
        "_exempt",
        "_guarded",
        "_hostname",
        "_keys",
        "_ledger",
        "_limiter",
        "_origins",
        "_tenants",
    )

    def __init__(
        self,
        *,
        api_keys: ApiKeys,
        origins: OriginPolicy,
        check_host: bool,
        exempt_paths: frozenset[str] = DEFAULT_AUTH_EXEMPT_PATHS,
        hostname: str = "",
        tenants: Tenants | None = None,
        limiter: Limiter | None = None,
        ledger: LedgerWriter | None = None,
    ) -> None:
        self._keys = api_keys
        self._tenants = tenants or Tenants()
        self._guarded = bool(api_keys) or bool(self._tenants)  # fixed for the worker's life
        self._limiter = limiter
        self._ledger = ledger
        self._exempt = exempt_paths
        self._origins = origins
        self._check_host = check_host
        self._hostname = (hostname or socket.gethostname()).lower()

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        origin = req.get_header("Origin")
        if origin and self._cors(req, resp, origin):
            return
        if self._check_host and not host_allowed(req.get_header("Host") or "", self._hostname):
            log.debug("refused %s %s: Host header not local", req.method, req.path)
            resp.status = 403
            resp.content_type = _JSON
            resp.data = _HOST_FORBIDDEN
            resp.complete = True
            return
        set_current_tenant(None)
        if self._guarded and req.path not in self._exempt:
            tenant = self._authenticate(req, resp)
            if tenant is not None:
                req.context.tenant = tenant
                set_current_tenant(tenant)
                info = getattr(req.context, "info", None)  # RequestTracking's, for the access log line
                if info is not None and tenant.name:
                    info.tenant = tenant.name
                if req.method == "POST":
                    await self._limit_requests(req, resp, tenant)
                    if info is not None and tenant.name and self._ledger is not None and not resp.complete:
                        info.on_finish.append(functools.partial(_to_ledger, self._ledger, tenant.name))

    async def _limit_requests(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, tenant: Tenant
    ) -> None:
        """A limited tenant's POST: 429 with ``Retry-After`` in the route's dialect while it is over its
        tokens per minute (charged when each answer's usage is known) or its requests per minute; 503 when
        the limit store is down and the failure policy is closed. Its tokens are charged at the end of the
        request, and a stream it opens takes one of its concurrent-stream slots (upstream_call.py)."""
        limiter = self._limiter
        limits = tenant.limits
        if limiter is None or limits == NO_LIMITS:
            return
        if limits.tokens_per_minute is not None or limits.requests_per_minute is not None:
            # One store round trip; tokens first: a request refused for them uses none of its requests.
            try:
                refused = await limiter.admit(
                    tenant.name, limits.requests_per_minute, limits.tokens_per_minute
                )
            except StoreUnavailable:
                _store_down(req, resp)
                return
            if refused is not None:
                name, wait = refused
                value = getattr(limits, name)
                self._over(req, resp, limiter, tenant, name, f"{value} {name.replace('_', ' ')}", wait)
                return
        info = getattr(req.context, "info", None)
        if info is None:
            return
        if limits.tokens_per_minute is not None:
            info.on_finish.append(
                lambda done: limiter.charge(
                    tenant.name, (done.prompt_tokens or 0) + (done.completion_tokens or 0)
                )
            )
        if limits.concurrent_streams is not None:
            info.stream_gate = functools.partial(
                _stream_gate, limiter, tenant, limits.concurrent_streams, info
            )

    @staticmethod
    def _over(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        limiter: Limiter,
        tenant: Tenant,
        limit: str,
        what: str,
        wait: float,
    ) -> None:
        message = f"rate limit exceeded: {what} for this key; retry after {wait:.1f}s"
        log.info("refused %s %s: tenant %s over %s", req.method, req.path, tenant.name, what)
        limiter.refused(tenant.name, limit)
        refuse(req, resp, 429, message, ("rate_limit_error", "requests", "rate_limit_exceeded"))
        resp.set_header("Retry-After", retry_after_header(wait))

    def _cors(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, origin: str) -> bool:
        """gin-contrib/cors ``applyCors``; True when the request has been answered (preflight or refusal)."""
        host = req.get_header("Host") or ""
        if origin == "http://" + host or origin == "https://" + host:
            return False  # same origin (e.g. a page served through the same name): not a CORS request
        if not self._origins.allows(origin):
            log.debug("refused %s %s: origin not allowed", req.method, req.path)
            resp.status = 403  # empty body, as Ollama
            resp.content_type = "text/plain; charset=utf-8"
            resp.data = b""
            resp.complete = True
            return True
        allowed = "*" if self._origins.allow_all else origin
        resp.set_header("Access-Control-Allow-Origin", allowed)
        if req.method == "OPTIONS":
            resp.set_headers(_PREFLIGHT_HEADERS)
            if not self._origins.allow_all:
                resp.set_header("Vary", _PREFLIGHT_VARY)
            resp.status = 204
            resp.complete = True
            return True
        if not self._origins.allow_all:
            resp.set_header("Vary", "Origin")
        return False

    def _resolve(self, token: str) -> Tenant | None:
        """The key's tenant: the unnamed one for ``FALCON_OLLAMA_API_KEYS``, else from the tenants file."""
        if self._keys and self._keys.verify(token):
            return UNLIMITED
        return self._tenants.resolve(token) if self._tenants else None

    def _authenticate(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> Tenant | None:
        """The caller's tenant, or a 401 answered (None) unless ``Authorization: Bearer <key>`` or
        ``x-api-key: <key>`` (Anthropic's clients) carries a configured key (the key is never logged)."""
        scheme, _, token = (req.get_header("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            scheme, token = "bearer", (req.get_header("x-api-key") or "").strip()
        if scheme.lower() == "bearer" and token:
            tenant = self._resolve(token)
            if tenant is not None:
                return tenant
            message, challenge = _INVALID, f'Bearer realm="{REALM}", error="invalid_token"'
        else:
            message, challenge = _MISSING, f'Bearer realm="{REALM}"'
        log.debug("refused %s %s: %s", req.method, req.path, message)
        refuse(req, resp, 401, message, ("authentication_error", "invalid_request_error", _KEY_CODE))
        resp.set_header("WWW-Authenticate", challenge)
        return None


STORE_DOWN_MESSAGE: Final = "rate-limit store unavailable; retry shortly"


def _store_down(req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
    refuse(req, resp, 503, STORE_DOWN_MESSAGE, ("api_error", "api_error", "limit_store_unavailable"))
    resp.set_header("Retry-After", "1")


def _to_ledger(ledger: LedgerWriter, tenant: str, info: Any) -> None:
    """A finished request of a named tenant, into the usage ledger (``info``: requestlog.RequestInfo)."""
    ledger.record(tenant, info.model_label, info.prompt_tokens or 0, info.completion_tokens or 0)


async def _stream_gate(limiter: Limiter, tenant: Tenant, cap: int, info: Any) -> None:
    """Before a tenant's stream opens upstream: take a slot (released when ``info``, the request's
    requestlog.RequestInfo, finishes), or raise
    429 (the cap is reached) or 503 (store down, policy closed) for the route to answer in its dialect."""
    try:
        lease = await limiter.open_stream(tenant.name, cap)
    except StoreUnavailable:
        raise OllamaError(503, STORE_DOWN_MESSAGE, {"Retry-After": "1"}) from None
    if lease is None:
        limiter.refused(tenant.name, "concurrent_streams")
        log.info("refused a stream: tenant %s holds %d concurrent streams", tenant.name, cap)
        message = f"rate limit exceeded: {cap} concurrent streams for this key; retry when one ends"
        raise OllamaError(429, message, {"Retry-After": "1"})
    info.on_finish.append(lambda _: lease.close())


def refuse(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    status: int,
    message: str,
    kinds: tuple[str, str, str],
) -> None:
    """Answer ``status`` in the route's dialect and complete the response. ``kinds``: Anthropic's error
    type (/v1/messages), OpenAI's error type and code (other /v1 routes); Ollama's get ``{"error"}``."""
    anthropic_type, openai_type, openai_code = kinds
    resp.status = status
    resp.content_type = _JSON
    if req.path.startswith("/v1/messages"):
        resp.data = orjson.dumps({"type": "error", "error": {"type": anthropic_type, "message": message}})
    elif req.path.startswith("/v1/"):
        error = {"message": message, "type": openai_type, "param": None, "code": openai_code}
        resp.data = orjson.dumps({"error": error})
    else:
        resp.data = orjson.dumps({"error": message})
    resp.complete = True
