"""Micro benchmarks of the hot paths, in-process (no sockets, no event loop wake-ups).

* an Ollama /api/chat request -> the upstream body (``ollama_to_openai`` + ``orjson.dumps``);
* one upstream SSE event -> one NDJSON line (``SSEDecoder.feed`` + ``StreamTranslator.feed``);
* a 50-token stream end to end through the decoder and translator, ``finish()`` included;
* a large non-stream answer (``completion_to_ollama`` + the JSON body);
* the per-request bookkeeping (request id, summary log line, metrics) with and without metrics;
* the whole ASGI app (middleware, resources, translation, metrics, logging) with a stub upstream, with and
  without metrics: the metrics' share of a request's CPU.

Metrics run in prometheus_client's multiprocess mode and log lines are formatted as JSON, as in a gunicorn
worker. The only assertions are on outputs; the figures are printed at the end and kept in the JSON report.
"""

from __future__ import annotations

from collections.abc import Iterator

import _harness as h
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.sse import SSEDecoder
from falcon_ollama.translate.chat_request import ollama_to_openai
from falcon_ollama.translate.chat_response import ReplyShape, StreamTranslator, completion_to_ollama

TITLE = "hot paths (in-process): median per operation"
APP_BATCH = 20  # requests per timed call of the in-process app (amortises run_until_complete)


def _median_us(benchmark: BenchmarkFixture, per: int = 1) -> float | None:
    stats = getattr(benchmark.stats, "stats", None)  # None under --benchmark-disable
    return None if stats is None else stats.median / per * 1e6


def _record(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    key: str,
    label: str,
    per: int = 1,
    tokens: int = 0,
) -> None:
    us = _median_us(benchmark, per)
    if us is None:
        return
    results[key] = us
    benchmark.extra_info["us_per_op"] = round(us, 2)
    line = f"{label:<58} {us:9.2f} µs"
    if tokens:
        benchmark.extra_info["us_per_token"] = round(us / tokens, 3)
        line += f"   {us / tokens:6.2f} µs/token"
    figures.setdefault(TITLE, []).append(line)


def _translator() -> StreamTranslator:
    return StreamTranslator(ReplyShape("llama3.2", "chat", prompt_chars=40))


@pytest.mark.parametrize("messages", [2, 20])
def test_request_to_upstream_body(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float], messages: int
) -> None:
    body = h.ollama_chat(stream=True, messages=messages)
    entry = h.model_entry()
    raw = orjson.dumps(body)

    def translate() -> bytes:
        # The resource parses the body once; translation may change the dicts, so start from fresh ones.
        plan = ollama_to_openai("chat", orjson.loads(raw), entry, h.MODEL)
        return orjson.dumps(plan.body)

    out = orjson.loads(benchmark(translate))
    assert out["model"] == h.UPSTREAM_MODEL and len(out["messages"]) == messages
    assert out["stream_options"] == {"include_usage": True}
    label = f"Ollama request ({messages} messages) -> upstream body"
    _record(benchmark, figures, results, f"request_{messages}", label)


def test_one_event_to_ndjson_line(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float]
) -> None:
    events = h.stream_events()
    decoder, translator = SSEDecoder(), _translator()
    translator.feed(decoder.feed(events[0])[0])  # the role chunk: the stream is under way
    event = events[1]

    def one() -> bytes:
        return b"".join([translator.feed(payload) for payload in decoder.feed(event)])

    line = orjson.loads(benchmark(one))
    assert line["message"] == {"role": "assistant", "content": " The"} and line["done"] is False
    _record(benchmark, figures, results, "event", "one SSE event -> one NDJSON line", tokens=1)


