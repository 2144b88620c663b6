"""``falcon-ollama check``: is this configuration able to serve? Exit 0 if so, 1 with the reason if not.

It validates the settings, reaches every backend exactly as a worker would (same client, same timeouts,
same error mapping, no retries), and lists the models it would serve with their aliases and capabilities,
and which backend each comes from. Each failure is said in words an operator can act on: a rejected key,
an unreachable URL, an empty catalog, a model two unprefixed backends both list. Any backend failing is a
problem (exit 1), even when the others serve.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

import orjson

from falcon_ollama.catalog import Catalog
from falcon_ollama.catalog_config import FACT_SOURCES_KEYS, ModelEntry
from falcon_ollama.errors import OllamaError
from falcon_ollama.limit_store import RedisStore, StoreUnavailable
from falcon_ollama.redaction import redactor_for
from falcon_ollama.secret_urls import redacted_url
from falcon_ollama.settings import Settings, SettingsError
from falcon_ollama.upstream import RetryPolicy, UpstreamError
from falcon_ollama.upstreams import Upstreams

EXIT_OK = 0
EXIT_PROBLEM = 1


def run_check(env_file: str | None, *, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    try:
        settings = Settings.from_env(env_file=env_file)
    except SettingsError as exc:
        return _report(out, as_json, ok=False, problem=f"configuration error: {exc}")
    notes: list[str] = []
    if settings.redis_url:
        where = redacted_url(settings.redis_url)
        problem = asyncio.run(_ping_redis(settings))
        if problem is not None:
            return _report(out, as_json, ok=False, problem=f"Redis at {where}: {problem}", settings=settings)
        notes.append(f"limit store: Redis at {where} answers")
    if settings.offline:
        note = (
            "no OPENAI_API_KEY and no OPENAI_BASE_URL: the proxy would run the bundled fake upstream "
            "(offline demo); set one of them to serve real models"
        )
        return _report(out, as_json, ok=True, notes=[*notes, note])
    try:
        models, failures = asyncio.run(_fetch_models(settings))
    except OllamaError as exc:
        return _report(out, as_json, ok=False, problem=_explain(exc, settings), settings=settings)
    if failures:
        return _report(out, as_json, ok=False, problem="; ".join(failures), settings=settings, models=models)
    if not models:
        problem = (
            "the upstream lists no model that would be served: check [listing] include/exclude in the "
            f"catalog ({settings.catalog_path or 'built-in defaults'})"
        )
        return _report(out, as_json, ok=False, problem=problem, settings=settings)
    return _report(out, as_json, ok=True, settings=settings, models=models, notes=notes)


async def _ping_redis(settings: Settings) -> str | None:
    """None when the limit store's Redis answers a PING within the store timeout, else why not."""
    assert settings.redis_url
    store = RedisStore(
        settings.redis_url, timeout=settings.limit_store_timeout, max_backoff=settings.redis_max_backoff
    )
    try:
        await store.ping()
    except StoreUnavailable as exc:
        return redactor_for(settings).text(f"does not answer ({exc})")
    finally:
        await store.close()
    return None


async def _fetch_models(settings: Settings) -> tuple[list[ModelEntry], list[str]]:
    """The models every backend serves, and each backend's failure (and each shared id) in words."""
    backends = Upstreams(settings, retry=RetryPolicy(max_retries=0))
    await backends.start()
    try:
        catalog = Catalog(
            settings.catalog,
            list(backends),
            ttl=3600.0,  # one load: the second list_models below reads it again, fetches nothing
            max_models=settings.max_models,
            allow_unlisted=False,
            probe_tokens=settings.context_probe_tokens,  # shows the context a worker will report
            probe_models=settings.context_probe_models,
        )
        try:
            await catalog.list_models()
            await catalog.wait_for_probes()  # a worker reports what they learn: so does check
            models = await catalog.list_models()
        except OllamaError:
            if len(backends) == 1:
                raise
            models = []
        finally:
            await catalog.close()
        failures = [
            f"backend {name}: {_explain(failure, settings, name)}"
            for name, failure in catalog.failures()
            if len(backends) > 1
        ]
        return models, failures + catalog.conflicts
    finally:
        await backends.close()


