"""Benchmarks for the SSE decoder on realistic OpenAI chat-completion streams.

Run with ``pytest benchmarks/bench_sse.py``. The decoder runs once per upstream read for every
token of every stream, so the number that matters is nanoseconds per event; each benchmark records
it in ``extra_info["ns_per_event"]`` (kept in ``--benchmark-json`` output) and a summary table is
printed after pytest-benchmark's own.

The stream mirrors what OpenAI sends for a 50-token answer with ``include_usage``: a role chunk,
50 content chunks, a finish chunk, a usage chunk and ``[DONE]``, each ``data: {json}\\n\\n``.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.sse import SSEDecoder

TOKENS = 50
SEGMENT = 1500  # a typical Ethernet MTU's worth of payload per read

_WORDS = [" The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]
_BASE = {
    "id": "chatcmpl-AZq3bW8pXk1T0fRj9Yc2Lm4NvE7sH",
    "object": "chat.completion.chunk",
    "created": 1732600000,
    "model": "gpt-4o-mini-2024-07-18",
    "service_tier": "default",
    "system_fingerprint": "fp_0705bf87c0",
}


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**_BASE, "choices": [choice], "usage": None}


def _events(line_ending: bytes = b"\n") -> list[bytes]:
    bodies: list[object] = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    bodies += [_chunk({"content": _WORDS[i % len(_WORDS)]}) for i in range(TOKENS)]
    bodies.append(_chunk({}, "stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": TOKENS, "total_tokens": 12 + TOKENS}
    bodies.append({**_BASE, "choices": [], "usage": usage})
    payloads = [orjson.dumps(body) for body in bodies] + [b"[DONE]"]
    return [b"data: " + p + line_ending + line_ending for p in payloads]


EVENTS = _events()
STREAM = b"".join(EVENTS)
SEGMENTS = [STREAM[i : i + SEGMENT] for i in range(0, len(STREAM), SEGMENT)]
CRLF_EVENTS = _events(b"\r\n")
EXPECTED = [event[6:-2] for event in EVENTS]

_results: dict[str, float] = {}


def _decode_all(chunks: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    out += decoder.flush()
    return out


def _run(benchmark: BenchmarkFixture, fn: Callable[[], object], events: int) -> object:
    result = benchmark(fn)
    stats = getattr(benchmark.stats, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        ns = stats.median / events * 1e9
        benchmark.extra_info["events"] = events
        benchmark.extra_info["ns_per_event"] = round(ns, 1)
        _results[benchmark.name] = ns
    return result


class _SummaryPlugin:
    """Prints ns/event after pytest-benchmark's own table, which only reports time per call.

    Registered as a plugin at run time because test modules cannot implement hooks themselves, and
    the terminal summary is the one place where output is neither captured nor interleaved.
    """

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not _results:
            return
        terminalreporter.write_sep("-", f"SSE decoder: median ns per event ({len(EVENTS)} events)")
        for name, ns in _results.items():
            terminalreporter.write_line(f"{name:<40} {ns:8.1f}")


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not manager.has_plugin("bench-sse-summary"):
        manager.register(_SummaryPlugin(), "bench-sse-summary")


def test_stream_one_event_per_chunk(benchmark: BenchmarkFixture) -> None:
    """The usual shape: the upstream flushes after each event and every read returns one."""
    assert len(EVENTS[1]) > 200
    assert _run(benchmark, lambda: _decode_all(EVENTS), len(EVENTS)) == EXPECTED


def test_stream_tcp_segments(benchmark: BenchmarkFixture) -> None:
    """Reads that batch several events and cut one in two at every segment boundary."""
    assert _run(benchmark, lambda: _decode_all(SEGMENTS), len(EVENTS)) == EXPECTED


def test_stream_single_read(benchmark: BenchmarkFixture) -> None:
    """The whole stream in one read: the cost of the event loop alone, without per-read overhead."""
    assert _run(benchmark, lambda: _decode_all([STREAM]), len(EVENTS)) == EXPECTED


def test_stream_crlf_one_event_per_chunk(benchmark: BenchmarkFixture) -> None:
    """CRLF line endings (some proxies): every read takes the normalisation path."""
    assert _run(benchmark, lambda: _decode_all(CRLF_EVENTS), len(EVENTS)) == EXPECTED


def test_single_event(benchmark: BenchmarkFixture) -> None:
    """One feed() of one content event on a decoder already past the stream start."""
    decoder = SSEDecoder()
    decoder.feed(EVENTS[0])
    event = EVENTS[1]
    assert _run(benchmark, lambda: decoder.feed(event), 1) == [EXPECTED[1]]
