"""The OpenAI chat completions API as types: what the translators send upstream and read back.

Plain TypedDicts (zero run-time cost, checked by mypy), following OpenAI's published API reference. Only the
fields this project reads or writes are listed; ``total=False`` marks fields OpenAI treats as optional.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

Role = Literal["system", "developer", "user", "assistant", "tool"]
_C = TypeVar("_C")  # a choice: whole (Choice) or streamed (ChunkChoice)
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ImageURL(TypedDict):
    url: str  # https URL or data: URI
    detail: NotRequired[Literal["auto", "low", "high"]]


class TextPart(TypedDict):
    type: Literal["text"]
    text: str


class ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = TextPart | ImagePart


class FunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(TypedDict, total=False):
    role: Role
    content: str | list[ContentPart] | None
    name: str
    tool_calls: list[ToolCall]
    tool_call_id: str
    reasoning_content: str  # not OpenAI's: vLLM, llama.cpp, DeepSeek
    reasoning: str  # not OpenAI's: OpenRouter, some vLLM versions


class FunctionDefinition(TypedDict, total=False):
    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool


class Tool(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


class StreamOptions(TypedDict, total=False):
    include_usage: bool


class ChatCompletionRequest(TypedDict, total=False):
    model: str
    messages: list[ChatMessage]
    stream: bool
    stream_options: StreamOptions
    max_tokens: int
    max_completion_tokens: int
    temperature: float
    top_p: float
    stop: str | list[str]
    seed: int
    frequency_penalty: float
    presence_penalty: float
    n: int
    tools: list[Tool]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    response_format: dict[str, Any]
    reasoning_effort: str
    logprobs: bool
    top_logprobs: int
    user: str


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, Any]
    completion_tokens_details: dict[str, Any]


class _ChoiceFields(TypedDict, total=False):
    """What a choice carries whole or streamed; the message (or its delta) is the difference."""

    index: int
    finish_reason: FinishReason | None
    logprobs: dict[str, Any] | None


class _AnswerFields(TypedDict, Generic[_C], total=False):
    """The envelope a completion and each of its stream chunks share; their choices differ."""

    id: str
    created: int
    model: str
    choices: list[_C]


class Choice(_ChoiceFields, total=False):
    message: ChatMessage


class ChatCompletion(_AnswerFields[Choice], total=False):
    object: Literal["chat.completion"]
    usage: Usage
    system_fingerprint: str


class ToolCallDelta(TypedDict, total=False):
    index: int
    id: str
    type: Literal["function"]
    function: dict[str, str]  # name and/or arguments fragments


class Delta(TypedDict, total=False):
    role: Role
    content: str | None
    tool_calls: list[ToolCallDelta]
    reasoning_content: str
    reasoning: str


class ChunkChoice(_ChoiceFields, total=False):
    delta: Delta


class ChatCompletionChunk(_AnswerFields[ChunkChoice], total=False):
    object: Literal["chat.completion.chunk"]
    usage: Usage | None


class ErrorObject(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(TypedDict):
    error: ErrorObject
