"""The Anthropic Messages translation's cost next to the Ollama path's, in-process, in the same run.

* an Anthropic request -> the upstream body (``messages_to_openai``, the input-token estimate a stream's
  ``message_start`` carries, ``orjson.dumps``), 2 and 20 messages,
  beside the same conversation as an Ollama ``/api/chat`` body through ``ollama_to_openai``;
* a 50-token stream through the SSE decoder and ``MessageStream`` (Anthropic's events), beside the same
  stream through the Ollama ``StreamTranslator``.

Issue 13 asks for each translator within 2x of the Ollama path; the ratios are printed, not asserted (a
timing assertion on a shared machine would be noise).
"""

from __future__ import annotations

from typing import Any

import _harness as h
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.sse import SSEDecoder
from falcon_ollama.translate.anthropic_request import estimate_input_tokens, messages_to_openai
from falcon_ollama.translate.anthropic_response import MessageStream
from falcon_ollama.translate.chat_request import ollama_to_openai
from falcon_ollama.translate.chat_response import ReplyShape, StreamTranslator

TITLE = "Anthropic Messages vs the Ollama path (in-process): median per operation"
_DONE = b"[DONE]"


def _median_us(benchmark: BenchmarkFixture) -> float | None:
    stats = getattr(benchmark.stats, "stats", None)  # None under --benchmark-disable
    return None if stats is None else stats.median * 1e6


def _record(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    key: str,
    label: str,
    tokens: int = 0,
    versus: str | None = None,
) -> None:
    us = _median_us(benchmark)
    if us is None:
        return
    results[key] = us
    benchmark.extra_info["us_per_op"] = round(us, 2)
    line = f"{label:<52} {us:9.2f} µs"
    if tokens:
        line += f"   {us / tokens:6.2f} µs/token"
    if versus is not None and versus in results:
        ratio = us / results[versus]
        benchmark.extra_info["ratio_to_ollama"] = round(ratio, 2)
        line += f"   {ratio:4.2f}x the Ollama path"
    figures.setdefault(TITLE, []).append(line)


def anthropic_body(messages: int) -> dict[str, Any]:
    """The conversation of ``h.ollama_chat`` as Claude Code shapes it: system apart, text blocks."""
    history: list[dict[str, Any]] = []
    for i in range(messages - 1):
        role = "user" if i % 2 == 0 else "assistant"
        text = f"Message {i}: tell me about the quick brown fox."
        history.append({"role": role, "content": [{"type": "text", "text": text}]})
    return {
        "model": h.MODEL,
        "max_tokens": 256,
        "system": [{"type": "text", "text": "You are a helpful assistant."}],
        "messages": history,
        "temperature": 0.7,
        "stream": True,
    }


@pytest.mark.parametrize("messages", [2, 20])
@pytest.mark.parametrize("dialect", ["ollama", "anthropic"])
def test_request_to_upstream_body(
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
        raw = orjson.dumps(anthropic_body(messages))

        def translate() -> bytes:
            # A streamed request also costs the input-token estimate (message_start carries it).
            body = orjson.loads(raw)
            estimate_input_tokens(body)
            return orjson.dumps(messages_to_openai(body, entry.facts, entry.upstream_id).body)

    out = orjson.loads(benchmark(translate))
    assert out["model"] == h.UPSTREAM_MODEL and len(out["messages"]) == messages
    versus = None if dialect == "ollama" else f"ollama_request_{messages}"
    label = f"{dialect} request ({messages} messages) -> upstream body"
    _record(benchmark, figures, results, f"{dialect}_request_{messages}", label, versus=versus)


@pytest.mark.parametrize("dialect", ["ollama", "anthropic"])
def test_stream_through_translator(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float], dialect: str
) -> None:
    events = h.stream_events(h.TOKENS)

    def translator() -> Any:
        if dialect == "ollama":
            return StreamTranslator(ReplyShape(h.MODEL, "chat", prompt_chars=40))
        return MessageStream(h.MODEL, "msg_0123456789abcdef01234567", 10)

    def stream() -> bytes:
        decoder, tr = SSEDecoder(), translator()
        out = [b"".join([tr.feed(p) for p in decoder.feed(chunk) if p != _DONE]) for chunk in events]
        out.append(tr.finish())
        return b"".join(out)

    body = benchmark(stream)
    if dialect == "anthropic":
        assert body.count(b"event: content_block_delta") == h.TOKENS and body.endswith(b'"message_stop"}\n\n')
    else:
        assert body.count(b"\n") == h.TOKENS + 1
    versus = None if dialect == "ollama" else "ollama_stream"
    label = f"{dialect}: {h.TOKENS}-token stream, decoder + translator"
    _record(benchmark, figures, results, f"{dialect}_stream", label, tokens=h.TOKENS, versus=versus)
