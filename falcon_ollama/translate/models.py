"""Model entries -> Ollama's ``/api/tags``, ``/api/show`` and ``/api/ps`` shapes. Pure functions, no I/O.

Clients read more than the names: GitHub Copilot, JetBrains AI Assistant and Open WebUI decide what a model
can do from ``capabilities`` and ``model_info["<architecture>.context_length"]``; older clients look for
``.Tools`` in the template to detect tool support. So every field is filled with something true or, where
Ollama's field has no meaning for a remote model (size, quantization), with a neutral value of the right type.
"""

from __future__ import annotations

import hashlib
from typing import Any

from falcon_ollama.catalog_config import ModelEntry
from falcon_ollama.ollama_types import ModelDetails, ProcessModel, ShowResponse, TagModel
from falcon_ollama.wire import rfc3339_nano

_LICENSE = (
    "This model is served by falcon-ollama from an OpenAI-compatible upstream.\n"
    "The upstream provider's terms of use apply."
)
_TEMPLATE_TOOLS = (
    "{{- if .System }}system: {{ .System }}\n{{ end }}"
    "{{- if .Tools }}tools: {{ .Tools }}\n{{ end }}"
    "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant: "
)
_TEMPLATE_PLAIN = (
    "{{- if .System }}system: {{ .System }}\n{{ end }}"
    "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant: "
)
_TEMPLATE_EMBED = "{{ .Prompt }}"


def digest(entry: ModelEntry) -> str:
    """A 64-hex digest of the upstream model and every fact we tell about it: the same in every worker and
    across restarts, and a new one when a fact changes (llm-ollama caches capabilities by digest)."""
    facts = entry.facts
    described = "\x1f".join(
        (
            entry.upstream_id,
            str(facts.context_length),
            ",".join(facts.capabilities),
            facts.family,
            str(facts.embedding_length or 0),
            "reasoning" if facts.reasoning else "",
            facts.parameter_size,
        )
    )
    return hashlib.sha256(f"falcon-ollama:{described}".encode()).hexdigest()


def architecture(entry: ModelEntry) -> str:
    """The ``general.architecture`` we report: the model family (``gpt-4o``, ``o3``, ``qwen`` …)."""
    return entry.facts.family or "unknown"


def details(entry: ModelEntry) -> ModelDetails:
    family = architecture(entry)
    return {
        "parent_model": "",
        "format": "",
        "family": family,
        "families": [family],
        "parameter_size": entry.facts.parameter_size,
        "quantization_level": "",
    }


def modified_at(entry: ModelEntry, fallback_epoch_s: float) -> str:
    """RFC 3339 time from the upstream's ``created`` (unix seconds), else the given fallback."""
    seconds = entry.created if entry.created is not None else fallback_epoch_s
    return rfc3339_nano(int(seconds * 1_000_000_000))


def tags_entry(entry: ModelEntry, fallback_epoch_s: float) -> TagModel:
    """One ``/api/tags`` row; its details carry the context and embedding lengths, as Ollama >= 0.30's do
    (``ollama launch`` reads them)."""
    tag_details = details(entry)
    tag_details["context_length"] = entry.facts.context_length
    if entry.facts.embedding_length:
        tag_details["embedding_length"] = entry.facts.embedding_length
    return {
        "name": entry.name,
        "model": entry.name,
        "modified_at": modified_at(entry, fallback_epoch_s),
        "size": 0,
        "digest": digest(entry),
        "details": tag_details,
        "capabilities": list(entry.facts.capabilities),
    }


def newest_first(entries: list[ModelEntry], fallback_epoch_s: float) -> list[ModelEntry]:
    """Ollama's order for ``/api/tags`` (and so ``/v1/models``): newest ``modified_at`` (whole seconds)
    first, ties kept in name order (Ollama's sortListModelResponses is a stable sort on the Unix second)."""
    by_name = sorted(entries, key=lambda e: e.name)
    return sorted(by_name, key=lambda e: -int(e.created if e.created is not None else fallback_epoch_s))


def tags_models(entries: list[ModelEntry], fallback_epoch_s: float) -> list[TagModel]:
    """The ``/api/tags`` rows, in Ollama's order."""
    return [tags_entry(e, fallback_epoch_s) for e in newest_first(entries, fallback_epoch_s)]


def model_info(entry: ModelEntry, requested_name: str, user_agent: str) -> dict[str, Any]:
    """GGUF-style key/values clients read; always has the architecture and its context length."""
    arch = architecture(entry)
    info: dict[str, Any] = {
        "general.architecture": arch,
        "general.basename": entry.upstream_id,
        f"{arch}.context_length": entry.facts.context_length,
    }
    if entry.facts.embedding_length:
        info[f"{arch}.embedding_length"] = entry.facts.embedding_length
    if user_agent.startswith("GitHubCopilotChat/"):
        # Ollama does the same: Copilot shows general.basename as the model's display name.
        info["general.basename"] = requested_name
    return info


def parameters_text(entry: ModelEntry) -> str:
    """Ollama's ``parameters``: one ``key<padding to 30>value`` line per parameter."""
    return f"{'num_ctx':<30} {entry.facts.context_length}"


def template_text(entry: ModelEntry) -> str:
    caps = entry.facts.capabilities
    if "embedding" in caps and "completion" not in caps:
        return _TEMPLATE_EMBED
    return _TEMPLATE_TOOLS if "tools" in caps else _TEMPLATE_PLAIN


def modelfile_text(entry: ModelEntry) -> str:
    template = template_text(entry)
    return (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {entry.name}\n\n"
        f"FROM {entry.upstream_id}\n"
        f'TEMPLATE """{template}"""\n'
        f"PARAMETER {parameters_text(entry)}\n"
        f'LICENSE """{_LICENSE}"""\n'
    )


def show_response(
    entry: ModelEntry, requested_name: str, fallback_epoch_s: float, user_agent: str = ""
) -> ShowResponse:
    return {
        "license": _LICENSE,
        "modelfile": modelfile_text(entry),
        "parameters": parameters_text(entry),
        "template": template_text(entry),
        "details": details(entry),
        "model_info": model_info(entry, requested_name, user_agent),
        "capabilities": list(entry.facts.capabilities),
        "modified_at": modified_at(entry, fallback_epoch_s),
    }


def ps_entry(entry: ModelEntry, expires_epoch_s: float) -> ProcessModel:
    return {
        "name": entry.name,
        "model": entry.name,
        "size": 0,
        "digest": digest(entry),
        "details": details(entry),
        "expires_at": rfc3339_nano(int(expires_epoch_s * 1_000_000_000)),
        "size_vram": 0,
        "context_length": entry.facts.context_length,
    }
