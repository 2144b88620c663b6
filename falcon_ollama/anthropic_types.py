"""The Anthropic Messages API as types: what ``/v1/messages`` reads and writes.

Plain TypedDicts (zero run-time cost, checked by mypy), following Anthropic's published API reference. Only
the fields this project reads or writes are listed; requests are validated field by field in
``translate/anthropic_request.py``, so these describe the shapes after that check.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]
ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
]


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str


class ThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


ContentBlock = TextBlock | ThinkingBlock | ToolUseBlock


class Usage(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class Message(TypedDict):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


class ErrorObject(TypedDict):
    type: ErrorType
    message: str


class ErrorResponse(TypedDict):
    type: Literal["error"]
    error: ErrorObject


class CountTokensResponse(TypedDict):
    input_tokens: int
