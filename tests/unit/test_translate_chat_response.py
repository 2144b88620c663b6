"""OpenAI answers -> Ollama responses: one table row per rule (translate/chat_response.py).

A fixed clock makes every duration exact: the request starts at ``T0``, the first token arrives at ``T_FIRST``
and the stream ends at ``T_END``."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.translate.chat_response import (
    Kind,
    ReplyShape,
    StreamIncomplete,
    StreamTranslator,
    ToolCallAssembler,
    completion_to_ollama,
    done_reason,
    parse_tool_arguments,
    reply_chunk,
    upstream_error_message,
)
from falcon_ollama.translate.context import decode_context

T0 = 1_000_000_000
T_FIRST = T0 + 250_000_000
T_END = T0 + 1_000_000_000
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
MODEL = "llama3.2"


class Clock:
    """A clock the test sets; the translator reads it."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def lines(out: bytes) -> list[dict[str, Any]]:
    """NDJSON bytes -> objects, asserting the framing: each line valid JSON ending in exactly one newline,
    no blank line, a Go-style UTC ``created_at``. ``created_at`` is removed so the rest compares exactly."""
    if not out:
        return []
    assert out.endswith(b"\n") and not out.endswith(b"\n\n")
    result = []
    for raw in out[:-1].split(b"\n"):
        assert raw.strip(), "blank NDJSON line"
        obj = orjson.loads(raw)
        assert isinstance(obj, dict)
        assert CREATED_AT.fullmatch(obj.pop("created_at"))
        result.append(obj)
    return result


def translator(
    kind: Kind = "chat",
    *,
    emit_thinking: bool = True,
    logprobs: bool = False,
    prompt_chars: int = 40,
    history: list[dict[str, str]] | None = None,
    clock: Clock | None = None,
) -> StreamTranslator:
    shape = ReplyShape(MODEL, kind, emit_thinking, logprobs, prompt_chars, history, started_ns=T0)
    return StreamTranslator(shape, clock_ns=clock or Clock())


def event(obj: Any) -> bytes:
    return orjson.dumps(obj)


def delta(finish_reason: str | None = None, logprobs: Any = None, **fields: Any) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": fields, "finish_reason": finish_reason}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return event({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]})


def usage(prompt_tokens: Any, completion_tokens: Any) -> bytes:
    return event(
        {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}
    )


def chat_line(content: str = "", **message: Any) -> dict[str, Any]:
    return {"model": MODEL, "message": {"role": "assistant", "content": content, **message}, "done": False}


def generate_line(response: str = "", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "response": response, **fields, "done": False}


# --- one upstream event -> zero or one line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "emit_thinking", "payload", "expected"),
    [
        pytest.param("chat", True, delta(role="assistant", content=""), [], id="role-only-first-delta"),
        pytest.param("chat", True, delta(role="assistant"), [], id="role-without-content"),
        pytest.param("chat", True, delta(content="Hel"), [chat_line("Hel")], id="chat-content"),
        pytest.param("generate", True, delta(content="Hel"), [generate_line("Hel")], id="generate-content"),
        pytest.param(
            "chat", True, delta(content="a\nb\n"), [chat_line("a\nb\n")], id="newlines-stay-in-one-line"
        ),
        pytest.param("chat", True, delta(content=""), [], id="empty-content"),
        pytest.param("chat", True, delta(content=None), [], id="null-content"),
        pytest.param("chat", True, delta(content=5), [], id="non-string-content"),
        pytest.param("chat", True, delta(), [], id="empty-delta"),
        pytest.param(
            "chat",
            True,
            delta(reasoning_content="hmm"),
            [chat_line("", thinking="hmm")],
            id="reasoning_content",
        ),
        pytest.param("chat", True, delta(reasoning="hmm"), [chat_line("", thinking="hmm")], id="reasoning"),
        pytest.param(
            "generate",
            True,
            delta(reasoning_content="hmm"),
            [generate_line("", thinking="hmm")],
            id="generate-thinking",
        ),
        pytest.param("chat", False, delta(reasoning_content="hmm"), [], id="thinking-not-emitted"),
        pytest.param("generate", False, delta(reasoning="hmm"), [], id="generate-thinking-not-emitted"),
        pytest.param(
            "chat",
            False,
            delta(content="x", reasoning_content="hmm"),
            [chat_line("x")],
            id="content-kept-thinking-not-emitted",
        ),
        pytest.param(
            "chat",
            True,
            delta(content="x", reasoning_content="hmm"),
            [chat_line("x", thinking="hmm")],
            id="content-and-thinking-one-line",
        ),
        pytest.param(
            "chat",
            True,
            delta(reasoning_content="", reasoning="r"),
            [chat_line("", thinking="r")],
            id="reasoning-fallback",
        ),
        pytest.param(
            "completions",
            False,
            event({"choices": [{"index": 0, "text": "def", "finish_reason": None}]}),
            [generate_line("def")],
            id="completions-text",
        ),
        pytest.param(
            "completions",
            False,
            event({"choices": [{"index": 0, "text": ""}]}),
            [],
            id="completions-empty-text",
        ),
        pytest.param("chat", True, usage(3, 4), [], id="usage-chunk"),
        pytest.param("chat", True, event({"choices": []}), [], id="no-choices"),
        pytest.param("chat", True, event({"choices": ["x"]}), [], id="choice-not-object"),
        pytest.param("chat", True, event({"choices": [{"index": 0}]}), [], id="choice-without-delta"),
        pytest.param("chat", True, event([1, 2]), [], id="event-not-object"),
        pytest.param("chat", True, event({"error": None, "choices": []}), [], id="null-error-ignored"),
        pytest.param(
            "chat",
            True,
            delta(tool_calls=[{"index": 0, "id": "c", "type": "function", "function": {"name": "f"}}]),
            [],
            id="tool-call-fragment-held-until-finish",
        ),
    ],
)
def test_feed(kind: Kind, emit_thinking: bool, payload: bytes, expected: list[dict[str, Any]]) -> None:
    assert lines(translator(kind, emit_thinking=emit_thinking).feed(payload)) == expected


