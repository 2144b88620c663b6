"""Streams from a hostile or sloppy upstream (issue 10, items 9-12), through our app on loopback.

The upstream is tests/hostile_stream_upstream.py: raw HTTP with control of every write, so each test states
the exact framing it needs (an event and the next in one read, ``[DONE]`` split in two, a connection held
open). Clients are raw HTTP (httpx) and the real ollama and openai SDKs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from falcon_ollama.settings import Settings
from tests.hostile_stream_upstream import (
    DONE,
    Answer,
    HostileStreamUpstream,
    delta,
    error_event,
    finish_event,
    tool_fragment,
)
from tests.servers import ProxyThread

USER = [{"role": "user", "content": "hi"}]
LIMIT_NAME = "FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES"


@pytest.fixture
def hostile() -> Iterator[HostileStreamUpstream]:
    with HostileStreamUpstream() as upstream:
        yield upstream


@pytest.fixture
def start(hostile: HostileStreamUpstream) -> Iterator[Callable[..., ProxyThread]]:
    """Our app (uvicorn thread) pointed at the hostile upstream, with Settings overrides."""
    started: list[ProxyThread] = []

    def _start(**overrides: Any) -> ProxyThread:
        settings = Settings(
            openai_base_url=hostile.base_url,
            openai_base_url_set=True,
            openai_api_key="sk-test-hostile-streams-123456",
            max_retries=0,
            **overrides,
        )
        proxy = ProxyThread(settings).__enter__()
        started.append(proxy)
        return proxy

    yield _start
    for proxy in reversed(started):
        proxy.__exit__()


def ndjson(resp: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in resp.content.splitlines()]


def chat(proxy: ProxyThread, *, timeout: float = 30, **extra: Any) -> list[dict[str, Any]]:
    body = {"model": "gpt-4o", "messages": USER, **extra}
    return ndjson(httpx.post(proxy.url + "/api/chat", json=body, timeout=timeout))


def contents(lines: list[dict[str, Any]]) -> list[str]:
    return [line["message"]["content"] for line in lines if "message" in line and line["message"]["content"]]


def requests_counted(proxy: ProxyThread, route: str) -> dict[str, float]:
    """status label -> count of falcon_ollama_requests_total for ``route``."""
    text = httpx.get(proxy.url + "/metrics").text
    counter = r'falcon_ollama_requests_total\{[^}]*route="'
    pattern = re.compile(counter + re.escape(route) + r'",status="([^"]+)"\} (\S+)')
    return {status: float(count) for status, count in pattern.findall(text)}


async def send_all(answer: Answer, *pieces: bytes) -> None:
    await answer.start()
    for piece in pieces:
        await answer.send(piece)
    await answer.end()


# ---------------------------------------------------------------- item 10: [DONE] ends the stream


def test_content_after_done_is_not_relayed_on_api(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start()

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, delta("Hello"), finish_event(), DONE + delta(" AFTER"), delta(" MORE"), DONE)

    hostile.script = script
    lines = chat(proxy)
    assert contents(lines) == ["Hello"]
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"


@pytest.mark.parametrize("route", ["/api/chat", "/v1/chat/completions"])
def test_an_upstream_that_ends_its_body_after_done_keeps_its_connection(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread], route: str
) -> None:
    """Stopping at [DONE] must not cost the keep-alive: the body's end that follows it is still read."""
    proxy = start()

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(delta("Hello") + finish_event())
        await answer.send(DONE)
        await answer.hold(0.1)  # the body's end comes a moment after [DONE], as over a real network
        await answer.end()

    hostile.script = script
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    for _ in range(5):
        resp = httpx.post(proxy.url + route, json=body, timeout=10)
        assert resp.status_code == 200 and b"Hello" in resp.content
    assert len(hostile.exchanges) == 5
    assert hostile.connections == 1, "each stream opened a new upstream connection"


@pytest.mark.parametrize("route", ["/api/chat", "/api/generate"])
def test_connection_held_open_after_done_ends_the_answer_at_once(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread], route: str
) -> None:
    proxy = start(idle_timeout=60.0)

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(delta("Hello"))
        await answer.send(finish_event() + DONE)
        await answer.hold(30)  # never ends the body, never closes

    hostile.script = script
    body: dict[str, Any] = {"model": "gpt-4o", "messages": USER} if route == "/api/chat" else {
        "model": "gpt-4o", "prompt": "hi"}  # fmt: skip
    started = time.monotonic()
    resp = httpx.post(proxy.url + route, json=body, timeout=10)
    assert time.monotonic() - started < 5
    lines = ndjson(resp)
    assert lines[-1]["done"] is True
    assert "error" not in lines[-1]
    assert hostile.wait_closed(hostile.exchanges[-1], 5), "the upstream connection was left open"


