"""OpenAI's Responses API (``POST /v1/responses``) as OpenAI publishes it, for the proxy's forward mode and
its "responses" upstream dialect: the whole answer, and the streamed event sequence (``event:`` + ``data:``
blocks, each with ``type`` and ``sequence_number``, no ``[DONE]``), reasoning items with summary parts on
reasoning models when ``reasoning.summary`` is set, function calls, ``text.format``, ``max_output_tokens``
(status ``incomplete``). Refuses what OpenAI refuses: unknown fields, wrong types, chat-style tools,
``reasoning`` on a non-reasoning model. References: https://platform.openai.com/docs/api-reference/responses
and .../responses-streaming. Checked against the openai SDK's types in tests/fake_openai.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from ._types import ContentEventBuilder, FakeConfig, FullAnswer, StreamAnswer
from ._validate import bad_json, error, invalid_type, invalid_value, is_int, missing, unrecognized

RESPONSES_PARAMS = frozenset(
    {
        "model", "input", "instructions", "background", "conversation", "include", "max_output_tokens",
        "max_tool_calls", "metadata", "parallel_tool_calls", "previous_response_id", "prompt",
        "prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier",
        "store", "stream", "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs",
        "top_p", "truncation", "user",
    }
)  # fmt: skip
_ROLES = ("user", "assistant", "system", "developer")
_SUMMARIES = ("auto", "concise", "detailed")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_INPUT_PARTS = ("input_text", "input_image", "input_file", "output_text", "refusal")


class Plan:
    __slots__ = ("calls", "limit", "model", "reasoning", "summary", "text", "tools")

    def __init__(self) -> None:
        self.model = ""
        self.reasoning = False
        self.summary: str | None = None
        self.tools: list[dict[str, Any]] = []
        self.calls = False
        self.text: Any = None  # text.format
        self.limit: int | None = None


def check(data: Any, cfg: FakeConfig, model: str, reasoning_model: bool) -> FullAnswer | Plan:
    """``data`` checked as OpenAI checks a create-response request; the plan of the answer."""
    if not isinstance(data, dict):
        return bad_json()
    if cfg.reject_unknown_params and (unknown := unrecognized(data, RESPONSES_PARAMS)) is not None:
        return unknown
    plan = Plan()
    plan.model = model
    if "input" not in data:
        return missing("input")
    problem = _check_input(data["input"])
    if problem is not None:
        return problem
    for key in ("stream", "store", "parallel_tool_calls", "background"):
        if data.get(key) is not None and not isinstance(data[key], bool):
            return invalid_type(key, "a boolean", data[key])
    for key in ("temperature", "top_p"):
        value = data.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return invalid_type(key, "a decimal", value)
            if reasoning_model:
                return error(
                    400, f"Unsupported parameter: '{key}' is not supported with this model.", param=key
                )
    limit = data.get("max_output_tokens")
    if limit is not None:
        if not is_int(limit):
            return invalid_type("max_output_tokens", "an integer", limit)
        if limit < 16:
            return error(
                400,
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got "
                f"{limit} instead.",
                param="max_output_tokens",
                code="integer_below_min_value",
            )
        plan.limit = limit
    problem = _check_reasoning(data.get("reasoning"), reasoning_model, plan)
    if problem is not None:
        return problem
    problem = _check_tools(data.get("tools"), data.get("tool_choice"), plan)
    if problem is not None:
        return problem
    problem = _check_text(data.get("text"), plan)
    if problem is not None:
        return problem
    plan.calls = bool(plan.tools) and data.get("tool_choice") != "none" and not _answered(data["input"])
    return plan


def _answered(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and items[-1].get("type") == "function_call_output"


def _check_input(raw: Any) -> FullAnswer | None:
    if isinstance(raw, str):
        return None
    if not isinstance(raw, list):
        return invalid_type("input", "a string or an array", raw)
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            return invalid_type(where, "an object", item)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                return invalid_value(f"{where}.role", role, "'user', 'assistant', 'system' and 'developer'")
            content = item.get("content")
            if content is None:
                return missing(f"{where}.content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    if not isinstance(part, dict) or part.get("type") not in _INPUT_PARTS:
                        shown = part.get("type") if isinstance(part, dict) else part
                        return invalid_value(f"{where}.content[{j}].type", shown, ", ".join(_INPUT_PARTS))
                    if part["type"] == "input_image" and not isinstance(part.get("image_url"), str):
                        return missing(f"{where}.content[{j}].image_url")
            elif not isinstance(content, str):
                return invalid_type(f"{where}.content", "a string or an array", content)
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    return missing(f"{where}.{key}")
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                return missing(f"{where}.call_id")
            if not isinstance(item.get("output"), str | list):
                return missing(f"{where}.output")
        elif kind != "reasoning":
            return invalid_value(f"{where}.type", kind, "'message', 'function_call', 'function_call_output'")
    return None


def _check_reasoning(raw: Any, reasoning_model: bool, plan: Plan) -> FullAnswer | None:
    plan.reasoning = reasoning_model
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return invalid_type("reasoning", "an object", raw)
    effort = raw.get("effort")
    if effort is not None:
        if not reasoning_model:
            return error(
                400,
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                "reasoning.effort",
            )
        if effort not in _EFFORTS:
            return invalid_value("reasoning.effort", effort, ", ".join(f"'{e}'" for e in _EFFORTS))
        plan.reasoning = effort != "none"
    summary = raw.get("summary")
    if summary is not None:
        if summary not in _SUMMARIES:
            return invalid_value("reasoning.summary", summary, "'auto', 'concise' and 'detailed'")
        plan.summary = summary
    return None


def _check_tools(raw: Any, choice: Any, plan: Plan) -> FullAnswer | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        return invalid_type("tools", "an array", raw)
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            return invalid_type(f"tools[{i}]", "an object", tool)
        if tool.get("type") != "function":
            continue
        if not isinstance(tool.get("name"), str):  # a chat-style {"function": {...}} tool is refused so
            return missing(f"tools[{i}].name")
        params = tool.get("parameters")
        if params is not None and not isinstance(params, dict):
            return invalid_type(f"tools[{i}].parameters", "an object", params)
        plan.tools.append(tool)
    if choice is not None and not (
        choice in ("auto", "none", "required")
        or (isinstance(choice, dict) and isinstance(choice.get("type"), str))
    ):
        return invalid_value("tool_choice", choice, "'auto', 'none', 'required' or an object")
    return None


def _check_text(raw: Any, plan: Plan) -> FullAnswer | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return invalid_type("text", "an object", raw)
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        shown = fmt.get("type") if isinstance(fmt, dict) else fmt
        return invalid_value("text.format.type", shown, "'text', 'json_object' and 'json_schema'")
    if fmt["type"] == "json_schema":
        if not isinstance(fmt.get("name"), str):
            return missing("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            return missing("text.format.schema")
        plan.text = ("json_schema", fmt["schema"])
    elif fmt["type"] == "json_object":
        plan.text = "json_object"
    return None


class Built:
    """The parts of one answer, made once and rendered whole or as events."""

    def __init__(self, plan: Plan, cfg: FakeConfig, new_id: Callable[[str, int], str]) -> None:
        self.id = new_id("resp_", 48)
        self.created = int(time.time())
        self.plan = plan
        self.reasoning_id = new_id("rs_", 48)
        self.message_id = new_id("msg_", 48)
        self.thoughts = [f"r{i} " for i in range(max(0, cfg.reasoning_tokens))] if plan.reasoning else []
        # two summary parts, as OpenAI's summaries often come ("**Title**\n\nText")
        self.summary = [["**Plan** "], self.thoughts] if plan.summary and self.thoughts else []
        self.pieces: list[str] = []
        self.calls: list[tuple[str, str, str, list[str]]] = []  # (item id, call id, name, fragments)
        self.status = "completed"

    def usage(self, input_tokens: int) -> dict[str, Any]:
        output = len(self.thoughts) + len(self.pieces) + sum(len(c[3]) for c in self.calls)
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": len(self.thoughts)},
            "total_tokens": input_tokens + output,
        }

    def reasoning_item(self, done: bool) -> dict[str, Any]:
        summary = [{"type": "summary_text", "text": "".join(p)} for p in self.summary] if done else []
        return {"id": self.reasoning_id, "type": "reasoning", "summary": summary}

    def message_item(self, done: bool) -> dict[str, Any]:
        content = [{"type": "output_text", "text": "".join(self.pieces), "annotations": [], "logprobs": []}]
        return {
            "id": self.message_id,
            "type": "message",
            "status": "completed" if done else "in_progress",
            "role": "assistant",
            "content": content if done else [],
        }

    def call_item(self, call: tuple[str, str, str, list[str]], done: bool) -> dict[str, Any]:
        item_id, call_id, name, frags = call
        return {
            "id": item_id,
            "type": "function_call",
            "status": "completed" if done else "in_progress",
            "arguments": "".join(frags) if done else "",
            "call_id": call_id,
            "name": name,
        }

    def output(self) -> list[dict[str, Any]]:
        out = [self.reasoning_item(True)] if self.thoughts else []
        if self.pieces or not self.calls:
            out.append(self.message_item(True))
        out.extend(self.call_item(c, True) for c in self.calls)
        return out

    def response(self, status: str, data: dict[str, Any], output: list[dict[str, Any]], usage: Any) -> Any:
        reasoning = data.get("reasoning") or {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": data.get("instructions"),
            "max_output_tokens": data.get("max_output_tokens"),
            "model": self.plan.model,
            "output": output,
            "parallel_tool_calls": data.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": data.get("store", True),
            "temperature": data.get("temperature", 1.0),
            "text": data.get("text") or {"format": {"type": "text"}},
            "tool_choice": data.get("tool_choice", "auto"),
            "tools": self.plan.tools,
            "top_p": data.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "metadata": data.get("metadata") or {},
        }


def full(built: Built, data: dict[str, Any], input_tokens: int) -> FullAnswer:
    body = built.response(built.status, data, built.output(), built.usage(input_tokens))
    return FullAnswer(200, orjson.dumps(body))


def stream(built: Built, data: dict[str, Any], input_tokens: int) -> StreamAnswer:
    """The event sequence OpenAI streams, in its order."""
    events: list[bytes] = []
    names: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        names.append(kind.encode())
        events.append(orjson.dumps({"type": kind, "sequence_number": len(events), **fields}))

    emit("response.created", response=built.response("in_progress", data, [], None))
    emit("response.in_progress", response=built.response("in_progress", data, [], None))
    index = 0
    if built.thoughts:
        rid = built.reasoning_id
        emit("response.output_item.added", output_index=index, item=built.reasoning_item(False))
        for s, part in enumerate(built.summary):
            text = "".join(part)
            emit(
                "response.reasoning_summary_part.added",
                item_id=rid,
                output_index=index,
                summary_index=s,
                part={"type": "summary_text", "text": ""},
            )
            for delta in part:
                emit(
                    "response.reasoning_summary_text.delta",
                    item_id=rid,
                    output_index=index,
                    summary_index=s,
                    delta=delta,
                )
            emit(
                "response.reasoning_summary_text.done",
                item_id=rid,
                output_index=index,
                summary_index=s,
                text=text,
            )
            emit(
                "response.reasoning_summary_part.done",
                item_id=rid,
                output_index=index,
                summary_index=s,
                part={"type": "summary_text", "text": text},
            )
        emit("response.output_item.done", output_index=index, item=built.reasoning_item(True))
        index += 1
    content_start = content_end = len(events)
    if built.pieces or not built.calls:
        mid = built.message_id
        emit("response.output_item.added", output_index=index, item=built.message_item(False))
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        emit("response.content_part.added", item_id=mid, output_index=index, content_index=0, part=empty)
        content_start = len(events)
        for piece in built.pieces:
            emit(
                "response.output_text.delta",
                item_id=mid,
                output_index=index,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        content_end = len(events)
        text = "".join(built.pieces)
        emit(
            "response.output_text.done",
            item_id=mid,
            output_index=index,
            content_index=0,
            text=text,
            logprobs=[],
        )
        emit(
            "response.content_part.done",
            item_id=mid,
            output_index=index,
            content_index=0,
            part={**empty, "text": text},
        )
        emit("response.output_item.done", output_index=index, item=built.message_item(True))
        index += 1
    for call in built.calls:
        emit("response.output_item.added", output_index=index, item=built.call_item(call, False))
        for frag in call[3]:
            emit("response.function_call_arguments.delta", item_id=call[0], output_index=index, delta=frag)
        emit(
            "response.function_call_arguments.done",
            item_id=call[0],
            output_index=index,
            name=call[2],
            arguments="".join(call[3]),
        )
        emit("response.output_item.done", output_index=index, item=built.call_item(call, True))
        index += 1
    final = "response.incomplete" if built.status == "incomplete" else "response.completed"
    emit(final, response=built.response(built.status, data, built.output(), built.usage(input_tokens)))
    builder = ContentEventBuilder(b"", b"", None)
    return StreamAnswer(events, content_start, content_end, builder, names)
