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
A llama-cpp-python server, which says its context nowhere but in the refusal of a prompt that long, is sent
one such prompt per model and worker after its list loads (translate/context_probe.py).

Several backends (falcon_ollama/backends.py): each has its own cached list (a failed refresh keeps that
backend's stale list), and the lists are merged in the configuration's order, each model shown as
``<prefix><id>`` with its own backend's facts. An id two unprefixed backends both list is served by the first
and logged as an error naming both (``conflicts``). Resolving a name records its route for the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from falcon_ollama.backends import Link, routed
from falcon_ollama.catalog_config import UPSTREAM_ERROR, CatalogConfig, UpstreamFacts
from falcon_ollama.catalog_config import ModelEntry as ModelEntry  # re-exported: its old home
from falcon_ollama.errors import OllamaError, UpstreamProtocolError, model_not_found
from falcon_ollama.tenants import current_tenant
from falcon_ollama.translate.context_probe import context_probe_body, wants_context_probe
from falcon_ollama.translate.model_list import (
    context_from_error,
    parse_model_list,
    served_context,
    upstream_facts,
)
from falcon_ollama.upstream import Upstream, UpstreamError

log = logging.getLogger("falcon_ollama.catalog")

_FAILED_REFRESH_BACKOFF = 5.0
# A name we do not know may be a model the upstream added since the last refresh: look again, but not more
# often than this, so a client hammering an unknown name cannot turn into a /models flood.
_MISS_REFRESH_INTERVAL = 30.0
# Entries built between two yields to the event loop (~80 µs each measured: a slice costs a few ms).
_INSTALL_SLICE = 100
# How long a request waits for a backend's first model list while other backends already serve.
_FIRST_LOAD_WAIT = 5.0
# How long a refresh waits for the context probes it started (they go on in the background after): the
# first /api/tags then already shows what they learnt from a server that answers them at once.
_PROBE_WAIT = 2.0


def ollama_name(model_id: str) -> str:
    """The listed name for an id: Ollama names carry a tag, ``latest`` unless the id has one."""
    return model_id if ":" in model_id.rsplit("/", 1)[-1] else f"{model_id}:latest"


def lookup_key(name: str) -> str:
    """Normalize a requested name for lookup: trimmed, lower-case, without ``:latest``."""
    key = name.strip().lower()
    if key.endswith(":latest"):
        key = key[: -len(":latest")]
    return key


_DEFAULT_HOST = "registry.ollama.ai/"
_DEFAULT_NAMESPACE = "library/"


def _without_default_namespace(key: str) -> str:
    """``key`` without Ollama's default host and namespace, if it names them (else unchanged)."""
    short = key.removeprefix(_DEFAULT_HOST)
    rest = short.removeprefix(_DEFAULT_NAMESPACE)
    return rest if rest != short and rest and "/" not in rest else key


def _with_learnt(facts: UpstreamFacts | None, context: int) -> UpstreamFacts:
    """What an upstream says of a model, with the context it named refusing a prompt that long."""
    return replace(facts or UpstreamFacts(), context_length=context, context_source=UPSTREAM_ERROR)


class _Listing:
    """One backend's cached model list and the state of its refreshes."""

    __slots__ = ("failure", "fresh_until", "last_error", "last_success", "probe", "raw", "refresh",
                 "served", "upstream")  # fmt: skip

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.raw: list[dict[str, Any]] | None = None
        self.served: int | None = None
        self.fresh_until = 0.0
        self.refresh: asyncio.Task[None] | None = None
        self.probe: asyncio.Task[None] | None = None  # context probes of its models (context_probe.py)
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.failure: OllamaError | None = None


class Catalog:
    """Resolves names and lists models; one per worker, built by ``create_app``."""

    def __init__(
        self,
        config: CatalogConfig,
        upstream: Upstream | Sequence[Upstream],
        *,
        ttl: float,
        max_models: int,
        allow_unlisted: bool = False,
        probe_tokens: int = 0,
        probe_models: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._max_models = max_models
        upstreams = [upstream] if isinstance(upstream, Upstream) else list(upstream)
        self._listings = [_Listing(u) for u in upstreams]
        self._ttl = ttl
        self._allow_unlisted = allow_unlisted
        self._clock = clock
        self._entries: list[ModelEntry] | None = None
        self._index: dict[str, ModelEntry] = {}
        self._generation = 0
        self._installed = 0
        self._last_miss_refresh = -_MISS_REFRESH_INTERVAL
        self._warned: set[str] = set()
        self.conflicts: list[str] = []  # ids two unprefixed backends both list (the first serves them)
        # Served contexts a backend named when it refused an over-long prompt, by (backend, lower-case
        # upstream id) (llama-cpp-python says it nowhere else); kept across refreshes, per worker.
        self._learnt_context: dict[tuple[str, str], int] = {}
        self._said: dict[tuple[str, str], UpstreamFacts] = {}  # the last lists' facts, same keys
        # The context probe's prompt length in tokens (0: never probe), and the models probed, same keys.
        self._probe_tokens = probe_tokens
        self._probe_models = probe_models  # at most per list: the server loads each model asked about
        self._probed: set[tuple[str, str]] = set()  # at most max_models (as _learnt_context)
        self._learnt_count = 0  # contexts learnt so far: an install that saw this change applies them again
        for listing in self._listings:
            listing.upstream.on_refusal = functools.partial(self.learn_context, listing.upstream.name)
        # Lookup keys of the aliases written without a tag: these answer every tag of their name.
        self._untagged_aliases = frozenset(
            lookup_key(alias) for alias in config.aliases if ":" not in alias.rsplit("/", 1)[-1]
        )

    @property
    def config(self) -> CatalogConfig:
        return self._config

    @property
    def last_success(self) -> float | None:
        """Clock time of the latest successful refresh of any backend (for readiness checks)."""
        times = [x.last_success for x in self._listings if x.last_success is not None]
        return max(times) if times else None

    @property
    def last_error(self) -> str | None:
        errors = [x.last_error for x in self._listings if x.last_error is not None]
        return "; ".join(errors) if errors else None

    def backend_states(self) -> list[tuple[str, float | None, str | None, int]]:
        """Per backend: name, last successful refresh, last refresh error, models it offers now."""
        counts: dict[str, int] = {}
        for entry in self._entries or []:
            if entry.alias_of is None and entry.route:
                counts[entry.backend] = counts.get(entry.backend, 0) + 1
        return [
            (x.upstream.name, x.last_success, x.last_error, counts.get(x.upstream.name, 0))
            for x in self._listings
        ]

    def failures(self) -> list[tuple[str, OllamaError]]:
        """The backends whose last refresh failed, with the failure (``falcon-ollama check``)."""
        return [(x.upstream.name, x.failure) for x in self._listings if x.failure is not None]

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
        answers this 404 in its own dialect. An alias is judged by its own name. The entry's route is
        recorded for the request (the upstream-call path sends there)."""
        entry = await self._resolve(name)
        tenant = current_tenant()
        if tenant is not None and not tenant.may_use(entry.name):
            raise model_not_found(name)
        routed(entry.route)
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
            for listing in self._listings:
                listing.fresh_until = 0.0
            await self._ensure_loaded(wait=True)
            entry = self._find(key, name)
            if entry is not None:
                return entry
        if self._allow_unlisted:
            upstream_id = name.strip()
            if upstream_id.lower().endswith(":latest"):
                upstream_id = upstream_id[: -len(":latest")]
            link = self._unlisted_link(upstream_id)
            facts = self._config.facts_for(link.model)
            return ModelEntry(ollama_name(upstream_id), link.model, facts, None, listed=False, route=(link,))
        raise model_not_found(name)

    def _unlisted_link(self, shown: str) -> Link:
        """Where a name nothing lists goes: the backend whose prefix it carries, else the first."""
        for listing in self._listings:
            prefix = listing.upstream.backend.prefix
            if prefix and shown.lower().startswith(prefix.lower()) and len(shown) > len(prefix):
                return Link(listing.upstream.name, shown[len(prefix) :])
        return Link(self._listings[0].upstream.name, shown)

    def _find(self, key: str, name: str) -> ModelEntry | None:
        """The entry for a lookup key; a tagged name (``llama3.2:3b``) that nothing lists as such is
        answered by an alias of the same name without a tag, under the name the client asked for. A name
        spelt out in full (``registry.ollama.ai/library/llama3.2``, ``library/llama3.2``) that nothing lists
        so is the short name, as Ollama's ParseName fills in its default host and namespace."""
        entry = self._index.get(key)
        if entry is not None:
            return entry
        short = _without_default_namespace(key)
        if short != key:
            return self._find(short, name)
        base, colon, tag = key.rpartition(":")
        if not colon or not base or not tag or "/" in tag or base not in self._untagged_aliases:
            return None
        entry = self._index.get(base)
        return None if entry is None else replace(entry, name=name.strip())

    def start_background_refresh(self) -> None:
        """Warm the cache at start-up without blocking it (an unreachable upstream must not stop a worker)."""
        for listing in self._listings:
            self._start_refresh(listing)

    def refresh_if_stale(self) -> None:
        """Refresh in the background if a list is past its TTL (keeps an idle worker ready)."""
        now = self._clock()
        for listing in self._listings:
            if now >= listing.fresh_until:
                self._start_refresh(listing)

    async def close(self) -> None:
        for listing in self._listings:
            for task in (listing.refresh, listing.probe):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):  # shutting down: the outcome no longer matters
                        await task

    async def _ensure_loaded(self, *, wait: bool = False) -> None:
        now = self._clock()
        waits: list[asyncio.Task[None]] = []
        for listing in self._listings:
            if now >= listing.fresh_until or (listing.refresh is not None and not listing.refresh.done()):
                task = self._start_refresh(listing)
                # A backend's first load is waited for (until it failed once: then it no longer holds the
                # others' models up); else the stale list is served while the refresh runs.
                if wait or self._entries is None or (listing.raw is None and listing.failure is None):
                    waits.append(task)
        if waits:
            # shield: one waiter being cancelled (client gone) must not cancel the refresh others await.
            together = asyncio.shield(asyncio.gather(*waits))
            if wait or self._entries is None:
                await together
            else:  # other backends serve already: a slow first list holds them up only for a moment
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(together, _FIRST_LOAD_WAIT)
        if self._entries is None:
            # Every refresh failed (within its back-off) and there is nothing to serve: report why.
            failure = next((x.failure for x in self._listings if x.failure is not None), None)
            raise failure or OllamaError(502, "the upstream model list is unavailable")

    def _start_refresh(self, listing: _Listing) -> asyncio.Task[None]:
        if listing.refresh is None or listing.refresh.done():
            listing.refresh = asyncio.get_running_loop().create_task(self._do_refresh(listing))
        return listing.refresh

    async def _do_refresh(self, listing: _Listing) -> None:
        upstream = listing.upstream
        try:
            body, complete = await upstream.list_models()
            parsed = parse_model_list(body, max_models=self._max_models, complete=complete)
        except (OllamaError, UpstreamProtocolError) as exc:
            if isinstance(exc, UpstreamError):
                upstream.without_address(exc)
            listing.failure = exc if isinstance(exc, OllamaError) else OllamaError(502, exc.message)
            listing.last_error = exc.message
            listing.fresh_until = self._clock() + _FAILED_REFRESH_BACKOFF
            log.warning("backend %s: model list refresh failed: %s", upstream.name, exc.message)
            return
        except Exception as exc:  # never let a bug here kill the shared task silently
            log.exception("model list refresh of backend %s crashed", upstream.name)
            listing.failure = OllamaError(502, "the upstream model list is unavailable")
            listing.last_error = type(exc).__name__
            listing.fresh_until = self._clock() + _FAILED_REFRESH_BACKOFF
            return
        if parsed.more:
            log.warning(
                "backend %s: the upstream lists more models than FALCON_OLLAMA_MAX_MODELS or its list is "
                "larger than FALCON_OLLAMA_MAX_MODEL_LIST_BYTES; serving the first %d",
                upstream.name,
                len(parsed.models),
            )
        listing.served = await self._served_context(upstream, parsed.models)
        listing.raw = parsed.models
        listing.failure = None
        listing.last_error = None
        listing.last_success = self._clock()
        listing.fresh_until = listing.last_success + self._ttl
        probe = self._start_probe(listing)
        if probe is not None:  # before the merge, so that the list it publishes already says what they learn
            # shield: a waiter cancelled must not cancel the probes; _probe itself never raises
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(probe), _PROBE_WAIT)
        await self._install()

    def _start_probe(self, listing: _Listing) -> asyncio.Task[None] | None:
        """Ask a llama-cpp-python server the context of each model it shows that nothing else describes
        (translate/context_probe.py), once per model and worker, one model at a time. None when nothing is
        left to ask or probes of this backend still run (the next refresh asks what they do not cover)."""
        if listing.probe is not None and not listing.probe.done():
            return None
        raw = listing.raw or []
        if not self._probe_tokens or not wants_context_probe(raw):
            return None
        backend = listing.upstream.backend
        config = self._config
        asked = [
            item["id"]
            for item in raw
            if (backend.name, item["id"].lower()) not in self._probed
            and (backend.name, item["id"].lower()) not in self._learnt_context
            and backend.offers(item["id"])
            and config.is_listed(item["id"])
            and config.facts_for(item["id"]).source_of("context_length") != "catalog"
        ][: min(self._probe_models, self._max_models - len(self._probed))]
        if not asked:
            return None
        self._probed.update((backend.name, model_id.lower()) for model_id in asked)
        listing.probe = asyncio.get_running_loop().create_task(self._probe(listing.upstream, asked))
        return listing.probe

    async def wait_for_probes(self) -> None:
        """Until every context probe started has ended (``falcon-ollama check``: show what they learn)."""
        probes = [x.probe for x in self._listings if x.probe is not None]
        if probes:
            await asyncio.gather(*probes)

    async def _probe(self, upstream: Upstream, model_ids: list[str]) -> None:
        for model_id in model_ids:
            started = time.perf_counter()
            try:
                answer = await upstream.probe_context(context_probe_body(model_id, self._probe_tokens))
                if answer is not None:
                    self.learn_context(upstream.name, model_id, answer[1])
            except Exception:  # never let a bug here end the task (or the refresh waiting on it) in an error
                log.exception("context probe of %r on backend %s crashed", model_id, upstream.name)
                continue
            if (upstream.name, model_id.lower()) not in self._learnt_context:
                log.info(
                    "backend %s did not name the context of %r when asked (%s, %.2f s); its default stands",
                    upstream.name,
                    model_id,
                    "no answer" if answer is None else f"HTTP {answer[0]}",
                    time.perf_counter() - started,
                )

    async def _served_context(self, upstream: Upstream, raw: list[dict[str, Any]]) -> int | None:
        """A llama.cpp server (its list entry has ``meta``) serving one model says in ``/props`` the
        context it runs with, which is what a request can use: ask it, once per refresh."""
        if len(raw) != 1 or not isinstance(raw[0].get("meta"), dict):
            return None
        return served_context(await upstream.server_props())

    async def _install(self) -> None:
        """Merge every backend's current list with the aliases into the index (the newest merge wins)."""
        self._generation += 1
        generation = self._generation
        learnt_count = self._learnt_count
        config = self._config
        entries: dict[str, ModelEntry] = {}
        # Per backend: its ids by lower-case id, and what its list says about each.
        ids: dict[str, dict[str, str]] = {}
        said: dict[tuple[str, str], UpstreamFacts] = {}
        conflicts: list[str] = []
        unloaded: set[str] = set()  # backends whose list never loaded: a chain keeps their links as written
        number = 0
        for listing in self._listings:
            backend = listing.upstream.backend
            known = ids.setdefault(backend.name, {})
            if listing.raw is None:
                unloaded.add(backend.name)
            for item in listing.raw or []:
                number += 1
                if number % _INSTALL_SLICE == 0:
                    await asyncio.sleep(0)
                model_id: str = item["id"]
                known.setdefault(model_id.lower(), model_id)
                upstream = upstream_facts(item)
                if listing.served is not None:
                    upstream = replace(upstream or UpstreamFacts(), context_length=listing.served)
                learnt = self._learnt_context.get((backend.name, model_id.lower()))
                if learnt is not None:
                    upstream = _with_learnt(upstream, learnt)
                if upstream is not None:
                    said[backend.name, model_id.lower()] = upstream
                if not backend.offers(model_id) or not config.is_listed(model_id):
                    continue
                shown = backend.prefix + model_id
                key = lookup_key(shown)
                other = entries.get(key)
                if other is not None and other.backend != backend.name:
                    conflicts.append(
                        f"model {shown!r} is listed by backends {other.backend} and {backend.name} "
                        f"without a prefix; {other.backend} serves it (give one of them a prefix)"
                    )
                    continue
                created = item.get("created")
                entries[key] = ModelEntry(
                    name=ollama_name(shown),
                    upstream_id=model_id,
                    facts=config.facts_for(model_id, upstream),
                    created=created if isinstance(created, int) and not isinstance(created, bool) else None,
                    route=(Link(backend.name, model_id),),
                )
        for alias in config.aliases:
            route = tuple(
                link
                for link in (self._target(alias, t, ids, entries, unloaded) for t in config.targets(alias))
                if link is not None
            )
            if not route:
                continue
            first = route[0]
            target_entry = entries.get(lookup_key(first.model))
            entries[lookup_key(alias)] = ModelEntry(
                name=ollama_name(alias),
                upstream_id=first.model,
                facts=config.facts_for(first.model, said.get((first.backend, first.model.lower()))),
                created=target_entry.created if target_entry else None,
                alias_of=first.model,
                route=route,
            )
        if generation < self._installed:
            return  # a merge that started later (with newer lists) already finished
        self._installed = generation
        for conflict in conflicts:
            if conflict not in self._warned:
                self._warned.add(conflict)
                log.error("%s", conflict)
        self.conflicts = conflicts
        # a context learnt while this merge gave the loop back: apply it again
        if learnt_count != self._learnt_count:
            relearnt = {
                key: _with_learnt(said.get(key), context) for key, context in self._learnt_context.items()
            }
            said.update(relearnt)
            entries = self._with_said(entries, relearnt)
        self._said = said
        self._publish(entries)

    def _with_said(
        self, entries: dict[str, ModelEntry], said: dict[tuple[str, str], UpstreamFacts]
    ) -> dict[str, ModelEntry]:
        """``entries`` with the facts of each whose first link ``said`` describes computed again."""
        out: dict[str, ModelEntry] = {}
        for name, e in entries.items():
            key = (e.route[0].backend, e.route[0].model.lower()) if e.route else None
            facts = said.get(key) if key is not None else None
            out[name] = e if facts is None else replace(e, facts=self._config.facts_for(e.upstream_id, facts))
        return out

    def _publish(self, entries: dict[str, ModelEntry]) -> None:
        self._index = entries
        self._entries = sorted(entries.values(), key=lambda e: e.name)

    def learn_context(self, backend: str, model: str, refusal: bytes) -> None:
        """A backend's refusal of a request for ``model`` (the upstream id it was sent): when it names the
        context the server runs with (an over-long prompt), that context becomes the model's
        ``context_length`` from here on, source "upstream error", unless the catalog file sets one."""
        context = context_from_error(refusal)
        if context is None:
            return
        key = (backend, model.lower())
        if self._learnt_context.get(key) == context:
            return
        if key not in self._learnt_context and len(self._learnt_context) >= self._max_models:
            return  # an upstream naming ever new ids cannot grow this without bound
        self._learnt_count += 1
        self._learnt_context[key] = context
        log.info(
            "backend %s's refusal names a context of %d tokens for %r; using it", backend, context, key[1]
        )
        said = _with_learnt(self._said.get(key), context)
        self._said[key] = said
        if self._entries is None:
            return  # the first merge is still to come, and reads what was learnt (a context probe)
        self._publish(self._with_said(self._index, {key: said}))

    def _target(
        self,
        alias: str,
        target: str,
        ids: dict[str, dict[str, str]],
        entries: dict[str, ModelEntry],
        unloaded: set[str],
    ) -> Link | None:
        """Where an alias target goes: ``backend/model`` (a configured backend's name first), a name the
        catalog shows (``local/qwen3-8b``), or an id some backend lists; None when nothing serves it. A
        ``backend/model`` link to a backend whose list has not loaded stays (the chain falls past it)."""
        head, slash, rest = target.partition("/")
        if slash and head in ids and rest:
            found = ids[head].get(rest.lower())
            if found is not None or self._allow_unlisted or head in unloaded:
                return Link(head, found or rest)
        else:
            shown = entries.get(lookup_key(target))
            if shown is not None and shown.route:
                return shown.route[0]
            for backend, known in ids.items():
                found = known.get(target.lower())
                if found is not None:
                    return Link(backend, found)
            if self._allow_unlisted:
                return self._unlisted_link(target)
        if f"{alias}\0{target}" not in self._warned:
            self._warned.add(f"{alias}\0{target}")
            log.warning("alias %r points at %r, which the upstream does not list", alias, target)
        return None