@pytest.mark.parametrize("kind", ["chat", "generate", "completions"])
@pytest.mark.parametrize("model", [MODEL, 'we"ird\\model/é', "qwen3:8b"])
@pytest.mark.parametrize("content", [" The", 'quote " and \\ back\nslash', "é 😀 \u2028 \x00", "</script>"])
def test_plain_text_lines_are_the_bytes_of_the_reply_chunk(kind: Kind, model: str, content: str) -> None:
    """A plain text line is written without building dicts (the hot path, repeated on the template fast
    path): byte for byte what ``reply_chunk`` serialized by orjson writes, field order and escaping."""
    t = StreamTranslator(ReplyShape(model, kind))
    field = {"text": content} if kind == "completions" else {"delta": {"content": content}}
    payload = event({"id": "x", "choices": [{"index": 0, **field, "finish_reason": None}]})
    for _ in range(5):  # the first events go the full parse, the later ones the learned template's path
        out = t.feed(payload)
        created_at = orjson.loads(out)["created_at"]
        assert CREATED_AT.fullmatch(created_at)
        expected = {**reply_chunk(model, kind, content), "created_at": created_at, "done": False}
        assert out == orjson.dumps(expected, option=orjson.OPT_APPEND_NEWLINE)


# --- whole streams ------------------------------------------------------------------------------------------


def run(t: StreamTranslator, clock: Clock, payloads: list[bytes]) -> list[dict[str, Any]]:
    """Feed a stream: every payload arrives at T_FIRST, finish() runs at T_END."""
    out = b""
    clock.now = T_FIRST
    for payload in payloads:
        out += t.feed(payload)
    clock.now = T_END
    out += t.finish()
    return lines(out)


def final_chat(reason: str, prompt_count: int, eval_count: int, first: int = T_FIRST) -> dict[str, Any]:
    return {
        "model": MODEL,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": reason,
        "total_duration": T_END - T0,
        "prompt_eval_count": prompt_count,
        "prompt_eval_duration": first - T0,
        "eval_count": eval_count,
        "eval_duration": T_END - first,
    }


HELLO = [delta(role="assistant", content=""), delta(content="Hel"), delta(content="lo")]