def test_done_split_across_reads_still_ends_the_stream(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start(idle_timeout=60.0)

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(delta("Hello") + finish_event() + b"data: [DO")
        await answer.send(b"NE]\n\n" + delta(" AFTER"))
        await answer.hold(30)

    hostile.script = script
    lines = chat(proxy, timeout=10)
    assert contents(lines) == ["Hello"]
    assert lines[-1]["done"] is True


def test_v1_relay_stops_at_done(hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]) -> None:
    proxy = start()

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, delta("Hello"), finish_event(), DONE + delta(" AFTER"), delta(" MORE"))

    hostile.script = script
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    resp = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200
    assert resp.content == delta("Hello") + finish_event() + DONE


@pytest.mark.parametrize("cut", [1, 5, 6, 7, 8, 10, 11, 12, 13, 14])
def test_v1_relay_stops_at_done_split_anywhere(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread], cut: int
) -> None:
    """``data: [DONE]\\n\\n`` cut in two reads at every place (the second read also carries later bytes)."""
    proxy = start(idle_timeout=60.0)
    tail = b"\n" + DONE  # the previous event's blank line, then [DONE]

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(delta("Hello")[:-1] + tail[:cut])
        await answer.send(tail[cut:] + delta(" AFTER"))
        await answer.hold(30)

    hostile.script = script
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    resp = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=10)
    assert resp.content == delta("Hello") + DONE


def test_v1_connection_held_open_after_done_ends_the_answer_at_once(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start(idle_timeout=60.0)

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(delta("Hello"))
        await answer.send(finish_event())
        await answer.send(DONE)
        await answer.hold(30)

    hostile.script = script
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    started = time.monotonic()
    resp = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=10)
    assert time.monotonic() - started < 5
    assert resp.content == delta("Hello") + finish_event() + DONE
    assert hostile.wait_closed(hostile.exchanges[-1], 5), "the upstream connection was left open"
    # The openai SDK stops reading at [DONE] by itself; the answer is the same.
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", timeout=10, max_retries=0)
    started = time.monotonic()
    stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)  # type: ignore[arg-type]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello"
    assert time.monotonic() - started < 5
    assert requests_counted(proxy, "/v1/chat/completions") == {"200": 2.0}


# ---------------------------------------------------------------- item 11: nothing lost before an error


def test_delta_and_error_event_in_one_read_both_reach_the_client(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start()

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, delta("Hello") + delta(" world") + error_event("upstream overloaded"))

    hostile.script = script
    lines = chat(proxy)
    assert contents(lines) == ["Hello", " world"]
    assert lines[-1] == {"error": "upstream overloaded"}
    hostile.script = script
    with pytest.raises(ollama.ResponseError, match="upstream overloaded"):
        for part in ollama.Client(host=proxy.url).chat("gpt-4o", messages=USER, stream=True):
            assert part.message.content in ("Hello", " world")


def test_every_framing_delivers_every_delta_before_the_error(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    """The same stream cut in two reads at every byte: the client always gets both deltas, then the error."""
    proxy = start()
    stream = delta("A") + delta("B") + error_event("boom")
    cut = 0

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, stream[:cut], stream[cut:])

    hostile.script = script
    with httpx.Client(timeout=30) as client:
        for cut in range(1, len(stream)):
            resp = client.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER})
            lines = ndjson(resp)
            assert (contents(lines), lines[-1]) == (["A", "B"], {"error": "boom"}), f"split at {cut}"


def test_delta_before_an_oversized_event_in_one_read_reaches_the_client(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start(max_stream_accumulated_bytes=65_536)

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, delta("Hello") + b"data: " + b"x" * 70_000)

    hostile.script = script
    lines = chat(proxy)
    assert contents(lines) == ["Hello"]
    assert lines[-1]["error"].startswith("the upstream stream is invalid")


def test_delta_before_a_cut_without_finish_reaches_the_client(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    """A last event without its blank line, then the end of the body: relayed, then the cut is reported."""
    proxy = start()

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, delta("Hello") + delta(" world")[:-2])

    hostile.script = script
    lines = chat(proxy)
    assert contents(lines) == ["Hello", " world"]
    assert lines[-1] == {"error": "the upstream stream ended before the answer was complete"}


# ---------------------------------------------------------------- item 9: bounded accumulation


