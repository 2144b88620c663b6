"""The stream translator's fast path for content deltas: as fast as measured, and byte-for-byte identical.

``StreamTranslator`` learns, from a plain content delta, the bytes around its content string, proves that
template once, and then parses only the string of later events that match it (see ``_learn``). This module
times a realistic stream with and without the fast path, and checks on a few thousand randomised streams
(upstream JSON styles, escapes, unicode, reasoning, tool calls, logprobs, usage, errors, duplicate keys,
garbage) that the output, the errors and the counts are the same as the full parse gives.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import _harness as h
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.sse import SSEDecoder
from falcon_ollama.translate import chat_response
from falcon_ollama.translate.chat_response import ReplyShape, StreamTranslator

TITLE = "hot paths (in-process): median per operation"
_PIECES = ["a", "é", '"', "\\", "\n", "\u2028", "😀", "/", " ", "null", "}", '"content":"x"', "\x00"]


def _translator(kind: Any, *, fast: bool, emit_thinking: bool = False, logprobs: bool = False) -> Any:
    ticks = itertools.count(1_000, 7)
    history = [] if kind == "generate" else None
    translator = StreamTranslator(
        ReplyShape("m", kind, emit_thinking, logprobs, prompt_chars=10, history=history),
        clock_ns=lambda: next(ticks),
    )
    if not fast:
        translator._learn_left = 0  # never learns a template: every event takes the full parse
    return translator


def _random_stream(rnd: random.Random) -> list[bytes]:
    def text() -> str:
        return "".join(rnd.choice(_PIECES) for _ in range(rnd.randint(0, 5)))

    style = rnd.randint(0, 3)

    def encode(obj: object) -> bytes:
        if style == 0:
            return orjson.dumps(obj)
        if style == 1:
            return json.dumps(obj).encode()  # ASCII escapes, spaces after separators
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=style == 3).encode()

    base = {"id": rnd.choice(["chatcmpl-1", "default", "a"]), "object": "chat.completion.chunk", "created": 1}
    usage_key = rnd.choice([False, True])

    def event(delta: dict[str, Any], finish: str | None = None, logprobs: object = None) -> dict[str, Any]:
        out: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs}]}
        out["choices"][0]["finish_reason"] = finish
        if usage_key:
            out["usage"] = None
        return out

    events: list[Any] = [event({"role": "assistant", "content": ""})]
    for _ in range(rnd.randint(0, 12)):
        roll = rnd.random()
        delta: dict[str, Any]
        if roll < 0.6:
            delta = {"content": text()}
        elif roll < 0.7:
            delta = {"role": "assistant", "content": text()}
        elif roll < 0.78:
            delta = {"reasoning_content": text()} if roll < 0.74 else {"content": text(), "reasoning": text()}
        elif roll < 0.84:
            call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a":'}}
            delta = {"tool_calls": [call]}
        elif roll < 0.9:
            delta = {"content": text(), "refusal": None}
        else:
            delta = {"content": None if roll < 0.95 else 5}
        logprobs = {"content": [{"token": "x", "logprob": -0.1, "top_logprobs": []}]} if roll > 0.97 else None
        item = event(delta, logprobs=logprobs)
        if rnd.random() < 0.03:
            item["usage"] = {"prompt_tokens": 3, "completion_tokens": 2}
        if rnd.random() < 0.02:
            item = {"error": {"message": "boom"}}
        events.append(item)
    events.append(event({}, finish=rnd.choice(["stop", "length", "tool_calls"])))
    if rnd.random() < 0.7:
        events.append({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}})
    raws = [encode(e) for e in events]
    if rnd.random() < 0.05 and len(raws) > 2:
        raws[2] = raws[2].replace(b'"content":', b'"content":"dup","content":', 1)
    if rnd.random() < 0.02:
        raws.append(b"not json")
    return [*raws, b"[DONE]"]


def _translate(translator: Any, payloads: list[bytes]) -> tuple[list[Any], tuple[int, int]]:
    out: list[Any] = []
    try:
        out.extend(translator.feed(p) for p in payloads)
        out.append(translator.finish())
    except UpstreamProtocolError as exc:
        out.append(("error", type(exc).__name__, exc.message))
    return out, translator.counts()


def test_fast_path_is_identical_to_the_full_parse(
    benchmark: BenchmarkFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correctness check (timed once, so that it runs under ``--benchmark-only`` too)."""
    monkeypatch.setattr(chat_response, "now_rfc3339", lambda: "2024-06-04T14:38:31.83753Z")

    # The case the proof exists for: the content escaped differently from orjson ("\u0061" for "a"), so the
    # bytes orjson would write for it are found elsewhere (field "x"); an unproven template would take the
    # slot of "x" and relay "zzz" as content.
    crafted = [
        b'{"x":"a","choices":[{"index":0,"delta":{"content":"\\u0061"},"finish_reason":null}]}',
        b'{"x":"zzz","choices":[{"index":0,"delta":{"content":"\\u0061"},"finish_reason":null}]}',
        b'{"x":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    ]
    fast, slow = _translator("chat", fast=True), _translator("chat", fast=False)
    assert _translate(fast, crafted) == _translate(slow, crafted)
    assert fast._template is None

    def check() -> int:
        rnd = random.Random(20261126)
        learned = 0
        for _ in range(3000):
            payloads = _random_stream(rnd)
            kind = rnd.choice(["chat", "chat", "generate", "completions"])
            options = {"emit_thinking": rnd.random() < 0.5, "logprobs": rnd.random() < 0.3}
            fast = _translator(kind, fast=True, **options)
            slow = _translator(kind, fast=False, **options)
            assert _translate(fast, payloads) == _translate(slow, payloads), payloads
            learned += fast._template is not None
        return learned

    assert benchmark.pedantic(check, rounds=1, iterations=1) > 1000  # the fast path really ran


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "full-parse"])
def test_stream_with_and_without_fast_path(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float], fast: bool
) -> None:
    events = h.stream_events(h.TOKENS)
    payloads = [p for event in events for p in SSEDecoder().feed(event)]

    def stream() -> list[bytes]:
        translator = _translator("chat", fast=fast)
        return [*(translator.feed(p) for p in payloads), translator.finish()]

    lines = b"".join(benchmark(stream)).splitlines()
    assert len(lines) == h.TOKENS + 1
    stats = getattr(benchmark.stats, "stats", None)
    if stats is None:
        return
    per_token = stats.median / h.TOKENS * 1e6
    results[f"translator_{'fast' if fast else 'full'}"] = per_token
    benchmark.extra_info["us_per_token"] = round(per_token, 3)
    label = f"translator alone, {'fast path' if fast else 'full parse (no fast path)'}"
    figures.setdefault(TITLE, []).append(f"{label:<58} {per_token:9.2f} µs/token")