@pytest.mark.parametrize(
    ("tail", "reason", "prompt_count", "eval_count"),
    [
        pytest.param([delta("stop"), usage(12, 3), b"[DONE]"], "stop", 12, 3, id="stop-with-usage"),
        pytest.param([delta("length"), usage(12, 3)], "length", 12, 3, id="length"),
        pytest.param([delta("tool_calls"), usage(12, 3)], "stop", 12, 3, id="tool_calls-is-stop"),
        pytest.param([delta("function_call")], "stop", 10, 2, id="function_call-is-stop"),
        pytest.param([delta("content_filter")], "stop", 10, 2, id="content_filter-is-stop"),
        pytest.param([delta("something_new")], "stop", 10, 2, id="unknown-reason-is-stop"),
        pytest.param([b"[DONE]"], "stop", 10, 2, id="done-without-finish-reason"),
        pytest.param(
            [event({"choices": [{"index": 0, "delta": {}, "finish_reason": 7}]})],
            "stop",
            10,
            2,
            id="finish-not-string",
        ),
        # no usage: eval_count = number of deltas relayed, prompt_eval_count = ceil(40 prompt chars / 4)
        pytest.param([delta("stop"), b"[DONE]"], "stop", 10, 2, id="fallback-counts-without-usage"),
        pytest.param([delta("stop"), usage(None, "x")], "stop", 10, 2, id="fallback-counts-non-int-usage"),
        pytest.param([delta("stop"), usage(0, 0)], "stop", 0, 0, id="zero-usage-kept"),
        pytest.param(
            [
                event(
                    {
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 8},
                    }
                )
            ],
            "stop",
            8,
            2,
            id="usage-on-the-finish-chunk-partial",
        ),
    ],
)
def test_chat_stream_final_line(tail: list[bytes], reason: str, prompt_count: int, eval_count: int) -> None:
    clock = Clock()
    t = translator(clock=clock)
    assert run(t, clock, [*HELLO, *tail]) == [
        chat_line("Hel"),
        chat_line("lo"),
        final_chat(reason, prompt_count, eval_count),
    ]


@pytest.mark.parametrize(("prompt_chars", "expected"), [(0, 1), (1, 1), (4, 1), (5, 2), (40, 10), (41, 11)])
def test_prompt_estimate_is_chars_over_four_at_least_one(prompt_chars: int, expected: int) -> None:
    clock = Clock()
    t = translator(prompt_chars=prompt_chars, clock=clock)
    assert run(t, clock, [delta("stop")])[-1]["prompt_eval_count"] == expected


def test_durations_are_exact() -> None:
    clock = Clock()
    t = translator(clock=clock)
    assert t.feed(delta(role="assistant")) == b""
    clock.now = T0 + 100  # nothing emitted yet: the first token has not arrived
    assert t.feed(delta(content="")) == b""
    clock.now = T_FIRST
    t.feed(delta(content="a"))
    clock.now = T_FIRST + 5
    t.feed(delta(content="b"))
    t.feed(delta("stop"))
    clock.now = T_END
    final = lines(t.finish())[-1]
    assert final["total_duration"] == 1_000_000_000
    assert final["prompt_eval_duration"] == 250_000_000
    assert final["eval_duration"] == 750_000_000


def test_answer_without_tokens_has_zero_eval_duration() -> None:
    clock = Clock()
    t = translator(clock=clock)
    assert run(t, clock, [delta(role="assistant"), delta("stop")]) == [final_chat("stop", 10, 0, first=T_END)]


def test_thinking_stream() -> None:
    clock = Clock()
    t = translator(clock=clock)
    payloads = [
        delta(role="assistant", content=None, reasoning_content=""),
        delta(reasoning_content="Let me"),
        delta(reasoning_content=" think."),
        delta(content="42"),
        delta("stop"),
        usage(5, 9),
    ]
    assert run(t, clock, payloads) == [
        chat_line("", thinking="Let me"),
        chat_line("", thinking=" think."),
        chat_line("42"),
        final_chat("stop", 5, 9),
    ]


# --- tool calls ---------------------------------------------------------------------------------------------


def tc(**fields: Any) -> dict[str, Any]:
    return fields


def fn(**fields: Any) -> dict[str, Any]:
    return fields


