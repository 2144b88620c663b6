"""Tenants: named inbound keys, each with the models it may use and its limits (issue 15, first part).

Why a file of digests: the tenants file names who may call the proxy and what they may reach, so it is
configuration an operator reviews and versions; holding SHA-256 digests of the keys (never the keys) keeps it
safe to do so. A key is found by comparing its digest with every configured digest (constant time over the
whole set, as :class:`falcon_ollama.access.ApiKeys`), so timing does not tell which tenant matched.

Which models a tenant may use is decided here, by ``fnmatch`` patterns over the names clients see (case
folded); the catalog applies it through :func:`current_tenant`, so a hidden model is 404 and unlisted on every
route without each route knowing about tenants.

The limits are parsed and carried here; :mod:`falcon_ollama.limit_store` enforces them across workers (the
embedded store) or replicas (Redis), and :class:`falcon_ollama.access.AccessControl` applies them.
"""

from __future__ import annotations

import contextvars
import fnmatch
import hashlib
import hmac
import re
import tomllib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from falcon_ollama.named_tables import named_tables

_HEX_DIGEST: Final = re.compile(r"[0-9a-f]{64}")
_LIMIT_FIELDS: Final = ("requests_per_minute", "tokens_per_minute", "concurrent_streams")
_FIELDS: Final = frozenset({"key_sha256", "models", *_LIMIT_FIELDS})
UNNAMED: Final = ""  # the tenant of FALCON_OLLAMA_API_KEYS: every model, no limits


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's limits; ``None`` is unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_streams: int | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant: its name (a metric label, so bounded by the file), model patterns and limits."""

    name: str
    models: tuple[str, ...] = ("*",)
    limits: Limits = field(default_factory=Limits)

    def may_use(self, client_name: str) -> bool:
        """True when a client-visible model name matches one of the tenant's patterns (case-insensitive)."""
        name = client_name.strip().lower()
        bare = name.removesuffix(":latest")
        return any(fnmatch.fnmatchcase(n, p) for p in self.models for n in (name, bare))


UNLIMITED: Final = Tenant(UNNAMED)


class DigestSet:
    """A value held as key digests: sized, truth-tested, compared and hashed by the set of its members (never
    their order); ``str`` is ``repr``, which a subclass writes with counts only, never a digest."""

    __slots__ = ()

    def _members(self) -> tuple[Hashable, ...]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._members())

    def __bool__(self) -> bool:
        return bool(self._members())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and set(self._members()) == set(other._members())

    def __hash__(self) -> int:
        return hash(frozenset(self._members()))

    def __str__(self) -> str:
        return repr(self)


def find_digest(token: str, digests: Sequence[bytes]) -> int | None:
    """The index of the digest that is ``token``'s, or None. Every digest is compared on every call, whatever
    matches, and all have one length: the time taken tells neither which key matched nor how long keys are."""
    candidate = key_digest(token)
    found: int | None = None
    for index, digest in enumerate(digests):
        if hmac.compare_digest(candidate, digest):
            found = index
    return found


class Tenants(DigestSet):
    """Digest -> tenant; ``repr`` shows counts only, never a digest."""

    __slots__ = ("_entries", "source")

    def __init__(self, entries: Iterable[tuple[bytes, Tenant]] = (), source: str = "") -> None:
        self._entries: tuple[tuple[bytes, Tenant], ...] = tuple(entries)
        self.source = source  # the file's absolute path: processes reading one file share one rate window

    def limited(self) -> bool:
        """True when some tenant has a limit (a limit store is then needed)."""
        return any(t.limits != Limits() for _, t in self._entries)

    def resolve(self, token: str) -> Tenant | None:
        """The tenant whose key ``token`` is, or None; every digest is compared, whatever matches."""
        found = find_digest(token, [digest for digest, _ in self._entries])
        return None if found is None else self._entries[found][1]

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.name for _, t in self._entries))

    def __add__(self, other: Tenants) -> Tenants:
        return Tenants((*self._entries, *other._entries), self.source or other.source)

    def _members(self) -> tuple[Hashable, ...]:
        return self._entries

    def __repr__(self) -> str:
        return f"Tenants({len(self.names())} tenants, {len(self._entries)} keys)"


def key_digest(key: str) -> bytes:
    """What is kept of an inbound key (here and for FALCON_OLLAMA_API_KEYS): its SHA-256, never the key."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def _limit(table: Mapping[str, object], key: str, where: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where}: {key} must be a whole number of at least 1")
    return value


def _strings(table: Mapping[str, object], key: str, where: str) -> list[str]:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: {key} must be a non-empty list of strings")
    return [v.strip() for v in value]


def parse_tenants(text: str, source: str = "the tenants file") -> Tenants:
    """The TOML text of a tenants file; every mistake names its tenant and field, never a key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source} is not valid TOML: {exc}") from None
    unknown = set(doc) - {"tenants"}
    if unknown:
        raise ValueError(f"{source}: unknown top-level keys {sorted(unknown)} (expected [tenants.<name>])")
    tables = doc.get("tenants")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{source} defines no tenant (expected [tenants.<name>] tables)")
    entries: list[tuple[bytes, Tenant]] = []
    owner: dict[bytes, str] = {}
    for name, table, where in named_tables(tables, lambda name: f"{source}: tenant {name!r}"):
        extra = set(table) - _FIELDS
        if extra:
            raise ValueError(f"{where}: unknown fields {sorted(extra)}")
        limits = Limits(*(_limit(table, k, where) for k in _LIMIT_FIELDS))
        patterns = tuple(p.lower() for p in _strings(table, "models", where)) if "models" in table else ("*",)
        tenant = Tenant(name, patterns, limits)
        for number, hex_digest in enumerate(_strings(table, "key_sha256", where), start=1):
            hex_digest = hex_digest.lower().removeprefix("sha256:")
            if not _HEX_DIGEST.fullmatch(hex_digest):
                raise ValueError(f"{where}: key_sha256 entry {number} is not a 64-digit hex SHA-256 digest")
            digest = bytes.fromhex(hex_digest)
            if digest in owner:
                raise ValueError(f"{where}: key_sha256 entry {number} is already a key of {owner[digest]!r}")
            owner[digest] = name
            entries.append((digest, tenant))
    return Tenants(entries)


def read_secrets_file(path_text: str) -> tuple[Path, str]:
    """A keys or tenants file read once at start-up: its path and UTF-8 text, or a ValueError naming it."""
    path = Path(path_text).expanduser()
    try:
        return path, path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not UTF-8 text") from None


def read_tenants_file(path_text: str) -> Tenants:
    """``FALCON_OLLAMA_TENANTS_FILE``; an unreadable or empty file fails start-up (it would open the door)."""
    path, text = read_secrets_file(path_text)
    tenants = parse_tenants(text, repr(str(path)))
    tenants.source = str(path.resolve())
    return tenants


# The tenant of the request being served. Set by AccessControl.process_request, which Falcon awaits in the
# same task as the responder; uvicorn runs each request in its own task, so a value never leaks to another.
_CURRENT: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("falcon_ollama_tenant", default=None)


def current_tenant() -> Tenant | None:
    """The tenant of the request in progress (None when tenants are not configured or the path is exempt)."""
    return _CURRENT.get()


def set_current_tenant(tenant: Tenant | None) -> None:
    _CURRENT.set(tenant)