def test_stream_through_translator(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float]
) -> None:
    events = h.stream_events(h.TOKENS)

    def stream() -> list[bytes]:
        decoder, translator = SSEDecoder(), _translator()
        out = [b"".join([translator.feed(p) for p in decoder.feed(chunk)]) for chunk in events]
        out.append(b"".join([translator.feed(p) for p in decoder.flush()]) + translator.finish())
        return out

    lines = [orjson.loads(line) for line in b"".join(benchmark(stream)).splitlines()]
    assert len(lines) == h.TOKENS + 1 and lines[-1]["done"] is True
    assert lines[-1]["eval_count"] == h.TOKENS
    label = f"{h.TOKENS}-token stream through decoder + translator"
    _record(benchmark, figures, results, "stream", label, tokens=h.TOKENS)


def test_large_non_stream_answer(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float]
) -> None:
    tokens = 4000
    payload = h.completion(tokens)

    def translate() -> bytes:
        out = completion_to_ollama(payload, ReplyShape("llama3.2", "chat", prompt_chars=40))
        return orjson.dumps(out)

    out = orjson.loads(benchmark(translate))
    assert out["done"] is True and out["eval_count"] == tokens
    label = f"non-stream answer, {tokens} tokens ({len(payload) // 1024} KiB) -> Ollama body"
    _record(benchmark, figures, results, "large_answer", label)


@pytest.fixture(scope="module")
def production_like() -> Iterator[None]:
    with h.multiprocess_metrics(), h.production_logging():
        yield


@pytest.mark.parametrize("metrics", ["metrics", "no-metrics"])
def test_request_bookkeeping(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    production_like: None,
    metrics: str,
) -> None:
    """What RequestTracking and the relay add to every request: the id, the summary line, the metrics."""
    from falcon_ollama.metrics import Metrics
    from falcon_ollama.requestlog import RequestInfo

    registry = Metrics("bench")
    if metrics == "no-metrics":
        h.noop_metrics(registry)

    def one() -> None:
        registry.in_flight.inc()
        info = RequestInfo("0123456789abcdef0123456789abcdef", "POST", "/api/chat", "/api/chat", registry)
        info.model = "llama3.2:latest"
        registry.upstream_latency.labels("chat/completions", "default").observe(0.0042)
        info.upstream_status = 200
        info.prompt_tokens, info.completion_tokens = 12, 50
        info.finish()

    benchmark(one)
    _record(benchmark, figures, results, f"bookkeeping_{metrics}", f"request bookkeeping, {metrics}")


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_app_in_process(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    production_like: None,
    stream: bool,
) -> None:
    """POST /api/chat through the whole ASGI app, the upstream answering at once from memory.

    Two apps, one with metrics and one whose metrics are no-ops, take turns batch by batch; each batch's
    CPU time (``process_time``: time the machine gave to other processes does not count) is recorded, and
    the medians are compared. Interleaving keeps a noisy machine from favouring either side."""
    apps = {"metrics": h.InProcessApp(metrics=True), "no-metrics": h.InProcessApp(metrics=False)}
    # The first rounds are warm-up (pedantic runs them too); under --benchmark-disable there is only one.
    medians = h.interleaved_cpu(benchmark, apps, stream, APP_BATCH)
    kind = "stream" if stream else "non-stream"
    for name, us in medians.items():
        results[f"app_{kind}_{name}"] = us
        benchmark.extra_info[f"cpu_us_{name}"] = round(us, 2)
        line = f"{'whole app in-process, ' + kind + ', ' + name:<58} {us:9.2f} µs CPU"
        if stream:
            line += f"   {us / h.TOKENS:6.2f} µs/token"
        figures.setdefault(TITLE, []).append(line)
    cost = medians["metrics"] - medians["no-metrics"]
    benchmark.extra_info["metrics_cpu_us"] = round(cost, 2)
    share_of_app = 100 * cost / medians["metrics"]
    line = f"{'  metrics cost, ' + kind:<58} {cost:9.2f} µs = {share_of_app:4.1f} % of the app"
    e2e = results.get(f"e2e_cpu_{kind}")
    if e2e:
        share = 100 * cost / e2e
        benchmark.extra_info["metrics_share_of_proxy_cpu_pct"] = round(share, 2)
        line += f", {share:4.1f} % of the proxy's CPU per request end to end ({e2e:.0f} µs)"
    figures.setdefault(TITLE, []).append(line)