@pytest.mark.parametrize(
    ("chunks", "calls"),
    [
        pytest.param(
            [
                [tc(index=0, id="call_1", type="function", function=fn(name="get_weather", arguments=""))],
                [tc(index=0, function=fn(arguments='{"ci'))],
                [tc(index=0, function=fn(arguments='ty":"Paris"}'))],
            ],
            [
                {
                    "id": "call_1",
                    "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
            id="openai-fragments",
        ),
        pytest.param(
            [
                [tc(index=0, id="c1", type="function", function=fn(name="get_weather", arguments='{"city"'))],
                [
                    tc(
                        index=0,
                        id="c1",
                        type="function",
                        function=fn(name="get_weather", arguments=':"Oslo"}'),
                    )
                ],
            ],
            [{"id": "c1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}}],
            id="llama-cpp-repeats-id-type-name",
        ),
        pytest.param(
            [
                [tc(index=0, id="a", function=fn(name="f", arguments='{"x":'))],
                [tc(index=1, id="b", function=fn(name="g", arguments='{"y":'))],
                [tc(index=0, function=fn(arguments="1}")), tc(index=1, function=fn(arguments="2}"))],
            ],
            [
                {"id": "a", "function": {"index": 0, "name": "f", "arguments": {"x": 1}}},
                {"id": "b", "function": {"index": 1, "name": "g", "arguments": {"y": 2}}},
            ],
            id="several-calls-by-index-interleaved",
        ),
        pytest.param(
            [
                [tc(index=3, id="z", function=fn(name="late", arguments="{}"))],
                [tc(index=1, id="y", function=fn(name="early"))],
            ],
            [
                {"id": "y", "function": {"index": 0, "name": "early", "arguments": {}}},
                {"id": "z", "function": {"index": 1, "name": "late", "arguments": {}}},
            ],
            id="sparse-indexes-renumbered-in-order",
        ),
        pytest.param(
            [[tc(index=0, id="c", function=fn(name="f", arguments='{"x": 1'))]],
            [{"id": "c", "function": {"index": 0, "name": "f", "arguments": {"raw": '{"x": 1'}}}],
            id="arguments-not-json-kept-raw",
        ),
        pytest.param(
            [[tc(index=0, id="c", function=fn(name="f", arguments="[1, 2]"))]],
            [{"id": "c", "function": {"index": 0, "name": "f", "arguments": {"value": [1, 2]}}}],
            id="arguments-json-not-object-wrapped",
        ),
        pytest.param(
            [[tc(index=0, id="c", function=fn(name="f", arguments="  "))]],
            [{"id": "c", "function": {"index": 0, "name": "f", "arguments": {}}}],
            id="arguments-blank-empty-object",
        ),
        pytest.param(
            [[tc(index=0, function=fn(name="f", arguments={"x": 1}))]],
            [{"function": {"index": 0, "name": "f", "arguments": {"x": 1}}}],
            id="arguments-object-and-no-id",
        ),
        pytest.param(
            [
                [tc(id="g1", function=fn(name="a", arguments='{"n":1}'))],
                [tc(id="g2", function=fn(name="b", arguments='{"n":2}'))],
            ],
            [
                {"id": "g1", "function": {"index": 0, "name": "a", "arguments": {"n": 1}}},
                {"id": "g2", "function": {"index": 1, "name": "b", "arguments": {"n": 2}}},
            ],
            id="whole-calls-without-index",
        ),
        pytest.param(
            [[tc(id="g1", function=fn(name="a", arguments='{"n":1}')), tc(id="g2", function=fn(name="b"))]],
            [
                {"id": "g1", "function": {"index": 0, "name": "a", "arguments": {"n": 1}}},
                {"id": "g2", "function": {"index": 1, "name": "b", "arguments": {}}},
            ],
            id="two-whole-calls-in-one-delta-without-index",
        ),
        pytest.param(
            [
                [tc(id="g1", function=fn(name="a", arguments='{"n":'))],
                [tc(id="g1", function=fn(arguments="1}"))],
            ],
            [{"id": "g1", "function": {"index": 0, "name": "a", "arguments": {"n": 1}}}],
            id="no-index-same-id-continues",
        ),
        pytest.param(
            [
                [tc(id="g1", function=fn(name="a", arguments="{}"))],
                [tc(id="g2", function=fn(name="b", arguments='{"n":'))],
                [tc(function=fn(arguments="2}"))],
            ],
            [
                {"id": "g1", "function": {"index": 0, "name": "a", "arguments": {}}},
                {"id": "g2", "function": {"index": 1, "name": "b", "arguments": {"n": 2}}},
            ],
            id="no-index-no-id-continues-the-latest-call",
        ),
        pytest.param(
            [[tc(index=0, id="c", function=fn(name="f", arguments="{}")), "junk", tc(index=0, function="x")]],
            [{"id": "c", "function": {"index": 0, "name": "f", "arguments": {}}}],
            id="malformed-fragments-ignored",
        ),
    ],
)
def test_tool_calls_assembled(chunks: list[list[Any]], calls: list[dict[str, Any]]) -> None:
    clock = Clock()
    t = translator(clock=clock)
    payloads = [delta(role="assistant", content=None)]
    payloads += [delta(tool_calls=chunk) for chunk in chunks]
    payloads += [delta("tool_calls"), usage(20, 7)]
    assert run(t, clock, payloads) == [
        chat_line("", tool_calls=calls),
        final_chat("stop", 20, 7),  # the first fragment counts as the first token
    ]


def test_tool_calls_after_content() -> None:
    clock = Clock()
    t = translator(clock=clock)
    payloads = [
        delta(content="Checking."),
        delta(tool_calls=[tc(index=0, id="c", type="function", function=fn(name="f", arguments="{}"))]),
        delta("tool_calls"),
    ]
    assert run(t, clock, payloads) == [
        chat_line("Checking."),
        chat_line("", tool_calls=[{"id": "c", "function": {"index": 0, "name": "f", "arguments": {}}}]),
        final_chat(
            "stop", 10, 3
        ),  # no usage: the whole answer, "Checking." + "f" + "{}", is 12 chars: 3 tokens
    ]


def test_tool_call_assembler_direct() -> None:
    assembler = ToolCallAssembler()
    assert not assembler
    assert assembler.calls() == []
    assembler.add([{"index": 0, "id": "x", "function": {"name": "f", "arguments": '{"a"'}}])
    assembler.add([{"index": 0, "function": {"name": "ignored", "arguments": ":true}"}}])
    assert assembler
    assert assembler.calls() == [{"id": "x", "function": {"index": 0, "name": "f", "arguments": {"a": True}}}]


@pytest.mark.parametrize(
    ("text", "arguments"),
    [
        ("", {}),
        ("   \n", {}),
        ('{"a": 1}', {"a": 1}),
        ("{}", {}),
        ('{"nested": {"b": [1, "x", null]}}', {"nested": {"b": [1, "x", None]}}),
        ("[1]", {"value": [1]}),
        ('"text"', {"value": "text"}),
        ("3", {"value": 3}),
        ("null", {"value": None}),
        ('{"a": 1', {"raw": '{"a": 1'}),
        ("not json", {"raw": "not json"}),
    ],
)
def test_parse_tool_arguments(text: str, arguments: dict[str, Any]) -> None:
    assert parse_tool_arguments(text) == arguments


@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "stop"),
        ("function_call", "stop"),
        ("content_filter", "stop"),
        ("other", "stop"),
        (None, "stop"),
        (1, "stop"),
    ],
)
def test_done_reason(finish_reason: Any, reason: str) -> None:
    assert done_reason(finish_reason) == reason


# --- generate and completions streams -----------------------------------------------------------------------

HISTORY = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]


