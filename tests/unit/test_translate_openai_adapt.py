"""translate/openai_adapt.py: /v1 bodies adapted per model family (table-driven), unknown models untouched."""

from __future__ import annotations

from typing import Any

import pytest

from falcon_ollama.catalog_config import CatalogConfig, ModelFacts
from falcon_ollama.translate.effort import effort_for_request, samples_freely
from falcon_ollama.translate.openai_adapt import Change, adapt_openai_body

MSG = [{"role": "user", "content": "hi"}]
CONFIG = CatalogConfig()


def drop(name: str) -> str:
    return f"'{name}' dropped"


def sent(name: str, as_: str) -> str:
    return f"'{name}' sent as '{as_}'"


def effort(value: str) -> str:
    return sent("reasoning_effort", value)


RENAMED = sent("max_tokens", "max_completion_tokens")


def facts(upstream_id: str) -> ModelFacts:
    return CONFIG.facts_for(upstream_id)


def adapt(
    upstream_id: str, path: str = "chat/completions", **fields: Any
) -> tuple[dict[str, Any], list[str]]:
    body = {"model": upstream_id, "messages": MSG, **fields}
    out, changes = adapt_openai_body(body, upstream_id, facts(upstream_id), path)
    assert body == {"model": upstream_id, "messages": MSG, **fields}  # the input is never modified
    return {k: v for k, v in out.items() if k not in ("model", "messages")}, [c.describe() for c in changes]


CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    # (upstream id, fields sent, fields the upstream gets, changes)
    ("gpt-5", {"temperature": 0.2, "top_p": 0.9}, {}, [drop("temperature"), drop("top_p")]),
    ("gpt-5", {"temperature": 1, "top_p": 1}, {"temperature": 1, "top_p": 1}, []),  # the accepted default
    ("gpt-5-mini", {"presence_penalty": 0.5, "frequency_penalty": 0}, {},
     [drop("presence_penalty"), drop("frequency_penalty")]),
    ("gpt-5", {"logprobs": True, "top_logprobs": 2}, {}, [drop("logprobs"), drop("top_logprobs")]),
    ("gpt-5", {"logprobs": False}, {"logprobs": False}, []),
    ("gpt-5", {"reasoning_effort": "none"}, {"reasoning_effort": "minimal"},
     [effort("minimal")]),
    ("gpt-5", {"reasoning_effort": "minimal", "seed": 3, "logit_bias": {"1": 2}, "n": 2},
     {"reasoning_effort": "minimal", "seed": 3, "logit_bias": {"1": 2}, "n": 2}, []),
    ("o3", {"stop": ["x"]}, {}, [drop("stop")]),
    ("gpt-5.1", {"stop": "x", "temperature": 0.5}, {"temperature": 0.5}, [drop("stop")]),
    ("gpt-5", {"reasoning_effort": "xhigh"}, {"reasoning_effort": "high"}, [effort("high")]),
    ("o3-mini", {"max_tokens": 50}, {"max_completion_tokens": 50}, [RENAMED]),
    ("o3-mini", {"max_tokens": 50, "max_completion_tokens": 70}, {"max_completion_tokens": 70},
     [drop("max_tokens")]),
    ("o4-mini", {"reasoning_effort": "none"}, {}, [drop("reasoning_effort")]),
    ("o4-mini", {"reasoning_effort": "minimal"}, {"reasoning_effort": "low"}, [effort("low")]),
    ("o4-mini", {"reasoning_effort": "max"}, {"reasoning_effort": "high"}, [effort("high")]),
    ("o4-mini", {"reasoning_effort": "ultra"}, {"reasoning_effort": "high"}, [effort("high")]),
    ("o4-mini", {"reasoning_effort": ""}, {}, [drop("reasoning_effort")]),
    ("o4-mini", {"reasoning_effort": "banana"}, {"reasoning_effort": "banana"}, []),  # upstream's 400 says it
    ("o4-mini", {"reasoning_effort": 3}, {"reasoning_effort": 3}, []),
    ("o4-mini", {"reasoning": {"effort": "high"}}, {"reasoning_effort": "high"},
     [sent("reasoning", "reasoning_effort")]),
    ("o4-mini", {"reasoning": {"effort": "none"}}, {},
     [sent("reasoning", "reasoning_effort"), drop("reasoning_effort")]),
    ("o4-mini", {"reasoning": {"effort": "low"}, "reasoning_effort": "high"}, {"reasoning_effort": "high"},
     [drop("reasoning")]),
    ("o4-mini", {"reasoning": {"summary": "auto"}}, {"reasoning": {"summary": "auto"}}, []),  # not Ollama's
    ("gpt-5.1", {"reasoning_effort": "minimal"}, {"reasoning_effort": "none"},
     [effort("none")]),
    ("gpt-5.1", {"temperature": 0.2, "logprobs": True}, {"temperature": 0.2, "logprobs": True}, []),  # none
    ("gpt-5.1", {"reasoning_effort": "none", "top_p": 0.5}, {"reasoning_effort": "none", "top_p": 0.5}, []),
    ("gpt-5.1", {"reasoning_effort": "low", "temperature": 0.2}, {"reasoning_effort": "low"},
     [drop("temperature")]),
    ("gpt-5.1", {"presence_penalty": 1}, {}, [drop("presence_penalty")]),
    ("gpt-5.2", {"reasoning_effort": "max"}, {"reasoning_effort": "xhigh"}, [effort("xhigh")]),
    ("gpt-5-pro", {"reasoning_effort": "low"}, {"reasoning_effort": "high"}, [effort("high")]),
    ("o1-mini", {"reasoning_effort": "low"}, {}, [drop("reasoning_effort")]),
    ("openai/o3", {"temperature": 0}, {}, [drop("temperature")]),  # OpenRouter-style ids by their base
    # Non-reasoning models keep every sampling field; effort is refused there, so it is dropped.
    ("gpt-4o", {"temperature": 0.2, "top_p": 0.5, "max_tokens": 5, "logprobs": True, "presence_penalty": 1},
     {"temperature": 0.2, "top_p": 0.5, "max_tokens": 5, "logprobs": True, "presence_penalty": 1}, []),
    ("gpt-4o-mini", {"reasoning_effort": "low"}, {}, [drop("reasoning_effort")]),
    ("gpt-5-chat-latest", {"temperature": 0.3, "max_tokens": 9}, {"temperature": 0.3, "max_tokens": 9}, []),
    # gpt-oss is a reasoning model served by other backends, which take sampling knobs.
    ("gpt-oss-20b", {"temperature": 0.3, "max_tokens": 9}, {"temperature": 0.3, "max_completion_tokens": 9},
     [RENAMED]),
    # Unknown fields pass through.
    ("gpt-5", {"x_vendor": 1, "top_k": 3}, {"x_vendor": 1, "top_k": 3}, []),
]  # fmt: skip


