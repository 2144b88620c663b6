"""Several OpenAI-compatible backends behind one Ollama endpoint: what each one is, and where a request goes.

A catalog file may declare ``[backends.<name>]`` tables (docs/configuration.md, "Several backends"). Without
one, a single backend named ``default`` is built from ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (and the
organization and project), so the one-upstream setup works as it always did. Each backend gets its own
``Upstream`` (its own pool, key and timeouts); a key is only ever sent to its own backend.

A backend's key comes from a variable (``api_key_env``) or a file (``api_key_file``), never from the file
itself: catalog files get committed and shared. ``repr`` of a :class:`BackendConfig` never shows the key.

Routing: the catalog's resolve step records the chosen model's :data:`Route` (the backend and upstream id
to try, in order: one link, or an alias's fallback chain) for the running request (:func:`routed`); the
upstream-call path reads it (:func:`current_route`). A context variable, as the request's tenant is, so
every route's resource stays unchanged: each request runs in its own task and context.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from falcon_ollama.named_tables import named_tables

Auth = Literal["bearer", "api-key", "none"]
Dialect = Literal["chat", "responses"]
AUTHS: tuple[Auth, ...] = ("bearer", "api-key", "none")
DIALECTS: tuple[Dialect, ...] = ("chat", "responses")
DEFAULT_BACKEND = "default"
_KEYS = frozenset(
    {
        "base_url",
        "api_key_env",
        "api_key_file",
        "auth",
        "headers",
        "connect_timeout",
        "first_byte_timeout",
        "idle_timeout",
        "total_timeout",
        "max_connections",
        "max_retries",
        "dialect",
        "models",
        "prefix",
    }
)
# Headers that carry a key: set through api_key_env / api_key_file and ``auth``, never written in the file.
_KEY_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
_TIMEOUTS = ("connect_timeout", "first_byte_timeout", "idle_timeout", "total_timeout")


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One upstream: where it is, how we authenticate, what it offers and under which names."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    key_source: str = ""  # where the key came from ("env AZURE_OPENAI_API_KEY", "file ..."), never the key
    auth: Auth = "bearer"
    headers: tuple[tuple[str, str], ...] = ()
    connect_timeout: float | None = None  # None: the FALCON_OLLAMA_* setting
    first_byte_timeout: float | None = None
    idle_timeout: float | None = None
    total_timeout: float | None = None
    max_connections: int | None = None
    max_retries: int | None = None
    dialect: Dialect = "chat"
    models: tuple[str, ...] = ("*",)  # fnmatch patterns of its listed ids to offer
    prefix: str = ""  # shown to clients as <prefix><id>
    implicit: bool = False  # built from OPENAI_* (no [backends] table)

    def offers(self, model_id: str) -> bool:
        lowered = model_id.lower()
        return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.models)

    def auth_headers(self) -> dict[str, str]:
        """The headers every request to this backend carries: its key (as its ``auth`` says) and extras."""
        headers = dict(self.headers)
        if self.api_key and self.auth == "bearer":
            headers["authorization"] = f"Bearer {self.api_key}"
        elif self.api_key and self.auth == "api-key":
            headers["api-key"] = self.api_key
        return headers

    def overrides(self) -> dict[str, Any]:
        """The settings this backend sets for itself (timeouts, pool size, retries)."""
        names = (*_TIMEOUTS, "max_connections", "max_retries")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass(frozen=True, slots=True)
class Link:
    """One place a model can be served from: a backend and the id it knows the model by."""

    backend: str
    model: str


Route = tuple[Link, ...]

_route: ContextVar[Route] = ContextVar("falcon_ollama.route", default=())


def routed(route: Route) -> None:
    """Record where the running request's model is served (called by the catalog's resolve)."""
    _route.set(route)


def current_route() -> Route:
    """The running request's route; empty when it resolved no model (then: the first backend)."""
    return _route.get()


def implicit_backend(
    base_url: str,
    api_key: str | None,
    organization: str | None = None,
    project: str | None = None,
    *,
    dialect: Dialect = "chat",
) -> BackendConfig:
    """Today's single upstream, from OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_ORGANIZATION / _PROJECT and
    FALCON_OLLAMA_UPSTREAM_DIALECT."""
    headers: list[tuple[str, str]] = []
    if organization:
        headers.append(("openai-organization", organization))
    if project:
        headers.append(("openai-project", project))
    return BackendConfig(
        name=DEFAULT_BACKEND,
        base_url=base_url,
        api_key=api_key,
        key_source="env OPENAI_API_KEY" if api_key else "",
        headers=tuple(headers),
        dialect=dialect,
        implicit=True,
    )


