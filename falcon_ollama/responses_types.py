"""The OpenAI Responses API as types: what ``/v1/responses`` receives and what the translator answers.

Plain TypedDicts (checked by mypy, free at run time) after OpenAI's published API reference and the
``openai`` SDK's ``types/responses``. Only the fields this project reads or writes are listed.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Status = Literal["in_progress", "completed", "incomplete", "failed"]


class OutputText(TypedDict):
    type: Literal["output_text"]
    text: str
    annotations: list[Any]
    logprobs: NotRequired[list[Any]]


class SummaryText(TypedDict):
    type: Literal["summary_text"]
    text: str


class MessageItem(TypedDict):
    id: str
    type: Literal["message"]
    status: Status
    role: Literal["assistant"]
    content: list[OutputText]


class ReasoningItem(TypedDict):
    id: str
    type: Literal["reasoning"]
    summary: list[SummaryText]
    status: NotRequired[Status]


class FunctionCallItem(TypedDict):
    id: str
    type: Literal["function_call"]
    status: Status
    call_id: str
    name: str
    arguments: str
    namespace: NotRequired[str]


class CustomToolCallItem(TypedDict):
    id: str
    type: Literal["custom_tool_call"]
    status: Status
    call_id: str
    name: str
    input: str


OutputItem = MessageItem | ReasoningItem | FunctionCallItem | CustomToolCallItem


class InputTokensDetails(TypedDict):
    cached_tokens: int
    cache_write_tokens: int


class OutputTokensDetails(TypedDict):
    reasoning_tokens: int


class ResponseUsage(TypedDict):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(TypedDict):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseError(TypedDict):
    code: str
    message: str


class ResponseObject(TypedDict, total=False):
    id: str
    object: Literal["response"]
    created_at: int
    status: Status
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    model: str
    output: list[OutputItem]
    usage: ResponseUsage | None
    # Echoed from the request (see translate/responses_request.echo_fields).
    instructions: str | None
    max_output_tokens: int | None
    parallel_tool_calls: bool
    previous_response_id: None
    reasoning: dict[str, Any]
    store: bool
    temperature: float | None
    top_p: float | None
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    truncation: str
    metadata: dict[str, Any]
    user: str | None


# Chat completions tool names may only use [a-zA-Z0-9_-]: a namespace member "crm" / "find" is sent
# upstream as "crm__find" and restored on the way back (see ToolNames).
NAMESPACE_SEPARATOR = "__"
