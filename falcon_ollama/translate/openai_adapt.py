"""A /v1 request body adapted to what the target model accepts, so what works on Ollama's /v1 works here.

Ollama's /v1 reads the fields it knows and turns them into options its runner ignores when they do not apply;
OpenAI answers 400 instead (``temperature`` to gpt-5, ``max_tokens`` to o3, ``reasoning_effort: "none"`` to
o4-mini). This module drops or renames what the model refuses and maps effort values per family; every other
field is left as the client sent it, and models nothing describes (``facts.known`` false) are not touched,
since their backend's rules are unknown. The table is in docs/api.md; the sources in
docs/ollama-contract-notes.md.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from falcon_ollama.catalog_config import ModelFacts
from falcon_ollama.translate.effort import effort_for_request, samples_freely

# OpenAI's reasoning families: no sampling knobs, penalties or logprobs (gpt-5.1+: some, while not reasoning).
OPENAI_REASONING = ("o[1-9]*", "gpt-5*")
# Refused by those families whatever the effort (as /api/chat drops them); SAMPLING depends on the effort.
ALWAYS_REFUSED = ("presence_penalty", "frequency_penalty", "stop")
SAMPLING = ("temperature", "top_p", "logprobs", "top_logprobs")
# The /v1 routes (paths below /v1/) whose bodies are adapted (embeddings are not); of a forwarded
# /v1/responses body only ``reasoning.effort`` is, since Ollama takes any effort and OpenAI's families do not.
CHAT_PATH = "chat/completions"
RESPONSES_PATH = "responses"
ADAPTED_PATHS = (CHAT_PATH, "completions", RESPONSES_PATH)


@dataclass(frozen=True, slots=True)
class Change:
    """One field changed for the upstream: dropped (``to`` None), renamed, or given another value."""

    name: str
    to: str | None = None
    value: Any = None  # the new value when the name is kept and the value mapped

    def describe(self) -> str:
        if self.to is None:
            return f"'{self.name}' dropped"
        if self.to != self.name:
            return f"'{self.name}' sent as '{self.to}'"
        return f"'{self.name}' sent as {self.value!r}"


def adapt_openai_body(
    body: dict[str, Any], upstream_id: str, facts: ModelFacts, path: str = CHAT_PATH
) -> tuple[dict[str, Any], list[Change]]:
    """``body`` (a parsed /v1 request carrying ``upstream_id``) as the model takes it, and the changes.

    ``body`` is not modified; when nothing changes it is returned as is."""
    if not facts.known:
        return body, []
    out = dict(body)
    changes: list[Change] = []
    if path == RESPONSES_PATH:
        _adapt_responses_effort(out, upstream_id, facts, changes)
        return (out, changes) if changes else (body, [])
    chat = path == CHAT_PATH
    if chat:
        _effort_from_reasoning_object(out, changes)
    _adapt_effort(out, upstream_id, facts, changes)
    if facts.reasoning and chat and "max_tokens" in out:
        limit = out.pop("max_tokens")
        if "max_completion_tokens" in out:
            changes.append(Change("max_tokens"))
        else:
            out["max_completion_tokens"] = limit
            changes.append(Change("max_tokens", "max_completion_tokens"))
    if facts.reasoning and _openai_reasoning(upstream_id):
        effort = out.get("reasoning_effort")
        keep = samples_freely(upstream_id, effort if isinstance(effort, str) else None)
        for name in ALWAYS_REFUSED if keep else ALWAYS_REFUSED + SAMPLING:
            if name in out and not _accepted_default(name, out[name]):
                del out[name]
                changes.append(Change(name))
    return (out, changes) if changes else (body, [])


def _effort_from_reasoning_object(out: dict[str, Any], changes: list[Change]) -> None:
    """Ollama's ``reasoning: {"effort": …}`` (OpenAI's chat API does not know it) as ``reasoning_effort``."""
    reasoning = out.get("reasoning")
    if not isinstance(reasoning, dict) or set(reasoning) - {"effort"}:
        return
    del out["reasoning"]
    effort = reasoning.get("effort")
    if isinstance(effort, str) and "reasoning_effort" not in out:
        out["reasoning_effort"] = effort
        changes.append(Change("reasoning", "reasoning_effort"))
    else:
        changes.append(Change("reasoning"))


def _adapt_effort(out: dict[str, Any], upstream_id: str, facts: ModelFacts, changes: list[Change]) -> None:
    if "reasoning_effort" not in out:
        return
    wanted = out["reasoning_effort"]
    if not isinstance(wanted, str):
        return  # the upstream's own type error says it best
    mapped = effort_for_request(upstream_id, wanted) if facts.reasoning else None
    if mapped is None:
        del out["reasoning_effort"]
        changes.append(Change("reasoning_effort"))
    elif mapped != wanted:
        out["reasoning_effort"] = mapped
        changes.append(Change("reasoning_effort", "reasoning_effort", mapped))


def _adapt_responses_effort(
    out: dict[str, Any], upstream_id: str, facts: ModelFacts, changes: list[Change]
) -> None:
    """A Responses body's ``reasoning.effort`` fitted as ``reasoning_effort`` is (the rest of ``reasoning``,
    its ``summary``, is kept); the ``reasoning`` object is copied, never changed in place."""
    reasoning = out.get("reasoning")
    if not isinstance(reasoning, dict) or "effort" not in reasoning:
        return
    fitted = {"reasoning_effort": reasoning["effort"]}
    inner: list[Change] = []
    _adapt_effort(fitted, upstream_id, facts, inner)
    if not inner:
        return
    rest = {k: v for k, v in reasoning.items() if k != "effort"}
    if "reasoning_effort" in fitted:
        out["reasoning"] = {**rest, "effort": fitted["reasoning_effort"]}
        changes.append(Change("reasoning.effort", "reasoning.effort", fitted["reasoning_effort"]))
    else:
        out["reasoning"] = rest
        changes.append(Change("reasoning.effort"))


def _openai_reasoning(upstream_id: str) -> bool:
    base = upstream_id.lower().rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in OPENAI_REASONING)


def _accepted_default(name: str, value: Any) -> bool:
    """Defaults OpenAI's reasoning models accept (``temperature``/``top_p`` 1, ``logprobs`` false)."""
    if name in ("temperature", "top_p"):
        return value == 1 and not isinstance(value, bool)
    return name == "logprobs" and value is False
