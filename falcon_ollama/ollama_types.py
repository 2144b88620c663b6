"""The Ollama API contract as types: every request and response shape we read or write, in one place.

TypedDicts cost nothing at run time (they are plain dicts, serialized by orjson), and mypy checks every
place that builds one. Field names, optionality and comments follow ``../shared/ollama-api.md`` (Ollama's
``api/types.go``). ``NotRequired`` marks Go's ``omitempty`` fields: leave them out rather than send a zero.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# --- shared -------------------------------------------------------------------------------------------

DoneReason = Literal["stop", "length", "load", "unload", ""]


class ErrorResponse(TypedDict):
    error: str


class ModelDetails(TypedDict):
    parent_model: str
    format: str
    family: str
    families: list[str] | None
    parameter_size: str
    quantization_level: str
    context_length: NotRequired[int]
    embedding_length: NotRequired[int]


class Metrics(TypedDict, total=False):
    """Final-chunk counters; durations are integer nanoseconds."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


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


class ShowRequest(TypedDict, total=False):
    model: str
    name: str  # deprecated fallback for model
    verbose: bool
    system: str
    template: str
    options: dict[str, Any]


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


class PullRequest(TypedDict, total=False):
    model: str
    name: str
    insecure: bool
    stream: bool


class ProgressResponse(TypedDict):
    status: str
    digest: NotRequired[str]
    total: NotRequired[int]
    completed: NotRequired[int]


# --- chat and generate ---------------------------------------------------------------------------------


class ToolCallFunction(TypedDict):
    name: str
    arguments: dict[str, Any]  # an object, never a JSON string
    index: NotRequired[int]


class ToolCall(TypedDict):
    function: ToolCallFunction
    id: NotRequired[str]


class Message(TypedDict):
    role: str
    content: str
    thinking: NotRequired[str]
    images: NotRequired[list[str]]  # raw base64, no data: prefix
    tool_calls: NotRequired[list[ToolCall]]
    tool_name: NotRequired[str]
    tool_call_id: NotRequired[str]


class Tool(TypedDict):
    type: str
    function: dict[str, Any]


class ChatRequest(TypedDict, total=False):
    model: str
    messages: list[Message]
    stream: bool  # default true when absent
    format: str | dict[str, Any]  # "json" or a JSON schema
    keep_alive: float | str
    tools: list[Tool]
    options: dict[str, Any]
    think: bool | str
    truncate: bool
    shift: bool
    logprobs: bool
    top_logprobs: int


class GenerateRequest(TypedDict, total=False):
    model: str
    prompt: str
    suffix: str
    system: str
    template: str
    context: list[int]
    stream: bool
    raw: bool
    format: str | dict[str, Any]
    keep_alive: float | str
    images: list[str]
    options: dict[str, Any]
    think: bool | str
    logprobs: bool
    top_logprobs: int


class ChatResponse(Metrics):
    model: str
    created_at: str
    message: Message  # required by ollama-python on every chunk, including the final one
    done: bool
    done_reason: NotRequired[DoneReason]


class GenerateResponse(Metrics):
    model: str
    created_at: str
    response: str
    thinking: NotRequired[str]
    done: bool
    done_reason: NotRequired[DoneReason]
    context: NotRequired[list[int]]


# --- embeddings ----------------------------------------------------------------------------------------


class EmbedRequest(TypedDict, total=False):
    model: str
    input: str | list[str]
    truncate: bool
    dimensions: int
    keep_alive: float | str
    options: dict[str, Any]


class EmbedResponse(TypedDict):
    model: str
    embeddings: list[list[float]]
    total_duration: NotRequired[int]
    load_duration: NotRequired[int]
    prompt_eval_count: NotRequired[int]


class EmbeddingsRequest(TypedDict, total=False):
    model: str
    prompt: str
    keep_alive: float | str
    options: dict[str, Any]


class EmbeddingsResponse(TypedDict):
    embedding: list[float]