@pytest.mark.parametrize(("upstream_id", "sent", "expected", "changes"), CASES)
def test_adapt(upstream_id: str, sent: dict[str, Any], expected: dict[str, Any], changes: list[str]) -> None:
    assert adapt(upstream_id, **sent) == (expected, changes)


def test_unknown_models_are_not_adapted() -> None:
    body = {"model": "qwen3-local", "messages": MSG, "max_tokens": 5, "temperature": 0.1}
    unknown = CONFIG.facts_for("qwen3-local")
    assert not unknown.known
    out, changes = adapt_openai_body(body, "qwen3-local", unknown)
    assert out is body and changes == []
    # even when it is named like an OpenAI reasoning family, facts decide: nothing describes it
    out, changes = adapt_openai_body({**body, "model": "o3"}, "o3", unknown)
    assert changes == [] and out["max_tokens"] == 5


def test_a_catalog_reasoning_model_gets_the_rename_but_keeps_its_sampling() -> None:
    described = ModelFacts(32768, ("completion", "thinking"), "qwen3", reasoning=True, source="catalog")
    body = {"model": "qwen3-32b", "messages": MSG, "max_tokens": 5, "temperature": 0.6}
    body["reasoning_effort"] = "none"
    out, changes = adapt_openai_body(body, "qwen3-32b", described)
    assert out == {"model": "qwen3-32b", "messages": MSG, "max_completion_tokens": 5, "temperature": 0.6}
    assert [c.describe() for c in changes] == [
        drop("reasoning_effort"),
        RENAMED,
    ]


