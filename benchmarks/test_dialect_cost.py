"""What the Responses upstream dialect costs (issue 14): a backend with ``dialect = "responses"`` against the
same backend spoken to in chat completions.

* The whole app in-process, two apps taking turns batch by batch (benchmarks/_harness.py: the real
  middleware, resources, translation, metrics and logging, the backend's Upstream stubbed): one whose
  backend answers chat completions, one whose backend answers the same text in the Responses API
  (``responses_answer`` / ``responses_events``: OpenAI's framing, 50 text deltas), translated back by the call
  path. The difference of the medians is the dialect's cost per request, and (streams) per event.
* The translation alone (falcon_ollama/translate/chat_to_responses.py as the call path uses it): a request
  body to a Responses request plus the answer back, and one ``response.output_text.delta`` event to a chat
  chunk line.

The figures go to docs/performance.md ("Responses dialect").
"""

from __future__ import annotations

import _harness as h
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.resources.upstream_call import responses_body
from falcon_ollama.sse import SSEDecoder
from falcon_ollama.translate.chat_to_responses import ResponsesStreamToChat, response_to_chat

TITLE = "responses dialect: CPU per request (in-process) and per translation"
BATCH = 20


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_responses_dialect_against_chat_in_process(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float], stream: bool
) -> None:
    apps = {"chat": h.InProcessApp(), "responses": h.InProcessApp(dialect="responses")}
    assert [u.dialect for u in apps["responses"].app.services.backends] == ["responses"]
    sizes = {name: app.run(stream, 1) for name, app in apps.items()}
    # The same answer reaches the client either way (within the ids and times each line carries).
    assert abs(sizes["chat"] - sizes["responses"]) < 0.1 * sizes["chat"], sizes
    medians = h.interleaved_cpu(benchmark, apps, stream, BATCH)
    kind = "stream" if stream else "non-stream"
    lines = figures.setdefault(TITLE, [])
    for name, us in medians.items():
        results[f"dialect_{kind}_{name}"] = us
        benchmark.extra_info[f"cpu_us_{name}"] = round(us, 2)
        lines.append(f"{kind + ', ' + name + ' dialect':<40} {us:9.2f} µs CPU")
    diff = medians["responses"] - medians["chat"]
    line = f"{'  responses minus chat, ' + kind:<40} {diff:+9.2f} µs = {100 * diff / medians['chat']:+.1f} %"
    if stream:
        events = len(h.responses_events())
        line += f"; {diff / events:+.2f} µs per Responses event ({events})"
    lines.append(line)


def test_translation_of_a_whole_answer(benchmark: BenchmarkFixture, figures: dict[str, list[str]]) -> None:
    """A non-stream request's translation: the chat body to a Responses body, and the answer back."""
    body = h.upstream_body(False)
    answer = h.responses_answer(h.TOKENS)

    def translate() -> bytes:
        responses_body(body)
        return orjson.dumps(response_to_chat(orjson.loads(answer)))

    chat = orjson.loads(benchmark(translate))
    assert (
        chat["choices"][0]["message"]["content"]
        == orjson.loads(h.completion(h.TOKENS))["choices"][0]["message"]["content"]
    )
    us = benchmark.stats.stats.median * 1e6
    benchmark.extra_info["us_per_request"] = round(us, 2)
    figures.setdefault(TITLE, []).append(f"{'translation, one request and answer':<40} {us:9.2f} µs")


def test_translation_of_one_stream_event(benchmark: BenchmarkFixture, figures: dict[str, list[str]]) -> None:
    """One ``response.output_text.delta`` read: decoded, translated, framed as a chat chunk line (what
    ResponsesAsChatStream adds per event on top of the chat dialect's own decoding)."""
    events = h.responses_events(h.TOKENS)
    head, deltas = events[:4], events[4 : 4 + h.TOKENS]
    decoder = SSEDecoder(1 << 20)
    convert = ResponsesStreamToChat()
    for event in head:
        for payload in decoder.feed(event):
            convert.feed(payload)
    rounds = 0

    def one() -> bytes:
        nonlocal rounds
        out = b""
        for payload in decoder.feed(deltas[rounds % h.TOKENS]):
            out = b"".join(b"data: " + c + b"\n\n" for c in convert.feed(payload))
        rounds += 1
        return out

    line = benchmark(one)
    assert line.startswith(b"data: {") and b'"content"' in line
    us = benchmark.stats.stats.median * 1e6
    benchmark.extra_info["us_per_event"] = round(us, 3)
    figures.setdefault(TITLE, []).append(f"{'translation, one stream event':<40} {us:9.3f} µs")
