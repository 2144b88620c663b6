"""Catalog file parsing and per-model facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcon_ollama.catalog_config import DEFAULT_EXCLUDE, CatalogConfig, UpstreamFacts, parse_catalog
from falcon_ollama.settings import SHIPPED_CATALOG, Settings


@pytest.mark.parametrize(
    ("model_id", "context_length", "capabilities", "reasoning"),
    [
        ("gpt-4o", 128000, ("completion", "tools", "vision"), False),
        ("gpt-4o-mini-2024-07-18", 128000, ("completion", "tools", "vision"), False),
        ("gpt-4.1-mini", 1047576, ("completion", "tools", "vision"), False),
        ("o3-mini", 200000, ("completion", "tools", "thinking"), True),
        ("o4-mini", 200000, ("completion", "tools", "vision", "thinking"), True),
        ("gpt-5", 400000, ("completion", "tools", "vision", "thinking"), True),
        ("gpt-5-chat-latest", 128000, ("completion", "tools", "vision"), False),
        ("gpt-3.5-turbo", 16385, ("completion", "tools"), False),
        ("text-embedding-3-small", 8191, ("embedding",), False),
        ("openai/gpt-4o", 128000, ("completion", "tools", "vision"), False),
        ("nomic-embed-text-v1.5", 8192, ("embedding",), False),
        ("Qwen/Qwen2.5-7B-Instruct", 8192, ("completion", "tools"), False),
    ],
)
def test_builtin_facts(
    model_id: str, context_length: int, capabilities: tuple[str, ...], reasoning: bool
) -> None:
    facts = CatalogConfig().facts_for(model_id)
    assert facts.context_length == context_length
    assert facts.capabilities == capabilities
    assert facts.reasoning is reasoning


@pytest.mark.parametrize(
    ("model_id", "listed"),
    [
        ("gpt-4o", True),
        ("text-embedding-3-small", True),
        ("whisper-1", False),
        ("tts-1-hd", False),
        ("dall-e-3", False),
        ("omni-moderation-latest", False),
        ("gpt-4o-realtime-preview", False),
        ("gpt-4o-mini-tts", False),
        ("gpt-image-1", False),
        ("GPT-4O-AUDIO-PREVIEW", False),
    ],
)
def test_default_listing_hides_unusable_models(model_id: str, listed: bool) -> None:
    assert CatalogConfig().is_listed(model_id) is listed


def test_catalog_overrides_and_defaults() -> None:
    config = parse_catalog(
        {
            "listing": {"include": ["gpt-*", "my-*"], "exclude": []},
            "aliases": {"llama3.2": "gpt-4o-mini"},
            "defaults": {"context_length": 4096, "capabilities": ["completion"]},
            "models": {"my-model*": {"context_length": 32768, "capabilities": ["completion", "vision"]}},
        }
    )
    assert config.is_listed("gpt-4o") and config.is_listed("my-model-1")
    assert not config.is_listed("o3")
    assert config.aliases == {"llama3.2": "gpt-4o-mini"}
    assert config.facts_for("my-model-7b").context_length == 32768
    assert config.facts_for("my-model-7b").capabilities == ("completion", "vision")
    assert config.facts_for("unknown-thing").context_length == 4096
    assert config.facts_for("unknown-thing").family == "unknown"
    assert config.facts_for("gpt-4o").context_length == 128000  # built-ins still apply


def test_exclude_default_kept_when_not_given() -> None:
    assert parse_catalog({"listing": {"include": ["*"]}}).exclude == DEFAULT_EXCLUDE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bogus": {}}, "unknown table"),
        ({"aliases": {"x": 3}}, "aliases.x"),
        ({"aliases": {"x": ""}}, "aliases.x"),
        ({"listing": {"include": "gpt-*"}}, "listing.include"),
        ({"models": {"m": {"context_length": -5}}}, "context_length"),
        ({"models": {"m": {"capabilities": ["flying"]}}}, "unknown"),
        ({"models": {"m": {"colour": "red"}}}, "unknown key"),
        ({"models": {"m": 3}}, "must be a table"),
        ({"defaults": {"reasoning": "yes"}}, "reasoning"),
        ({"defaults": {"family": 3}}, "family"),
        ({"models": {"m": {"embedding_length": 0}}}, "embedding_length"),
        ({"listing": []}, "must be a table"),
    ],
)
def test_invalid_catalog_is_rejected_with_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_catalog(data)


# --- issue 12: facts from the upstream's own list, precedence per fact, the shipped catalog -----------------


def test_upstream_facts_sit_between_the_catalog_and_the_builtin_families() -> None:
    said = UpstreamFacts(context_length=65536, capabilities=("completion",), capabilities_complete=True)
    builtin = CatalogConfig().facts_for("gpt-4o", said)
    assert (builtin.context_length, builtin.capabilities, builtin.family) == (
        65536,
        ("completion",),
        "gpt-4o",
    )
    assert (builtin.source, builtin.source_of("family"), builtin.source_of("thinking")) == (
        "upstream",
        "builtin",
        "upstream",
    )
    config = parse_catalog({"models": {"gpt-4o": {"context_length": 1000}}})
    mixed = config.facts_for("gpt-4o", said)
    assert (mixed.context_length, mixed.capabilities) == (1000, ("completion",))
    assert (mixed.source, mixed.source_of("context_length"), mixed.source_of("capabilities")) == (
        "catalog",
        "catalog",
        "upstream",
    )


def test_partial_capabilities_add_to_what_is_known_without_deciding_thinking() -> None:
    vlm = CatalogConfig().facts_for("qwen2-vl", UpstreamFacts(capabilities=("completion", "vision")))
    assert vlm.capabilities == ("completion", "tools", "vision")
    assert not vlm.known  # nobody said whether it thinks: think is passed on, not refused
    assert CatalogConfig().facts_for("qwen2-vl", None).source == "default"


def test_catalog_defaults_stay_under_the_upstreams_metadata() -> None:
    config = parse_catalog({"defaults": {"context_length": 4096, "capabilities": ["completion"]}})
    assert config.facts_for("my-model").source == "default"
    assert config.facts_for("my-model", UpstreamFacts(context_length=32768)).context_length == 32768


def test_shipped_catalog_is_the_operators_example_and_the_kubernetes_copy() -> None:
    repo = Path(__file__).resolve().parents[2]
    shipped = SHIPPED_CATALOG.read_bytes()
    assert (repo / "conf" / "models.toml").read_bytes() == shipped
    assert (repo / "deploy" / "kubernetes" / "models.toml").read_bytes() == shipped
    assert Settings().catalog.aliases["llama3.2"] == "gpt-4o-mini"
    assert Settings.from_mapping({}).catalog == Settings().catalog
    assert Settings.from_mapping({"FALCON_OLLAMA_CATALOG": "none"}).catalog.aliases == {}
    assert Settings.from_mapping({"FALCON_OLLAMA_CATALOG": "NONE"}).catalog_path is None