def test_legacy_completions_keep_max_tokens() -> None:
    """/v1/completions has no max_completion_tokens; the sampling rules still apply per family."""
    out, changes = adapt("o3-mini", path="completions", max_tokens=5, temperature=0.5)
    assert out == {"max_tokens": 5} and changes == [drop("temperature")]
    assert adapt("o3-mini", path="completions", reasoning={"effort": "low"}) == (
        {"reasoning": {"effort": "low"}},
        [],
    )


RESPONSES_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    # A forwarded /v1/responses body: only reasoning.effort is fitted (the summary and the rest kept).
    ("gpt-5", {"reasoning": {"effort": "max", "summary": "auto"}},
     {"reasoning": {"effort": "high", "summary": "auto"}}, ["'reasoning.effort' sent as 'high'"]),
    ("gpt-5", {"reasoning": {"effort": "none"}}, {"reasoning": {"effort": "minimal"}},
     ["'reasoning.effort' sent as 'minimal'"]),
    ("gpt-5.1", {"reasoning": {"effort": "minimal"}}, {"reasoning": {"effort": "none"}},
     ["'reasoning.effort' sent as 'none'"]),
    ("gpt-5-pro", {"reasoning": {"effort": "medium"}}, {"reasoning": {"effort": "high"}},
     ["'reasoning.effort' sent as 'high'"]),
    ("o4-mini", {"reasoning": {"effort": "none", "summary": "auto"}}, {"reasoning": {"summary": "auto"}},
     [drop("reasoning.effort")]),
    ("gpt-4o", {"reasoning": {"effort": "low"}}, {"reasoning": {}}, [drop("reasoning.effort")]),
    ("o4-mini", {"reasoning": {"effort": "low"}, "temperature": 0.2},
     {"reasoning": {"effort": "low"}, "temperature": 0.2}, []),  # only the effort is adapted here
    ("o4-mini", {"reasoning": {"effort": None}}, {"reasoning": {"effort": None}}, []),
    ("o4-mini", {"reasoning_effort": "none", "max_tokens": 5}, {"reasoning_effort": "none", "max_tokens": 5},
     []),  # chat completions fields mean nothing to the Responses API: left for it to judge
]  # fmt: skip


@pytest.mark.parametrize(("upstream_id", "sent", "expected", "changes"), RESPONSES_CASES)
def test_adapt_responses(
    upstream_id: str, sent: dict[str, Any], expected: dict[str, Any], changes: list[str]
) -> None:
    assert adapt(upstream_id, path="responses", **sent) == (expected, changes)


def test_nothing_changed_returns_the_same_body() -> None:
    body = {"model": "gpt-4o", "messages": MSG, "temperature": 0.5}
    out, changes = adapt_openai_body(body, "gpt-4o", facts("gpt-4o"))
    assert out is body and changes == []


@pytest.mark.parametrize(
    ("upstream_id", "wanted", "expected"),
    [
        ("gpt-5", "low", "low"),
        ("gpt-5", "none", "minimal"),
        ("gpt-5.1", "minimal", "none"),
        ("gpt-5.1", "xhigh", "high"),
        ("gpt-5.2", "xhigh", "xhigh"),
        ("o3", "none", None),
        ("o3", "minimal", "low"),
        ("gpt-5.1-codex", "none", None),
        ("gpt-5.1-codex-max", "ultra", "xhigh"),
        ("o1-preview", "high", None),
        ("gpt-5-chat-latest", "low", None),
        ("o3", "", None),
        ("o3", "extreme", "extreme"),
    ],
)
def test_effort_for_request(upstream_id: str, wanted: str, expected: str | None) -> None:
    assert effort_for_request(upstream_id, wanted) == expected


@pytest.mark.parametrize(
    ("upstream_id", "effort", "expected"),
    [
        ("gpt-5.1", None, True),
        ("gpt-5.1", "none", True),
        ("gpt-5.1", "low", False),
        ("gpt-5.2", None, True),
        ("gpt-5", None, False),
        ("gpt-5", "minimal", False),
        ("gpt-5.1-codex", None, False),
        ("o4-mini", None, False),
    ],
)
def test_samples_freely(upstream_id: str, effort: str | None, expected: bool) -> None:
    assert samples_freely(upstream_id, effort) is expected


def test_change_descriptions() -> None:
    assert Change("top_p").describe() == drop("top_p")
    assert Change("max_tokens", "max_completion_tokens").describe() == RENAMED
    assert Change("reasoning_effort", "reasoning_effort", "low").describe() == effort("low")
