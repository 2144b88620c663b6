"""The model catalog's static part: aliases, which upstream models to show, and per-model facts.

Read from an optional TOML file (``FALCON_OLLAMA_CATALOG``; the standard library reads TOML, so the format
costs no dependency) on top of built-in defaults for the known OpenAI families. Nothing here talks to the
upstream: ``catalog.py`` joins this with the live model list.

File format (every table optional; see ``conf/models.toml`` for a commented example)::

    [listing]
    include = ["*"]                      # fnmatch patterns of upstream ids to show
    exclude = ["whisper-*", "tts-*"]     # replaces the default exclusions when given

    [aliases]
    "llama3.2" = "gpt-4o-mini"           # Ollama name -> upstream id, or "backend/model"
    "qwen3" = ["local/qwen3-8b", "openai/o4-mini"]   # a fallback chain, tried in order

    [backends.local]                     # several upstreams: falcon_ollama/backends.py
    base_url = "http://127.0.0.1:8000/v1"
    prefix = "local/"

    [defaults]                           # facts for models nothing else describes
    context_length = 8192
    capabilities = ["completion", "tools"]

    [models."gpt-4o*"]                   # facts by exact id or fnmatch pattern, first match wins
    context_length = 128000
    capabilities = ["completion", "tools", "vision"]
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from falcon_ollama.backends import BackendConfig, Link, parse_backends

KNOWN_CAPABILITIES = frozenset({"completion", "tools", "insert", "vision", "embedding", "thinking"})

# Upstream models no Ollama client can use (speech, images, moderation, realtime, legacy completions).
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "whisper-*",
    "tts-*",
    "*-tts*",
    "*-transcribe*",
    "dall-e-*",
    "gpt-image-*",
    "*moderation*",
    "*-realtime*",
    "*-audio*",
    "babbage-*",
    "davinci-*",
    "sora*",
    "computer-use-*",
    "codex-mini*",
    "*-search-preview*",
    "*-deep-research*",
)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What we tell clients about a model, and what decides how its requests are shaped."""

    context_length: int
    capabilities: tuple[str, ...]
    family: str
    embedding_length: int | None = None
    # Reasoning models (o-series, gpt-5) take max_completion_tokens and reasoning_effort, reject max_tokens.
    reasoning: bool = False
    parameter_size: str = ""
    # Where the facts come from: "catalog" (the operator's file), "upstream" (the upstream's own model
    # list), "upstream error" (a context length its refusal of an over-long prompt named), "builtin" (a
    # known family), "default" (nothing describes the model: capabilities are a guess,
    # so none of them is a reason to refuse). ``source`` is the first of these that gave any fact;
    # ``sources`` says it per fact (see FACT_SOURCES_KEYS) where that differs.
    source: str = "builtin"
    sources: tuple[tuple[str, str], ...] = ()

    def source_of(self, fact: str) -> str:
        """Where one fact came from: ``context_length``, ``capabilities``, ``thinking`` (whether anyone said
        if the model thinks), ``embedding_length``, ``family``, ``parameter_size`` or ``reasoning``."""
        for key, value in self.sources:
            if key == fact:
                return value
        return self.source

    @property
    def known(self) -> bool:
        """Whether someone said if the model thinks: only then is a missing ``thinking`` cause to refuse."""
        return self.source_of("thinking") != "default"

    @property
    def is_embedding(self) -> bool:
        return "embedding" in self.capabilities


