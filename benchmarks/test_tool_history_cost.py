"""What a hostile tool history costs to translate: thousands of calls in one assistant message, each answered
by its own tool message in reverse order (or by tool name only). Unanswered calls were found by a search of a
list per result, quadratic: 9,990 of each held the worker's loop for 2.6 s (1.5 s by name). Now each is found
in O(1) (translate/tool_history.py ``PendingCalls``); the figures go to the benchmark report."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.catalog_config import CatalogConfig
from falcon_ollama.translate.chat_request import ollama_to_openai
from falcon_ollama.translate.responses_request import responses_to_chat

CALLS = 9_990  # with the user and assistant messages: the 10,000 messages FALCON_OLLAMA_MAX_MESSAGES allows


def _calls() -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "function": {"name": "f", "arguments": {}}} for i in range(CALLS)]


@pytest.mark.parametrize("answered_by", ["id", "name"])
def test_ollama_history_of_many_tool_results(benchmark: BenchmarkFixture, answered_by: str) -> None:
    import _harness as h

    results = [
        {"role": "tool", "tool_call_id": f"c{i}", "content": "x"}
        if answered_by == "id"
        else {"role": "tool", "tool_name": "f", "content": "x"}
        for i in reversed(range(CALLS))
    ]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": _calls()},
    ]
    entry = h.model_entry()

    def translate() -> list[dict[str, Any]]:
        body = {"model": h.MODEL, "messages": [*messages, *results]}
        out: list[dict[str, Any]] = ollama_to_openai("chat", body, entry, h.MODEL).body["messages"]
        return out

    out = benchmark(translate)
    assert len(out) == CALLS + 2 and all(m["role"] == "tool" for m in out[2:])
    if answered_by == "id":
        assert out[2]["tool_call_id"] == f"c{CALLS - 1}"
    else:
        assert [m["tool_call_id"] for m in out[2:4]] == ["c0", "c1"]  # the first unanswered call of the name


def test_responses_history_of_many_outputs(benchmark: BenchmarkFixture) -> None:
    calls = 4_999  # with the user message: the 10,000 input items FALCON_OLLAMA_MAX_MESSAGES allows
    items: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    items += [
        {"type": "function_call", "call_id": f"c{i}", "name": "f", "arguments": "{}"} for i in range(calls)
    ]
    items += [
        {"type": "function_call_output", "call_id": f"c{i}", "output": "x"} for i in reversed(range(calls))
    ]

    def translate() -> int:
        plan = responses_to_chat(
            {"model": "gpt-4o", "input": items}, CatalogConfig().facts_for("gpt-4o"), "gpt-4o"
        )
        return len(plan.body["messages"])

    assert benchmark(translate) == calls + 2  # the user, one assistant message with every call, the results