def test_generate_stream_final_line_carries_context() -> None:
    clock = Clock()
    t = translator("generate", history=HISTORY, clock=clock)
    out = run(
        t,
        clock,
        [
            delta(role="assistant"),
            delta(reasoning_content="adding"),
            delta(content="4"),
            delta(content="."),
            delta("stop"),
        ],
    )
    context = out[-1].pop("context")
    assert out == [
        generate_line("", thinking="adding"),
        generate_line("4"),
        generate_line("."),
        {
            "model": MODEL,
            "response": "",
            "done": True,
            "done_reason": "stop",
            "total_duration": T_END - T0,
            "prompt_eval_count": 10,
            "prompt_eval_duration": T_FIRST - T0,
            "eval_count": 3,
            "eval_duration": T_END - T_FIRST,
        },
    ]
    # the thinking is not part of the conversation; the answer is
    assert decode_context(context) == [*HISTORY, {"role": "assistant", "content": "4."}]


def test_generate_stream_without_history_has_no_context() -> None:
    clock = Clock()
    out = run(translator("generate", clock=clock), clock, [delta(content="x"), delta("stop")])
    assert "context" not in out[-1]
    assert out[-1]["response"] == ""


def test_generate_stream_tool_calls_are_not_sent() -> None:
    clock = Clock()
    t = translator("generate", clock=clock)
    payloads = [delta(tool_calls=[tc(index=0, id="c", function=fn(name="f"))]), delta("tool_calls")]
    out = run(t, clock, payloads)
    assert len(out) == 1 and out[0]["done"] is True and "tool_calls" not in out[0]