# Built-in facts for the known OpenAI families, most specific first. Context lengths are the published
# input windows. A catalog file's [models] entries come before these.
BUILTIN_FACTS: tuple[tuple[str, ModelFacts], ...] = (
    ("text-embedding-3-large*", ModelFacts(8191, ("embedding",), "openai-embedding", 3072)),
    ("text-embedding-3-small*", ModelFacts(8191, ("embedding",), "openai-embedding", 1536)),
    ("text-embedding-ada-002*", ModelFacts(8191, ("embedding",), "openai-embedding", 1536)),
    ("*embed*", ModelFacts(8192, ("embedding",), "embedding")),
    ("gpt-5*-chat*", ModelFacts(128000, ("completion", "tools", "vision"), "gpt-5")),
    ("gpt-5*", ModelFacts(400000, ("completion", "tools", "vision", "thinking"), "gpt-5", reasoning=True)),
    ("gpt-4.1*", ModelFacts(1047576, ("completion", "tools", "vision"), "gpt-4.1")),
    ("gpt-4o*", ModelFacts(128000, ("completion", "tools", "vision"), "gpt-4o")),
    ("chatgpt-4o*", ModelFacts(128000, ("completion", "vision"), "gpt-4o")),
    ("gpt-4-turbo*", ModelFacts(128000, ("completion", "tools", "vision"), "gpt-4")),
    ("gpt-4-*preview*", ModelFacts(128000, ("completion", "tools"), "gpt-4")),
    ("gpt-4-32k*", ModelFacts(32768, ("completion", "tools"), "gpt-4")),
    ("gpt-4*", ModelFacts(8192, ("completion", "tools"), "gpt-4")),
    ("gpt-3.5-turbo-instruct*", ModelFacts(4096, ("completion",), "gpt-3.5")),
    ("gpt-3.5-turbo*", ModelFacts(16385, ("completion", "tools"), "gpt-3.5")),
    ("gpt-oss*", ModelFacts(131072, ("completion", "tools", "thinking"), "gpt-oss", reasoning=True)),
    ("o1-mini*", ModelFacts(128000, ("completion", "thinking"), "o1", reasoning=True)),
    ("o1-preview*", ModelFacts(128000, ("completion", "thinking"), "o1", reasoning=True)),
    ("o1*", ModelFacts(200000, ("completion", "tools", "vision", "thinking"), "o1", reasoning=True)),
    ("o3-mini*", ModelFacts(200000, ("completion", "tools", "thinking"), "o3", reasoning=True)),
    ("o3*", ModelFacts(200000, ("completion", "tools", "vision", "thinking"), "o3", reasoning=True)),
    ("o4-mini*", ModelFacts(200000, ("completion", "tools", "vision", "thinking"), "o4", reasoning=True)),
)

DEFAULT_FACTS = ModelFacts(8192, ("completion", "tools"), "", source="default")

FACT_SOURCES_KEYS = (
    "context_length",
    "capabilities",
    "thinking",
    "embedding_length",
    "family",
    "parameter_size",
    "reasoning",
)
# Precedence of the places a fact can come from, first wins.
_PRECEDENCE = ("catalog", "upstream error", "upstream", "builtin", "default")
# The source of a context length learnt from an upstream's refusal of an over-long prompt
# (Catalog.learn_context).
UPSTREAM_ERROR = "upstream error"


@dataclass(frozen=True, slots=True)
class UpstreamFacts:
    """What an upstream's own model list says about one model; None where it says nothing.

    ``capabilities_complete``: the upstream said what the model can do in full (OpenRouter's
    ``supported_parameters``, LM Studio's ``type: "embeddings"``); otherwise ``capabilities`` are added to
    what is known (LM Studio's ``type: "vlm"`` says vision but nothing about tools or thinking).
    """

    context_length: int | None = None
    embedding_length: int | None = None
    parameter_size: str | None = None
    capabilities: tuple[str, ...] | None = None
    capabilities_complete: bool = False
    context_source: str = "upstream"  # or UPSTREAM_ERROR: learnt from a refusal, not read from a list

    @property
    def empty(self) -> bool:
        return (
            self.context_length is None
            and self.embedding_length is None
            and self.parameter_size is None
            and self.capabilities is None
        )


def _with_sources(facts: ModelFacts, changes: dict[str, Any], changed: dict[str, str]) -> ModelFacts:
    """``facts`` with some fields replaced, each replaced field's source recorded."""
    sources = {key: facts.source_of(key) for key in FACT_SOURCES_KEYS}
    sources.update(changed)
    overall = min(sources.values(), key=_PRECEDENCE.index)
    return replace(facts, **changes, source=overall, sources=tuple(sorted(sources.items())))


