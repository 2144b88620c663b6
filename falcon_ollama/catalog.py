"""The live model catalog: the upstream's model list (cached, single-flight) joined with aliases and facts.

Why a cache with a single in-flight refresh: every chat request resolves its model name here, and 100
concurrent clients must not cause 100 ``/models`` calls. The list is refreshed at most once per TTL; while
a refresh runs, callers with a (stale) list keep using it (stale-while-revalidate), and callers without one
wait for the same refresh. A failed refresh keeps the old list and retries after a short back-off.

A hostile or huge list cannot take a worker down: the body is read up to a byte bound, only the first
``FALCON_OLLAMA_MAX_MODELS`` entries are decoded (a warning names what was dropped), and the entries are
built in slices that give the event loop back between them, so requests and gunicorn's heartbeat go on.

Names: a model is listed to Ollama clients as ``<upstream id>:latest`` (Ollama always shows a tag), and is
found as ``X``, ``X:latest`` or through an alias, case-insensitively; an alias written without a tag also
answers every tag of its name (``llama3.2:3b``) unless a tagged alias names that one. The upstream always
receives its own id. Facts come from the catalog file, the upstream's own list entry (context length,
capabilities), the built-in families and the defaults, in that order (``catalog_config.merge_upstream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from falcon_ollama.catalog_config import UPSTREAM_ERROR, CatalogConfig, UpstreamFacts
from falcon_ollama.catalog_config import ModelEntry as ModelEntry  # re-exported: its old home
from falcon_ollama.errors import OllamaError, UpstreamProtocolError, model_not_found
from falcon_ollama.tenants import current_tenant
from falcon_ollama.translate.model_list import (
    context_from_error,
    parse_model_list,
    served_context,
    upstream_facts,
)
from falcon_ollama.upstream import Upstream

log = logging.getLogger("falcon_ollama.catalog")

_FAILED_REFRESH_BACKOFF = 5.0
# A name we do not know may be a model the upstream added since the last refresh: look again, but not more
# often than this, so a client hammering an unknown name cannot turn into a /models flood.
_MISS_REFRESH_INTERVAL = 30.0
# Entries built between two yields to the event loop (~80 µs each measured: a slice costs a few ms).
_INSTALL_SLICE = 100


def ollama_name(model_id: str) -> str:
    """The listed name for an id: Ollama names carry a tag, ``latest`` unless the id has one."""
    return model_id if ":" in model_id.rsplit("/", 1)[-1] else f"{model_id}:latest"


def lookup_key(name: str) -> str:
    """Normalize a requested name for lookup: trimmed, lower-case, without ``:latest``."""
    key = name.strip().lower()
    if key.endswith(":latest"):
        key = key[: -len(":latest")]
    return key


class Catalog:
    """Resolves names and lists models; one per worker, built by ``create_app``."""

    def __init__(
        self,
        config: CatalogConfig,
        upstream: Upstream,
        *,
        ttl: float,
        max_models: int,
        allow_unlisted: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._max_models = max_models
        self._upstream = upstream
        self._ttl = ttl
        self._allow_unlisted = allow_unlisted
        self._clock = clock
        self._entries: list[ModelEntry] | None = None
        self._index: dict[str, ModelEntry] = {}
        self._fresh_until = 0.0
        self._refresh: asyncio.Task[None] | None = None
        self._last_miss_refresh = -_MISS_REFRESH_INTERVAL
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._warned_dangling: set[str] = set()
        self._failure: OllamaError | None = None
        # Served contexts the upstream named when it refused an over-long prompt, by lower-case upstream id
        # (llama-cpp-python says it nowhere else); kept across refreshes, per worker.
        self._learnt_context: dict[str, int] = {}
        self._said: dict[str, UpstreamFacts] = {}  # the last list's UpstreamFacts, by lower-case upstream id
        upstream.on_refusal = self.learn_context
        # Lookup keys of the aliases written without a tag: these answer every tag of their name.
        self._untagged_aliases = frozenset(
            lookup_key(alias) for alias in config.aliases if ":" not in alias.rsplit("/", 1)[-1]
        )

    @property
    def config(self) -> CatalogConfig:
        return self._config

    @property
    def last_success(self) -> float | None:
        """Clock time of the last successful refresh (for readiness checks)."""
        return self._last_success

    @property
    def last_error(self) -> str | None:
        return self._last_error

    async def list_models(self) -> list[ModelEntry]:
        """Every model shown to clients: visible upstream models and live aliases, sorted by name.

        A request's tenant (falcon_ollama/tenants.py) sees only the models its patterns allow."""
        await self._ensure_loaded()
        entries = self._entries or []
        tenant = current_tenant()
        if tenant is None:
            return entries
        return [e for e in entries if tenant.may_use(e.name)]

    async def resolve(self, name: str) -> ModelEntry:
        """Find the model a client asked for, or raise Ollama's 404 (``model '<name>' not found``).

        A model outside the request tenant's patterns is 404 as if it did not exist: each route already
        answers this 404 in its own dialect. An alias is judged by its own name."""
        entry = await self._resolve(name)
        tenant = current_tenant()
        if tenant is not None and not tenant.may_use(entry.name):
            raise model_not_found(name)
        return entry

    async def _resolve(self, name: str) -> ModelEntry:
        key = lookup_key(name)
        if not key:
            raise model_not_found(name)
        await self._ensure_loaded()
        entry = self._find(key, name)
        if entry is not None:
            return entry
        now = self._clock()
        if now - self._last_miss_refresh >= _MISS_REFRESH_INTERVAL:
            self._last_miss_refresh = now
            self._fresh_until = 0.0
            await self._ensure_loaded(wait=True)
            entry = self._find(key, name)
            if entry is not None:
                return entry
        if self._allow_unlisted:
            upstream_id = name.strip()
            if upstream_id.lower().endswith(":latest"):
                upstream_id = upstream_id[: -len(":latest")]
            facts = self._config.facts_for(upstream_id)
            return ModelEntry(ollama_name(upstream_id), upstream_id, facts, None, listed=False)
        raise model_not_found(name)

    def _find(self, key: str, name: str) -> ModelEntry | None:
        """The entry for a lookup key; a tagged name (``llama3.2:3b``) that nothing lists as such is
        answered by an alias of the same name without a tag, under the name the client asked for."""
        entry = self._index.get(key)
        if entry is not None:
            return entry
        base, colon, tag = key.rpartition(":")
        if not colon or not base or not tag or "/" in tag or base not in self._untagged_aliases:
            return None
        entry = self._index.get(base)
        return None if entry is None else replace(entry, name=name.strip())

    def start_background_refresh(self) -> None:
        """Warm the cache at start-up without blocking it (an unreachable upstream must not stop a worker)."""
        self._start_refresh()

    def refresh_if_stale(self) -> None:
        """Refresh in the background if the list is past its TTL (keeps an idle worker ready)."""
        if self._clock() >= self._fresh_until:
            self._start_refresh()

    async def close(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
            with contextlib.suppress(BaseException):  # shutting down: the outcome no longer matters
                await self._refresh

    async def _ensure_loaded(self, *, wait: bool = False) -> None:
        if self._clock() >= self._fresh_until:
            task = self._start_refresh()
            if self._entries is None or wait:
                # shield: one waiter being cancelled (client gone) must not cancel the refresh others await.
                await asyncio.shield(task)
            # else: serve the stale list while the refresh runs in the background
        if self._entries is None:
            # The last refresh failed (within its back-off) and there is nothing to serve: report why.
            raise self._failure or OllamaError(502, "the upstream model list is unavailable")

    def _start_refresh(self) -> asyncio.Task[None]:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._do_refresh())
        return self._refresh

    async def _do_refresh(self) -> None:
        try:
            body, complete = await self._upstream.list_models()
            parsed = parse_model_list(body, max_models=self._max_models, complete=complete)
        except (OllamaError, UpstreamProtocolError) as exc:
            self._failure = exc if isinstance(exc, OllamaError) else OllamaError(502, exc.message)
            self._last_error = exc.message
            self._fresh_until = self._clock() + _FAILED_REFRESH_BACKOFF
            log.warning("model list refresh failed: %s", exc.message)
            return
        except Exception as exc:  # never let a bug here kill the shared task silently
            log.exception("model list refresh crashed")
            self._failure = OllamaError(502, "the upstream model list is unavailable")
            self._last_error = type(exc).__name__
            self._fresh_until = self._clock() + _FAILED_REFRESH_BACKOFF
            return
        if parsed.more:
            log.warning(
                "the upstream lists more models than FALCON_OLLAMA_MAX_MODELS or its list is larger than "
                "FALCON_OLLAMA_MAX_MODEL_LIST_BYTES; serving the first %d",
                len(parsed.models),
            )
        served = await self._served_context(parsed.models)
        await self._install(parsed.models, served)
        self._failure = None
        self._last_error = None
        self._last_success = self._clock()
        self._fresh_until = self._last_success + self._ttl

    async def _served_context(self, raw: list[dict[str, Any]]) -> int | None:
        """A llama.cpp server (its list entry has ``meta``) serving one model says in ``/props`` the
        context it runs with, which is what a request can use: ask it, once per refresh."""
        if len(raw) != 1 or not isinstance(raw[0].get("meta"), dict):
            return None
        return served_context(await self._upstream.server_props())

    async def _install(self, raw: list[dict[str, Any]], served: int | None = None) -> None:
        config = self._config
        entries: dict[str, ModelEntry] = {}
        by_id_lower: dict[str, str] = {}
        said: dict[str, UpstreamFacts] = {}  # what the upstream's list says about a model, by lower-case id
        for number, item in enumerate(raw, start=1):
            if number % _INSTALL_SLICE == 0:
                await asyncio.sleep(0)
            model_id: str = item["id"]
            by_id_lower[model_id.lower()] = model_id
            upstream = upstream_facts(item)
            if served is not None:
                upstream = replace(upstream or UpstreamFacts(), context_length=served)
            learnt = self._learnt_context.get(model_id.lower())
            if learnt is not None:
                upstream = replace(
                    upstream or UpstreamFacts(), context_length=learnt, context_source=UPSTREAM_ERROR
                )
            if upstream is not None:
                said[model_id.lower()] = upstream
            if not config.is_listed(model_id):
                continue
            created = item.get("created")
            entry = ModelEntry(
                name=ollama_name(model_id),
                upstream_id=model_id,
                facts=config.facts_for(model_id, upstream),
                created=created if isinstance(created, int) and not isinstance(created, bool) else None,
            )
            entries[lookup_key(model_id)] = entry
        for alias, target in config.aliases.items():
            target_id = by_id_lower.get(target.lower())
            if target_id is None and not self._allow_unlisted:
                if target not in self._warned_dangling:
                    self._warned_dangling.add(target)
                    log.warning("alias %r points at %r, which the upstream does not list", alias, target)
                continue
            upstream_id = target_id or target
            target_entry = entries.get(lookup_key(upstream_id))
            entries[lookup_key(alias)] = ModelEntry(
                name=ollama_name(alias),
                upstream_id=upstream_id,
                facts=config.facts_for(upstream_id, said.get(upstream_id.lower())),
                created=target_entry.created if target_entry else None,
                alias_of=upstream_id,
            )
        self._said = said
        self._publish(entries)

    def _publish(self, entries: dict[str, ModelEntry]) -> None:
        self._index = entries
        self._entries = sorted(entries.values(), key=lambda e: e.name)

    def learn_context(self, model: str, refusal: bytes) -> None:
        """An upstream refusal of a request for ``model`` (an upstream id or a name clients use): when it
        names the context the server runs with (an over-long prompt), that context becomes the model's
        ``context_length`` from here on, source "upstream error", unless the catalog file sets one."""
        context = context_from_error(refusal)
        if context is None:
            return
        entry = self._index.get(lookup_key(model))
        upstream_id = (entry.upstream_id if entry is not None else model.strip()).lower()
        if self._learnt_context.get(upstream_id) == context:
            return
        self._learnt_context[upstream_id] = context
        log.info("the upstream's refusal names a context of %d tokens for %r; using it", context, upstream_id)
        said = replace(
            self._said.get(upstream_id) or UpstreamFacts(),
            context_length=context,
            context_source=UPSTREAM_ERROR,
        )
        self._said[upstream_id] = said
        self._publish(
            {
                key: replace(e, facts=self._config.facts_for(e.upstream_id, said))
                if e.upstream_id.lower() == upstream_id
                else e
                for key, e in self._index.items()
            }
        )