def test_completions_stream() -> None:
    clock = Clock()
    t = translator("completions", emit_thinking=False, prompt_chars=8, clock=clock)
    payloads = [
        event({"choices": [{"index": 0, "text": "return", "finish_reason": None}]}),
        event({"choices": [{"index": 0, "text": " a + b", "finish_reason": None}]}),
        event({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}),
        event({"choices": [], "usage": {"prompt_tokens": 6, "completion_tokens": 4}}),
        b"[DONE]",
    ]
    assert run(t, clock, payloads) == [
        generate_line("return"),
        generate_line(" a + b"),
        {
            "model": MODEL,
            "response": "",
            "done": True,
            "done_reason": "length",
            "total_duration": T_END - T0,
            "prompt_eval_count": 6,
            "prompt_eval_duration": T_FIRST - T0,
            "eval_count": 4,
            "eval_duration": T_END - T_FIRST,
        },
    ]


# --- logprobs -----------------------------------------------------------------------------------------------

OPENAI_LOGPROBS = {
    "content": [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [
                {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                {"token": "Hello", "logprob": -2.3, "bytes": None},
            ],
        },
        {"token": "!", "logprob": -0.5, "bytes": None, "top_logprobs": []},
    ],
    "refusal": None,
}
OLLAMA_LOGPROBS = [
    {
        "token": "Hi",
        "logprob": -0.1,
        "bytes": [72, 105],
        "top_logprobs": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
            {"token": "Hello", "logprob": -2.3},
        ],
    },
    {"token": "!", "logprob": -0.5},
]


@pytest.mark.parametrize(
    ("enabled", "logprobs", "expected"),
    [
        pytest.param(True, OPENAI_LOGPROBS, OLLAMA_LOGPROBS, id="enabled"),
        pytest.param(False, OPENAI_LOGPROBS, None, id="disabled"),
        pytest.param(True, {"content": []}, None, id="empty-content"),
        pytest.param(True, {"content": None}, None, id="null-content"),
    ],
)
def test_stream_logprobs(enabled: bool, logprobs: Any, expected: list[dict[str, Any]] | None) -> None:
    line = lines(translator(logprobs=enabled).feed(delta(content="Hi!", logprobs=logprobs)))[0]
    assert line.get("logprobs") == expected
    assert ("logprobs" in line) is (expected is not None)


def test_generate_stream_logprobs() -> None:
    line = lines(translator("generate", logprobs=True).feed(delta(content="Hi!", logprobs=OPENAI_LOGPROBS)))[
        0
    ]
    assert line == {**generate_line("Hi!"), "logprobs": OLLAMA_LOGPROBS}


# --- stream errors and completeness -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payloads",
    [
        pytest.param([], id="nothing"),
        pytest.param(HELLO, id="content-but-no-end"),
        pytest.param([*HELLO, usage(1, 2)], id="usage-but-no-finish"),
    ],
)
def test_stream_without_end_is_incomplete(payloads: list[bytes]) -> None:
    t = translator()
    for payload in payloads:
        t.feed(payload)
    assert t.complete is False
    with pytest.raises(StreamIncomplete) as info:
        t.finish()
    assert isinstance(info.value, UpstreamProtocolError)
    assert status_of(info.value) == 502
    assert info.value.message == "the upstream stream ended before the answer was complete"


@pytest.mark.parametrize(
    ("payloads", "complete"),
    [([b"[DONE]"], True), ([delta("stop")], True), ([delta("length")], True), ([delta(content="x")], False)],
)
def test_complete(payloads: list[bytes], complete: bool) -> None:
    t = translator()
    for payload in payloads:
        t.feed(payload)
    assert t.complete is complete


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (event({"error": {"message": "Rate limit reached", "type": "rate_limit"}}), "Rate limit reached"),
        (event({"error": "boom"}), "boom"),
        (event({"error": {"code": 500}}), "the upstream reported an error"),
        (event({"error": {"message": ""}}), "the upstream reported an error"),
        (event({"error": True}), "the upstream reported an error"),
        (b"{not json", "the upstream sent a malformed stream event (invalid JSON)"),
        (b"", "the upstream sent a malformed stream event (invalid JSON)"),
        (b"[DONE", "the upstream sent a malformed stream event (invalid JSON)"),
    ],
)
def test_stream_error_events_are_502(payload: bytes, message: str) -> None:
    t = translator()
    t.feed(delta(content="partial"))
    with pytest.raises(UpstreamProtocolError) as info:
        t.feed(payload)
    assert status_of(info.value) == 502
    assert info.value.message == message


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"error": {"message": "bad"}}, "bad"),
        ({"error": "text"}, "text"),
        ({"error": ["x"]}, "the upstream reported an error"),
        ({"error": ""}, "the upstream reported an error"),
    ],
)
def test_upstream_error_message(payload: dict[str, Any], message: str) -> None:
    assert upstream_error_message(payload) == message