def parse_backends(
    data: Any, source: str, environ: Mapping[str, str], base_dir: Path | None = None
) -> tuple[BackendConfig, ...]:
    """The ``[backends.<name>]`` tables, in file order. Raises ValueError naming the offending key."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: [backends] must be a table of [backends.<name>] tables")
    result: list[BackendConfig] = []
    for name, table, where in named_tables(data, lambda name: f"{source}: backends.{name}"):
        result.append(_backend(name, table, where, environ, base_dir))
    _check_distinct(result, source)
    return tuple(result)


def _backend(
    name: str, table: dict[str, Any], where: str, environ: Mapping[str, str], base_dir: Path | None
) -> BackendConfig:
    if "api_key" in table:
        raise ValueError(f"{where}.api_key: never write a key in the file; use api_key_env or api_key_file")
    unknown = set(table) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    base_url = table.get("base_url")
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
        raise ValueError(f"{where}.base_url must be an http:// or https:// URL")
    api_key, key_source = _key(table, where, environ, base_dir)
    auth = table.get("auth", "bearer")
    if auth not in AUTHS:
        raise ValueError(f"{where}.auth must be one of {list(AUTHS)}")
    dialect = table.get("dialect", "chat")
    if dialect not in DIALECTS:
        raise ValueError(f"{where}.dialect must be one of {list(DIALECTS)}")
    headers = table.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError(f"{where}.headers must be a table of strings")
    bad = sorted(h for h in headers if h.lower() in _KEY_HEADERS)
    if bad:
        raise ValueError(f"{where}.headers: {bad} would carry a key; use api_key_env/api_key_file and auth")
    numbers: dict[str, Any] = {}
    for key in _TIMEOUTS:
        if key in table:
            value = table[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{where}.{key} must be a positive number of seconds")
            numbers[key] = float(value)
    for key, lowest in (("max_connections", 1), ("max_retries", 0)):
        if key in table:
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                raise ValueError(f"{where}.{key} must be an integer >= {lowest}")
            numbers[key] = value
    models = table.get("models", ["*"])
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"{where}.models must be a non-empty list of model ids or patterns")
    prefix = table.get("prefix", "")
    if not isinstance(prefix, str) or any(c.isspace() or c == ":" for c in prefix):
        raise ValueError(f"{where}.prefix must be a string without spaces or ':'")
    return BackendConfig(
        name=name,
        base_url=base_url,
        api_key=api_key,
        key_source=key_source,
        auth=cast(Auth, auth),
        headers=tuple((k.lower(), v) for k, v in headers.items()),
        dialect=cast(Dialect, dialect),
        models=tuple(models),
        prefix=prefix,
        **numbers,
    )


def _key(
    table: dict[str, Any], where: str, environ: Mapping[str, str], base_dir: Path | None
) -> tuple[str | None, str]:
    env_name, file_name = table.get("api_key_env"), table.get("api_key_file")
    if env_name is not None and file_name is not None:
        raise ValueError(f"{where}: give api_key_env or api_key_file, not both")
    if env_name is not None:
        if not isinstance(env_name, str) or not env_name:
            raise ValueError(f"{where}.api_key_env must name an environment variable")
        value = environ.get(env_name, "").strip()
        if not value:
            raise ValueError(f"{where}.api_key_env: {env_name} is not set")
        return value, f"env {env_name}"
    if file_name is not None:
        if not isinstance(file_name, str) or not file_name:
            raise ValueError(f"{where}.api_key_file must be a path")
        path = Path(file_name).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}.api_key_file: cannot read {path}: {type(exc).__name__}") from None
        if not value:
            raise ValueError(f"{where}.api_key_file: {path} is empty")
        return value, f"file {path}"
    return None, ""


def _check_distinct(backends: list[BackendConfig], source: str) -> None:
    """Two backends cannot show the same name: the same non-empty prefix, or the same literal model id
    offered by two unprefixed backends, is an error naming both. (Ids that only the backends' own lists
    reveal are checked when the lists are merged: catalog.py.)"""
    by_prefix: dict[str, str] = {}
    offered: dict[str, str] = {}
    for b in backends:
        if b.prefix:
            other = by_prefix.get(b.prefix.lower())
            if other is not None:
                raise ValueError(f"{source}: backends {other} and {b.name} both use the prefix {b.prefix!r}")
            by_prefix[b.prefix.lower()] = b.name
            continue
        for model in b.models:
            if any(c in model for c in "*?["):
                continue
            other = offered.get(model.lower())
            if other is not None:
                raise ValueError(
                    f"{source}: model {model!r} is served by backends {other} and {b.name} without a prefix; "
                    "give one of them a prefix"
                )
            offered[model.lower()] = b.name
