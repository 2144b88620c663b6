"""The Responses translator's cost next to the Ollama one, in-process, on the same inputs.

Each pair runs the Ollama path (``ollama_to_openai`` / ``StreamTranslator``) and the Responses path
(``responses_to_chat`` / ``ResponsesStreamTranslator``) on the same conversation and the same upstream stream;
issue 13 asks for the new dialects to stay within 2x of the Ollama path. The ratios are printed, not asserted
(a noisy machine must not fail the suite).
"""

from __future__ import annotations

import _harness as h
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.sse import SSEDecoder
from falcon_ollama.translate.chat_request import ollama_to_openai
from falcon_ollama.translate.chat_response import ReplyShape, StreamTranslator, completion_to_ollama
from falcon_ollama.translate.responses_request import ResponseShape, responses_to_chat
from falcon_ollama.translate.responses_response import ResponsesStreamTranslator, completion_to_response

TITLE = "Responses translation vs the Ollama path (in-process): median per operation"


def _us(benchmark: BenchmarkFixture) -> float | None:
    stats = getattr(benchmark.stats, "stats", None)  # None under --benchmark-disable
    return None if stats is None else stats.median * 1e6


def _record(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    key: str,
    tokens: int,
) -> None:
    us = _us(benchmark)
    if us is None:
        return
    results[key] = us
    benchmark.extra_info["us_per_op"] = round(us, 2)
    line = f"{key:<44} {us:9.2f} µs"
    if tokens:
        line += f"   {us / tokens:6.2f} µs/token"
    base_key = key.replace("responses", "ollama")
    if key.startswith("responses") and base_key in results:
        ratio = us / results[base_key]
        benchmark.extra_info["ratio_to_ollama"] = round(ratio, 2)
        line += f"   {ratio:4.2f}x the Ollama path"
    figures.setdefault(TITLE, []).append(line)


def _responses_body(messages: int) -> dict[str, object]:
    """The same conversation as ``h.ollama_chat`` in the Responses dialect."""
    chat = h.ollama_chat(stream=True, messages=messages)
    history = chat["messages"]
    return {
        "model": h.MODEL,
        "instructions": history[0]["content"],
        "input": [{"role": m["role"], "content": m["content"]} for m in history[1:]],
        "stream": True,
        "temperature": 0.7,
        "max_output_tokens": 256,
    }


@pytest.mark.parametrize("messages", [2, 20])
@pytest.mark.parametrize("dialect", ["ollama", "responses"])
def test_request(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    dialect: str,
    messages: int,
) -> None:
    entry = h.model_entry()
    if dialect == "ollama":
        raw = orjson.dumps(h.ollama_chat(stream=True, messages=messages))

        def translate() -> bytes:
            return orjson.dumps(ollama_to_openai("chat", orjson.loads(raw), entry, h.MODEL).body)
    else:
        raw = orjson.dumps(_responses_body(messages))

        def translate() -> bytes:
            plan = responses_to_chat(orjson.loads(raw), entry.facts, entry.upstream_id)
            return orjson.dumps(plan.body)

    out = orjson.loads(benchmark(translate))
    assert len(out["messages"]) == messages and out["max_tokens"] == 256
    _record(benchmark, figures, results, f"{dialect} request ({messages} messages)", 0)


@pytest.mark.parametrize("dialect", ["ollama", "responses"])
def test_stream(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float], dialect: str
) -> None:
    events = h.stream_events(h.TOKENS)
    echo = responses_to_chat(_responses_body(2), h.model_entry().facts, "m").echo

    def translator() -> StreamTranslator | ResponsesStreamTranslator:
        if dialect == "ollama":
            return StreamTranslator(ReplyShape("llama3.2", "chat", prompt_chars=40))
        return ResponsesStreamTranslator(ResponseShape("llama3.2", echo, prompt_chars=40))

    def stream() -> bytes:
        decoder, t = SSEDecoder(), translator()
        out = []
        for chunk in events:
            out.extend(t.feed(p) for p in decoder.feed(chunk) if p != b"[DONE]")
        out.append(t.finish())
        return b"".join(out)

    body = benchmark(stream)
    if dialect == "responses":
        assert body.count(b"event: response.output_text.delta\n") == h.TOKENS
        assert b"event: response.completed\n" in body
    else:
        assert body.count(b"\n") == h.TOKENS + 1
    _record(benchmark, figures, results, f"{dialect} {h.TOKENS}-token stream", h.TOKENS)


@pytest.mark.parametrize("dialect", ["ollama", "responses"])
def test_large_answer(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float], dialect: str
) -> None:
    tokens = 4000
    payload = h.completion(tokens)

    def translate() -> bytes:
        if dialect == "ollama":
            out = completion_to_ollama(payload, ReplyShape("llama3.2", "chat", prompt_chars=40))
            return orjson.dumps(out)
        return orjson.dumps(completion_to_response(payload, ResponseShape("llama3.2", prompt_chars=40)))

    assert orjson.loads(benchmark(translate))
    _record(benchmark, figures, results, f"{dialect} non-stream answer ({tokens} tokens)", 0)