def merge_upstream(facts: ModelFacts, upstream: UpstreamFacts | None) -> ModelFacts:
    """Upstream metadata over built-in and default facts, under the catalog file's (per fact)."""
    if upstream is None or upstream.empty:
        return facts
    changes: dict[str, Any] = {}
    changed: dict[str, str] = {}
    for key in ("context_length", "embedding_length", "parameter_size"):
        value = getattr(upstream, key)
        if value is not None and facts.source_of(key) != "catalog":
            changes[key] = value
            changed[key] = upstream.context_source if key == "context_length" else "upstream"
    if upstream.capabilities is not None and facts.source_of("capabilities") != "catalog":
        extra = tuple(c for c in upstream.capabilities if c not in facts.capabilities)
        if upstream.capabilities_complete:
            changes["capabilities"] = upstream.capabilities
            changed["capabilities"] = changed["thinking"] = "upstream"
        elif extra:  # a partial word that adds nothing changes nothing (LM Studio's "llm")
            changes["capabilities"] = facts.capabilities + extra
            changed["capabilities"] = "upstream"
    if not changes:
        return facts
    return _with_sources(facts, changes, changed)


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    """The parsed catalog file (or the built-in defaults when there is none)."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    aliases: dict[str, str] = field(default_factory=dict)  # name -> its (first) target
    model_facts: tuple[tuple[str, ModelFacts], ...] = ()
    defaults: ModelFacts = DEFAULT_FACTS
    # The [backends.<name>] tables; empty: one implicit backend from OPENAI_* (Settings.backends).
    backends: tuple[BackendConfig, ...] = ()
    # Aliases written as a list: every target of the chain, in order (the first is also in ``aliases``).
    alias_chains: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def targets(self, alias: str) -> tuple[str, ...]:
        """An alias's targets in the order they are tried: ``"backend/model"`` or a model id or name."""
        return self.alias_chains.get(alias) or (self.aliases[alias],)

    def is_listed(self, upstream_id: str) -> bool:
        """Whether an upstream model is shown to clients (include patterns, minus exclude patterns)."""
        lowered = upstream_id.lower()
        if not any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.exclude)

    def facts_for(self, upstream_id: str, upstream: UpstreamFacts | None = None) -> ModelFacts:
        """Facts for an upstream id, each from the first that has it: the catalog file's entries, the
        upstream's own metadata, the built-in families, the defaults."""
        return merge_upstream(self._static_facts(upstream_id), upstream)

    def _static_facts(self, upstream_id: str) -> ModelFacts:
        lowered = upstream_id.lower()
        base_id = lowered.rsplit("/", 1)[-1]  # "openai/gpt-4o" (OpenRouter-style ids) -> "gpt-4o"
        for table in (self.model_facts, BUILTIN_FACTS):
            for pattern, facts in table:
                pat = pattern.lower()
                if fnmatch.fnmatchcase(lowered, pat) or fnmatch.fnmatchcase(base_id, pat):
                    return facts
        return replace(self.defaults, family=self.defaults.family or _family_from_id(base_id))


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One model as Ollama clients see it."""

    name: str  # Ollama-facing name, always with a tag: "gpt-4o:latest", "llama3.2:latest"
    upstream_id: str  # what the upstream receives
    facts: ModelFacts
    created: int | None  # unix seconds from the upstream listing, when it has one
    alias_of: str | None = None  # set when this entry is an alias
    listed: bool = True  # False: an unknown name passed through (FALCON_OLLAMA_ALLOW_UNLISTED_MODELS)
    # Where its requests go: one link, or an alias's fallback chain; empty: the first backend.
    route: tuple[Link, ...] = ()

    @property
    def backend(self) -> str:
        """The backend that serves it first ("" when routed to the first backend by default)."""
        return self.route[0].backend if self.route else ""


def _family_from_id(model_id: str) -> str:
    """A plausible family name for an unknown model: its leading letters (``qwen2.5-7b`` -> ``qwen``)."""
    match = re.match(r"[a-z]+", model_id)
    return match.group(0) if match else "unknown"


def load_catalog_file(path: Path, environ: Mapping[str, str] | None = None) -> CatalogConfig:
    """Read and validate a catalog TOML file. Raises ValueError with the offending key in its message.

    ``environ`` is where backends' ``api_key_env`` variables are read (default: the process environment)."""
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from None
    return parse_catalog(data, source=str(path), environ=environ, base_dir=path.parent)


