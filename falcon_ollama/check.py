"""``falcon-ollama check``: is this configuration able to serve? Exit 0 if so, 1 with the reason if not.

It validates the settings, reaches the upstream exactly as a worker would (same client, same timeouts,
same error mapping, no retries), and lists the models it would serve with their aliases and capabilities.
Each failure is said in words an operator can act on: a rejected key, an unreachable URL, an empty catalog.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

import orjson

from falcon_ollama.catalog import Catalog
from falcon_ollama.catalog_config import FACT_SOURCES_KEYS, ModelEntry
from falcon_ollama.errors import OllamaError
from falcon_ollama.settings import Settings, SettingsError
from falcon_ollama.upstream import RetryPolicy, Upstream, UpstreamError

EXIT_OK = 0
EXIT_PROBLEM = 1


def run_check(env_file: str | None, *, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    try:
        settings = Settings.from_env(env_file=env_file)
    except SettingsError as exc:
        return _report(out, as_json, ok=False, problem=f"configuration error: {exc}")
    if settings.offline:
        note = (
            "no OPENAI_API_KEY and no OPENAI_BASE_URL: the proxy would run the bundled fake upstream "
            "(offline demo); set one of them to serve real models"
        )
        return _report(out, as_json, ok=True, notes=[note])
    try:
        models = asyncio.run(_fetch_models(settings))
    except OllamaError as exc:
        return _report(out, as_json, ok=False, problem=_explain(exc, settings), settings=settings)
    if not models:
        problem = (
            "the upstream lists no model that would be served: check [listing] include/exclude in the "
            f"catalog ({settings.catalog_path or 'built-in defaults'})"
        )
        return _report(out, as_json, ok=False, problem=problem, settings=settings)
    return _report(out, as_json, ok=True, settings=settings, models=models)


async def _fetch_models(settings: Settings) -> list[ModelEntry]:
    upstream = Upstream(settings, retry=RetryPolicy(max_retries=0))
    await upstream.start()
    try:
        catalog = Catalog(
            settings.catalog, upstream, ttl=0.0, max_models=settings.max_models, allow_unlisted=False
        )
        return await catalog.list_models()
    finally:
        await upstream.close()


def _explain(exc: OllamaError, settings: Settings) -> str:
    where = settings.openai_base_url
    kind = exc.kind if isinstance(exc, UpstreamError) else None
    if kind == "key_rejected":
        return f"the upstream at {where} rejected the API key: check OPENAI_API_KEY"
    if exc.status == 504 or kind == "unreachable":
        return (
            f"the upstream at {where} is unreachable: {exc.message} (check OPENAI_BASE_URL, proxy, network)"
        )
    if kind == "no_api_root":
        return f"{where} has no /models endpoint: is OPENAI_BASE_URL the API root (usually ending in /v1)?"
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
            "alias": m.alias_of is not None,
            "capabilities": list(m.facts.capabilities),
            "context_length": m.facts.context_length,
            # where each fact came from: catalog, upstream (its own model list), builtin or default (a running
            # worker may also learn a context length from an upstream's refusal: "upstream error")
            "sources": {key: m.facts.source_of(key) for key in FACT_SOURCES_KEYS},
        }
        for m in models or []
    ]
    if as_json:
        payload = {"ok": ok, "problem": problem, "notes": notes or [], "models": rows}
        if settings is not None:
            payload["upstream"] = settings.openai_base_url
        out.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK if ok else EXIT_PROBLEM
    if settings is not None:
        out.write(f"upstream: {settings.openai_base_url}\n")
        out.write(f"catalog:  {settings.catalog_path or '(none: built-in defaults)'}\n")
        out.write("facts:    each from the first of catalog, upstream (its model list), builtin, default\n")
    for note in notes or []:
        out.write(f"note: {note}\n")
    if rows:
        width = max(len(r["name"]) for r in rows)
        out.write(f"\n{len(rows)} models would be served:\n")
        for r in rows:
            target = f"-> {r['upstream']}" if r["alias"] else ""
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