def test_endless_tool_call_fragments_end_with_an_error_naming_the_limit(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    """Default settings: fragments up to 5x the default bound; the proxy gives up at the bound."""
    proxy = start()
    limit = Settings().max_stream_accumulated_bytes
    fragment = "x" * 16_384
    pieces = 5 * limit // len(fragment)

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(tool_fragment('{"a":"', name="f"))
        for _ in range(pieces):
            if answer.closed:
                return
            await answer.send(tool_fragment(fragment))
        await answer.send(tool_fragment('"}') + finish_event("tool_calls") + DONE)
        await answer.end()

    hostile.script = script
    lines = chat(proxy, timeout=60)
    assert LIMIT_NAME in lines[-1]["error"]
    assert "tool-call arguments" in lines[-1]["error"]
    assert not any(line.get("done") for line in lines)
    exchange = hostile.exchanges[-1]
    assert hostile.wait_closed(exchange, 5)
    # What it did send beyond the bound sat in the loopback socket buffers (a few MB).
    assert exchange.pieces < pieces // 2, "the proxy kept reading past its bound"


def test_generate_text_kept_for_the_context_is_bounded(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start(max_stream_accumulated_bytes=65_536)
    word = "y" * 1024

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        for _ in range(10_000):
            if answer.closed:
                return
            await answer.send(delta(word))
        await answer.send(finish_event() + DONE)
        await answer.hold(10)

    hostile.script = script
    resp = httpx.post(proxy.url + "/api/generate", json={"model": "gpt-4o", "prompt": "hi"}, timeout=60)
    lines = ndjson(resp)
    assert LIMIT_NAME in lines[-1]["error"]
    assert sum(len(line.get("response", "")) for line in lines) <= 65_536 + len(word)
    assert hostile.wait_closed(hostile.exchanges[-1], 5)
    assert hostile.exchanges[-1].pieces < 10_000


def test_relayed_chat_content_is_not_accumulated_so_not_bounded(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    """The bound is on what a stream keeps, not on what it relays: a long chat answer passes whole."""
    proxy = start(max_stream_accumulated_bytes=65_536)
    word = "z" * 1024

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, *[delta(word) for _ in range(200)], finish_event(), DONE)

    hostile.script = script
    lines = chat(proxy)
    assert "".join(contents(lines)) == word * 200
    assert lines[-1]["done"] is True
    # Raw generate (no context kept) is not bounded either.
    raw = {"model": "gpt-4o", "prompt": "hi", "raw": True}
    resp = httpx.post(proxy.url + "/api/generate", json=raw, timeout=30)
    assert ndjson(resp)[-1]["done"] is True


def test_an_endless_partial_event_is_cut_at_the_bound(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start(max_stream_accumulated_bytes=65_536)

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(delta("Hello") + b'data: {"choices":[{"delta":{"content":"')
        for _ in range(10_000):
            if answer.closed:
                return
            await answer.send(b"w" * 1024)
        await answer.hold(10)

    hostile.script = script
    lines = chat(proxy)
    assert contents(lines) == ["Hello"]
    assert lines[-1]["error"].startswith("the upstream stream is invalid")
    assert hostile.wait_closed(hostile.exchanges[-1], 5)
    assert hostile.exchanges[-1].pieces < 10_000


# ---------------------------------------------------------------- item 12: failed streams count as failed


def test_a_stream_that_fails_after_the_first_byte_counts_as_stream_error(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start(idle_timeout=0.5)

    async def fails(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, delta("Hello"), error_event("boom"))

    async def stalls(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        await answer.send(delta("Hello"))
        await answer.hold(10)

    async def works(answer: Answer, body: dict[str, object]) -> None:
        await send_all(answer, delta("Hello"), finish_event(), DONE)

    hostile.script = fails
    assert chat(proxy)[-1] == {"error": "boom"}
    hostile.script = stalls
    assert "error" in chat(proxy)[-1]
    hostile.script = works
    assert chat(proxy)[-1]["done"] is True
    assert requests_counted(proxy, "/api/chat") == {"stream_error": 2.0, "200": 1.0}

    hostile.script = stalls
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    resp = httpx.post(proxy.url + "/v1/chat/completions", json=body)
    assert b'"error"' in resp.content
    assert requests_counted(proxy, "/v1/chat/completions") == {"stream_error": 1.0}


def test_a_client_leaving_mid_stream_counts_as_499(
    hostile: HostileStreamUpstream, start: Callable[..., ProxyThread]
) -> None:
    proxy = start()

    async def endless(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        for _ in range(2_000):
            if answer.closed:
                return
            await answer.send(delta("tick"))
            await answer.hold(0.01)

    hostile.script = endless
    with httpx.stream("POST", proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}) as resp:
        for _ in resp.iter_lines():
            break
    assert hostile.wait_closed(hostile.exchanges[-1], 5)
    deadline = time.monotonic() + 5
    while requests_counted(proxy, "/api/chat") != {"499": 1.0} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests_counted(proxy, "/api/chat") == {"499": 1.0}