def parse_catalog(
    data: dict[str, Any],
    *,
    source: str = "catalog",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> CatalogConfig:
    """Turn the decoded TOML document into a CatalogConfig, rejecting unknown tables and wrong types."""
    unknown = set(data) - {"listing", "aliases", "defaults", "models", "backends"}
    if unknown:
        raise ValueError(f"{source}: unknown table(s) {sorted(unknown)}")
    listing = _table(data, "listing", source)
    include = _str_list(listing.get("include", ["*"]), f"{source}: listing.include")
    exclude = _str_list(listing.get("exclude", list(DEFAULT_EXCLUDE)), f"{source}: listing.exclude")
    backends = parse_backends(
        _table(data, "backends", source), source, os.environ if environ is None else environ, base_dir
    )
    aliases: dict[str, str] = {}
    chains: dict[str, tuple[str, ...]] = {}
    for name, target in _table(data, "aliases", source).items():
        chain = target if isinstance(target, list) else [target]
        if not name.strip() or not chain or not all(isinstance(t, str) and t.strip() for t in chain):
            raise ValueError(
                f"{source}: aliases.{name} must map a name to a non-empty upstream model id "
                '(or "backend/model", or a list of them: a fallback chain)'
            )
        aliases[name.strip()] = chain[0].strip()
        if isinstance(target, list):
            chains[name.strip()] = tuple(t.strip() for t in chain)
    defaults = _facts(_table(data, "defaults", source), DEFAULT_FACTS, f"{source}: defaults", "default")
    models = _table(data, "models", source)
    facts: list[tuple[str, ModelFacts]] = []
    for pattern, entry in models.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: models.{pattern} must be a table")
        builtin = CatalogConfig(defaults=defaults).facts_for(pattern.rstrip("*") or pattern)
        facts.append((pattern, _facts(entry, builtin, f"{source}: models.{pattern}")))
    return CatalogConfig(
        include=tuple(include),
        exclude=tuple(exclude),
        aliases=aliases,
        model_facts=tuple(facts),
        defaults=defaults,
        backends=backends,
        alias_chains=chains,
    )


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{source}: [{key}] must be a table")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings")
    return value


def _facts(entry: dict[str, Any], base: ModelFacts, where: str, source: str = "catalog") -> ModelFacts:
    """A [models] entry (source "catalog": over the upstream's metadata) or the [defaults] table (source
    "default": under everything else, its capabilities still a guess)."""
    allowed = {"context_length", "capabilities", "family", "embedding_length", "reasoning", "parameter_size"}
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    result = base
    if "context_length" in entry:
        value = entry["context_length"]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{where}.context_length must be a positive integer")
        result = replace(result, context_length=value)
    if "embedding_length" in entry:
        value = entry["embedding_length"]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{where}.embedding_length must be a positive integer")
        result = replace(result, embedding_length=value)
    if "capabilities" in entry:
        caps = _str_list(entry["capabilities"], f"{where}.capabilities")
        bad = [c for c in caps if c not in KNOWN_CAPABILITIES]
        if bad:
            raise ValueError(f"{where}.capabilities: unknown {bad}; known: {sorted(KNOWN_CAPABILITIES)}")
        result = replace(result, capabilities=tuple(caps))
    for key in ("family", "parameter_size"):
        if key in entry:
            if not isinstance(entry[key], str):
                raise ValueError(f"{where}.{key} must be a string")
            result = replace(result, **{key: entry[key]})
    if "reasoning" in entry:
        if not isinstance(entry["reasoning"], bool):
            raise ValueError(f"{where}.reasoning must be true or false")
        result = replace(result, reasoning=entry["reasoning"])
    if entry and source != "default":
        keys = set(entry) | ({"thinking"} if "capabilities" in entry else set())
        result = _with_sources(result, {}, dict.fromkeys(keys, source))
    return result