def _explain(exc: OllamaError, settings: Settings, backend: str | None = None) -> str:
    config = next((b for b in settings.backends if b.name == backend), settings.backends[0])
    where = config.base_url
    if config.implicit:
        key, url = "OPENAI_API_KEY", "OPENAI_BASE_URL"
    else:
        key = f"its key ({config.key_source or 'none given'}) and backends.{config.name}.auth"
        url = f"backends.{config.name}.base_url"
    kind = exc.kind if isinstance(exc, UpstreamError) else None
    if kind == "key_rejected":
        return f"the upstream at {where} rejected the API key: check {key}"
    if exc.status == 504 or kind == "unreachable":
        return f"the upstream at {where} is unreachable: {exc.message} (check {url}, proxy, network)"
    if kind == "no_api_root":
        return f"{where} has no /models endpoint: is {url} the API root (usually ending in /v1)?"
    return f"the upstream at {where} failed: {exc.message}"


def _report(
    out: TextIO,
    as_json: bool,
    *,
    ok: bool,
    problem: str | None = None,
    notes: list[str] | None = None,
    settings: Settings | None = None,
    models: list[ModelEntry] | None = None,
) -> int:
    rows: list[dict[str, Any]] = [
        {
            "name": m.name,
            "upstream": m.upstream_id,
            "backend": m.backend,
            "alias": m.alias_of is not None,
            "capabilities": list(m.facts.capabilities),
            "context_length": m.facts.context_length,
            # where each fact came from: catalog, upstream (its own model list), upstream error (the context
            # an upstream named refusing a prompt that long: the context probe's), builtin or default
            "sources": {key: m.facts.source_of(key) for key in FACT_SOURCES_KEYS},
        }
        for m in models or []
    ]
    if as_json:
        payload = {"ok": ok, "problem": problem, "notes": notes or [], "models": rows}
        if settings is not None:
            payload["upstream"] = settings.backends[0].base_url
            payload["backends"] = [
                {"name": b.name, "base_url": b.base_url, "dialect": b.dialect, "prefix": b.prefix}
                for b in settings.backends
            ]
        out.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK if ok else EXIT_PROBLEM
    several = settings is not None and len(settings.backends) > 1
    if settings is not None:
        if several:
            for b in settings.backends:
                prefix = f", shown as {b.prefix}<id>" if b.prefix else ""
                out.write(f"backend:  {b.name} {b.base_url} ({b.dialect}{prefix})\n")
        else:
            out.write(f"upstream: {settings.backends[0].base_url}\n")
        out.write(f"catalog:  {settings.catalog_path or '(none: built-in defaults)'}\n")
        out.write(
            "facts:    each from the first of catalog, upstream error (the context it names refusing a "
            "prompt that long), upstream (its model list), builtin, default\n"
        )
    for note in notes or []:
        out.write(f"note: {note}\n")
    if rows:
        width = max(len(r["name"]) for r in rows)
        out.write(f"\n{len(rows)} models would be served:\n")
        for r in rows:
            target = f"-> {r['upstream']}" if r["alias"] else ""
            if several:
                target = f"{target} [{r['backend']}]".lstrip()
            caps = ",".join(r["capabilities"])
            src = r["sources"]
            out.write(
                f"  {r['name']:<{width}}  {caps:<36} ({src['capabilities']:<8}) "
                f"ctx {r['context_length']:>8} ({src['context_length']:<8})  {target}".rstrip()
                + "\n"
            )
    if ok:
        out.write("\nOK\n")
        return EXIT_OK
    out.write(f"\nPROBLEM: {problem}\n")
    return EXIT_PROBLEM