def test_every_line_of_a_full_stream_is_framed() -> None:
    clock = Clock()
    t = translator(clock=clock)
    out = b""
    for payload in [
        *HELLO,
        delta(content="\n\n"),
        delta(content='{"json": "inside"}\r\n'),
        delta(reasoning_content="\u2028 line separator"),
        delta(tool_calls=[tc(index=0, id="c", function=fn(name="f", arguments='{"q":"a\\nb"}'))]),
        delta("tool_calls"),
        usage(1, 6),
        b"[DONE]",
    ]:
        out += t.feed(payload)
    clock.now = T_END
    out += t.finish()
    parsed = lines(out)
    assert out.count(b"\n") == len(parsed) == 7
    assert parsed[-2]["message"]["tool_calls"][0]["function"]["arguments"] == {"q": "a\nb"}


# --- non-streamed answers -----------------------------------------------------------------------------------


def completion(message: dict[str, Any] | None = None, finish_reason: Any = "stop", **extra: Any) -> bytes:
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish_reason}
    choice.update(extra.pop("choice", {}))
    return event({"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice], **extra})


def translate(
    payload: bytes,
    kind: Kind = "chat",
    *,
    emit_thinking: bool = True,
    logprobs: bool = False,
    prompt_chars: int = 40,
    history: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    shape = ReplyShape(MODEL, kind, emit_thinking, logprobs, prompt_chars, history, started_ns=T0)
    out = completion_to_ollama(payload, shape, clock_ns=Clock(T_END))
    # what the resource sends is valid JSON with a Go-style timestamp
    wire = orjson.loads(orjson.dumps(out))
    if isinstance(out.get("context"), orjson.Fragment):  # serialized in advance: compare what was sent
        out["context"] = wire["context"]
    assert wire == out
    assert CREATED_AT.fullmatch(out.pop("created_at"))
    return out


def done_chat(
    message: dict[str, Any], reason: str = "stop", prompt: int = 9, evals: int = 2
) -> dict[str, Any]:
    return {
        "model": MODEL,
        "message": {"role": "assistant", **message},
        "done": True,
        "done_reason": reason,
        "total_duration": T_END - T0,
        "prompt_eval_count": prompt,
        "eval_count": evals,
        "eval_duration": T_END - T0,
    }


USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}


@pytest.mark.parametrize(
    ("payload", "emit_thinking", "expected"),
    [
        pytest.param(
            completion({"role": "assistant", "content": "Hello"}, usage=USAGE),
            True,
            done_chat({"content": "Hello"}),
            id="content",
        ),
        pytest.param(
            completion({"role": "assistant", "content": "Hi", "reasoning_content": "greet"}, usage=USAGE),
            True,
            done_chat({"content": "Hi", "thinking": "greet"}),
            id="reasoning_content-thinking",
        ),
        pytest.param(
            completion({"role": "assistant", "content": "Hi", "reasoning": "greet"}, usage=USAGE),
            True,
            done_chat({"content": "Hi", "thinking": "greet"}),
            id="reasoning-thinking",
        ),
        pytest.param(
            completion({"role": "assistant", "content": "Hi", "reasoning_content": "greet"}, usage=USAGE),
            False,
            done_chat({"content": "Hi"}),
            id="thinking-not-emitted",
        ),
        pytest.param(
            completion(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x":1}'},
                        },
                        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "oops"}},
                    ],
                },
                finish_reason="tool_calls",
                usage=USAGE,
            ),
            True,
            done_chat(
                {
                    "content": "",
                    "tool_calls": [
                        {"id": "call_a", "function": {"index": 0, "name": "f", "arguments": {"x": 1}}},
                        {"id": "call_b", "function": {"index": 1, "name": "g", "arguments": {"raw": "oops"}}},
                    ],
                }
            ),
            id="tool-calls",
        ),
        pytest.param(
            completion({"role": "assistant", "content": "cut"}, finish_reason="length", usage=USAGE),
            True,
            done_chat({"content": "cut"}, reason="length"),
            id="length",
        ),
        pytest.param(
            completion({"role": "assistant", "content": ""}, finish_reason="content_filter", usage=USAGE),
            True,
            done_chat({"content": ""}, reason="stop"),
            id="content_filter-is-stop",
        ),
        pytest.param(
            completion({"role": "assistant", "content": "x"}, finish_reason=None, usage=USAGE),
            True,
            done_chat({"content": "x"}, reason="stop"),
            id="missing-finish-reason-is-stop",
        ),
        # without usage: prompt = ceil(40 chars / 4), eval = ceil(len(content) / 4)
        pytest.param(
            completion({"role": "assistant", "content": "Hello world"}),
            True,
            done_chat({"content": "Hello world"}, prompt=10, evals=3),
            id="fallback-counts",
        ),
        pytest.param(
            completion({"role": "assistant", "content": "Hi"}, usage={"prompt_tokens": "9"}),
            True,
            done_chat({"content": "Hi"}, prompt=10, evals=1),
            id="fallback-counts-bad-usage",
        ),
        pytest.param(completion(None, usage=USAGE), True, done_chat({"content": ""}), id="message-missing"),
    ],
)
def test_completion_to_ollama_chat(payload: bytes, emit_thinking: bool, expected: dict[str, Any]) -> None:
    assert translate(payload, emit_thinking=emit_thinking) == expected


