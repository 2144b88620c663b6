"""The Ollama API contract as types: the response shapes we write, in one place.

TypedDicts cost nothing at run time (they are plain dicts, serialized by orjson), and mypy checks every
place that builds one. Field names, optionality and comments follow ``../shared/ollama-api.md`` (Ollama's
``api/types.go``). ``NotRequired`` marks Go's ``omitempty`` fields: leave them out rather than send a zero.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# --- shared -------------------------------------------------------------------------------------------


class ModelDetails(TypedDict):
    parent_model: str
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str
    context_length: NotRequired[int]
    embedding_length: NotRequired[int]


# --- discovery -----------------------------------------------------------------------------------------


class VersionResponse(TypedDict):
    version: str


class TagModel(TypedDict):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str  # 64 hex, no "sha256:" prefix
    details: ModelDetails
    capabilities: NotRequired[list[str]]
    remote_model: NotRequired[str]
    remote_host: NotRequired[str]


class TagsResponse(TypedDict):
    models: list[TagModel]


class ShowResponse(TypedDict):
    license: NotRequired[str]
    modelfile: NotRequired[str]
    parameters: NotRequired[str]
    template: NotRequired[str]
    system: NotRequired[str]
    details: ModelDetails
    model_info: dict[str, Any]  # never omitted: several integrations crash without it
    capabilities: NotRequired[list[str]]
    modified_at: str


class ProcessModel(TypedDict):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int
    context_length: int


class PsResponse(TypedDict):
    models: list[ProcessModel]


# --- model management ----------------------------------------------------------------------------------


class ProgressResponse(TypedDict):
    status: str
    digest: NotRequired[str]
    total: NotRequired[int]
    completed: NotRequired[int]


# --- embeddings ----------------------------------------------------------------------------------------


class EmbedResponse(TypedDict):
    model: str
    embeddings: list[list[float]]
    total_duration: NotRequired[int]
    load_duration: NotRequired[int]
    prompt_eval_count: NotRequired[int]


class EmbeddingsResponse(TypedDict):
    embedding: list[float]