def test_completion_to_ollama_generate() -> None:
    payload = completion({"role": "assistant", "content": "4.", "reasoning_content": "adding"}, usage=USAGE)
    out = translate(payload, "generate", history=HISTORY)
    context = out.pop("context")
    assert out == {
        "model": MODEL,
        "response": "4.",
        "thinking": "adding",
        "done": True,
        "done_reason": "stop",
        "total_duration": T_END - T0,
        "prompt_eval_count": 9,
        "eval_count": 2,
        "eval_duration": T_END - T0,
    }
    assert decode_context(context) == [*HISTORY, {"role": "assistant", "content": "4."}]


def test_completion_to_ollama_generate_without_history() -> None:
    out = translate(completion({"role": "assistant", "content": "x"}, usage=USAGE), "generate")
    assert "context" not in out
    assert out["response"] == "x"


def test_completion_to_ollama_completions() -> None:
    payload = event(
        {
            "object": "text_completion",
            "choices": [{"index": 0, "text": "return a + b", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 6, "completion_tokens": 5},
        }
    )
    assert translate(payload, "completions", emit_thinking=False) == {
        "model": MODEL,
        "response": "return a + b",
        "done": True,
        "done_reason": "length",
        "total_duration": T_END - T0,
        "prompt_eval_count": 6,
        "eval_count": 5,
        "eval_duration": T_END - T0,
    }


@pytest.mark.parametrize(
    ("enabled", "expected"),
    [pytest.param(True, OLLAMA_LOGPROBS, id="on"), pytest.param(False, None, id="off")],
)
def test_completion_to_ollama_logprobs(enabled: bool, expected: list[dict[str, Any]] | None) -> None:
    payload = completion(
        {"role": "assistant", "content": "Hi!"}, usage=USAGE, choice={"logprobs": OPENAI_LOGPROBS}
    )
    out = translate(payload, logprobs=enabled)
    assert out.get("logprobs") == expected
    assert ("logprobs" in out) is (expected is not None)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "the upstream sent an invalid answer (not JSON)"),
        (b"", "the upstream sent an invalid answer (not JSON)"),
        (b"[1, 2]", "the upstream sent an invalid answer (not an object)"),
        (b'"text"', "the upstream sent an invalid answer (not an object)"),
        (event({"error": {"message": "Invalid API key", "type": "auth"}}), "Invalid API key"),
        (event({"error": "overloaded"}), "overloaded"),
        (event({"error": {"code": 1}}), "the upstream reported an error"),
        (event({"id": "x"}), "the upstream sent an answer without choices"),
        (event({"choices": []}), "the upstream sent an answer without choices"),
        (event({"choices": None}), "the upstream sent an answer without choices"),
        (event({"choices": ["x"]}), "the upstream sent an answer without choices"),
        (event({"choices": {"0": {}}}), "the upstream sent an answer without choices"),
    ],
)
@pytest.mark.parametrize("kind", ["chat", "generate", "completions"])
def test_completion_to_ollama_errors_are_502(payload: bytes, message: str, kind: Kind) -> None:
    with pytest.raises(UpstreamProtocolError) as info:
        translate(payload, kind)
    assert status_of(info.value) == 502
    assert info.value.message == message
