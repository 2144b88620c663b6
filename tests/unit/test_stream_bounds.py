"""A stream's end and bounds, framing-independent (issue 10, items 9-11): ``DoneFinder`` for the /v1 byte
relay, the decoder's events before an oversized one, what a translator keeps, and ``context_json``.

Like tests/unit/test_sse.py, every stream is replayed at every split point (and byte by byte, and under
hypothesis' random splits): what comes out must not depend on how the bytes were cut.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.sse import DoneFinder, SSEDecoder, SSEError
from falcon_ollama.translate.chat_response import (
    LIMIT_SETTING,
    ReplyShape,
    StreamTranslator,
    ToolCallAssembler,
)
from falcon_ollama.translate.context import context_json, decode_context, encode_context

DONE_LINE = b"data: [DONE]"


def every_split(stream: bytes) -> Iterable[list[bytes]]:
    """The stream whole, cut once at every byte, and byte by byte."""
    yield [stream]
    for cut in range(1, len(stream)):
        yield [stream[:cut], stream[cut:]]
    yield [stream[i : i + 1] for i in range(len(stream))]


def relayed(chunks: list[bytes]) -> bytes | None:
    """What the /v1 relay writes up to [DONE]'s ``]``, or None when the finder never fires."""
    finder = DoneFinder()
    out = b""
    for chunk in chunks:
        end = finder.feed(chunk)
        if end >= 0:
            return out + chunk[:end]
        out += chunk
    return None


def split_at(stream: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(points)]


def content_event(text: str, newline: bytes = b"\n") -> bytes:
    payload = orjson.dumps({"choices": [{"delta": {"content": text}}]})
    return b"data: " + payload + newline + newline


# --------------------------------------------------------------------------- DoneFinder

TRICKY = ["[DONE]", "data: [DONE]", "\ndata: [DONE]\n", "x[DONE]", "]", "[DO", "NE]"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("prefix", [b"data: [DONE]", b"data:[DONE]"], ids=["space", "no-space"])
def test_done_is_found_at_every_split(newline: bytes, prefix: bytes) -> None:
    before = b"".join(content_event(text, newline) for text in TRICKY) + b": keep-alive" + newline * 2
    stream = before + prefix + newline * 2 + content_event("AFTER", newline) + prefix + newline * 2
    for chunks in every_split(stream):
        assert relayed(chunks) == before + prefix, chunks


@pytest.mark.parametrize(
    "stream",
    [
        b"data: [DONE]\n\n",
        b"\n\ndata: [DONE]\n\n",
        b"event: done\ndata: [DONE]\n\n",
        b"id: 1\r\ndata: [DONE]\r\n\r\n",
    ],
)
def test_done_at_the_start_or_after_other_fields(stream: bytes) -> None:
    end = stream.index(b"[DONE]") + len(b"[DONE]")
    for chunks in every_split(stream):
        assert relayed(chunks) == stream[:end]


@pytest.mark.parametrize(
    "stream",
    [
        b"".join(content_event(text) for text in TRICKY),
        b"data: x[DONE]\n\n",
        b": data: [DONE]\n\n",
        b"event: [DONE]\n\n",
        b"datum: [DONE]\n\n",
        b'data: {"a": "\\ndata: [DONE]"}\n\n',
    ],
)
def test_done_mentioned_elsewhere_is_not_the_end(stream: bytes) -> None:
    for chunks in every_split(stream):
        assert relayed(chunks) is None


_PIECES = st.sampled_from([*'ab[]DONE: \n\r\\"', "data: [DONE]", "\ndata: [DONE]\n", "é"])
_TEXT = st.lists(_PIECES, max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(_TEXT, max_size=6),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    with_done=st.booleans(),
    data=st.data(),
)
def test_done_finder_agrees_with_the_decoder(
    texts: list[str], newline: bytes, with_done: bool, data: st.DataObject
) -> None:
    """Against the SSE decoder as the oracle: the finder fires exactly at the decoder's [DONE] event."""
    before = b"".join(content_event(text, newline) for text in texts)
    stream = before + (DONE_LINE + newline * 2 + content_event("after", newline) if with_done else b"")
    decoder = SSEDecoder()
    payloads = [*decoder.feed(stream), *decoder.flush()]
    assert (b"[DONE]" in payloads) == with_done
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    expected = before + DONE_LINE if with_done else None
    assert relayed(split_at(stream, cuts)) == expected


# --------------------------------------------------------------------------- events before an oversized one


@pytest.mark.parametrize("oversized", [b"data: " + b"x" * 100 + b"\n\n", b"data: " + b"x" * 100])
def test_events_before_an_oversized_one_come_out_whatever_the_split(oversized: bytes) -> None:
    events = [b"a", b"bb", b'{"c":3}']
    stream = b"".join(b"data: " + e + b"\n\n" for e in events) + oversized + b"data: late\n\n"
    for chunks in every_split(stream):
        decoder = SSEDecoder(max_event_bytes=64)
        got: list[bytes] = []
        with pytest.raises(SSEError, match="exceeds 64 bytes"):
            for chunk in chunks:
                got += decoder.feed(chunk)
            got += decoder.flush()
        assert got == events, chunks


def test_a_deferred_overflow_is_raised_by_flush_and_resets() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    assert decoder.feed(b"data: a\n\ndata: " + b"y" * 40) == [b"a"]
    with pytest.raises(SSEError):
        decoder.flush()
    assert decoder.feed(b"data: fresh\n\n") == [b"fresh"]


# --------------------------------------------------------------------------- what a translator keeps


def translator(
    kind: str = "chat", *, limit: int, history: list[dict[str, str]] | None = None
) -> StreamTranslator:
    return StreamTranslator(
        ReplyShape("m", kind, history=history),  # type: ignore[arg-type]
        max_accumulated=limit,
    )


def tool_payload(arguments: str, **call: object) -> bytes:
    fragment = {"index": 0, "function": {"arguments": arguments}, **call}
    return orjson.dumps({"choices": [{"delta": {"tool_calls": [fragment]}}]})


def content_payload(text: str) -> bytes:
    return orjson.dumps({"choices": [{"delta": {"content": text}}]})


def test_tool_call_fragments_are_bounded() -> None:
    t = translator(limit=10_000)
    t.feed(tool_payload("", id="call_1", function={"name": "f", "arguments": ""}))
    with pytest.raises(UpstreamProtocolError) as info:
        for _ in range(200):
            t.feed(tool_payload("x" * 100))
    assert status_of(info.value) == 502
    assert LIMIT_SETTING in info.value.message and "tool-call arguments" in info.value.message


def test_empty_fragments_are_not_free() -> None:
    """Each fragment and each call costs something: a flood of empty ones reaches the bound too."""
    t = translator(limit=10_000)
    with pytest.raises(UpstreamProtocolError):
        for i in range(10_000):
            t.feed(tool_payload("", index=i))


def test_generate_text_is_bounded_and_chat_content_is_not() -> None:
    history = [{"role": "user", "content": "hi"}]
    t = translator("generate", limit=1_000, history=history)
    with pytest.raises(UpstreamProtocolError, match="the answer text kept for the context"):
        for _ in range(20):
            t.feed(content_payload("y" * 100))
    chat = translator("chat", limit=1_000)
    for _ in range(20):
        assert chat.feed(content_payload("y" * 100))
    raw = translator("generate", limit=1_000, history=None)  # raw mode keeps no context
    for _ in range(20):
        assert raw.feed(content_payload("y" * 100))


def test_text_and_tool_calls_share_one_bound() -> None:
    t = translator("generate", limit=1_000, history=[])
    t.feed(content_payload("y" * 600))
    with pytest.raises(UpstreamProtocolError, match="tool-call arguments"):
        t.feed(tool_payload("x" * 600))


def test_under_the_bound_the_answer_is_whole() -> None:
    t = translator(limit=10_000)
    t.feed(tool_payload('{"a":', id="call_1", function={"name": "f", "arguments": '{"a":'}))
    t.feed(tool_payload(" 1}"))
    t.feed(orjson.dumps({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}))
    final = [orjson.loads(line) for line in t.finish().splitlines()]
    assert final[0]["message"]["tool_calls"][0]["function"]["arguments"] == {"a": 1}


def test_index_less_fragments_with_ids_are_assembled_by_id() -> None:
    """Without ``index``: a new id opens a call, a known id continues it, no id continues the latest."""
    assembler = ToolCallAssembler()
    for i in range(1_000):
        assembler.add([{"id": f"c{i}", "function": {"name": f"f{i}", "arguments": '{"n":'}}])
        assembler.add([{"function": {"arguments": f"{i}"}}])
    assembler.add([{"id": "c5", "function": {"arguments": "}"}}])
    calls = assembler.calls()
    assert len(calls) == 1_000
    assert calls[5]["function"] == {"index": 5, "name": "f5", "arguments": {"n": 5}}
    assert calls[6]["function"]["arguments"] == {"raw": '{"n":6'}


# --------------------------------------------------------------------------- context_json


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": st.text()}))
)
def test_context_json_is_encode_context_serialized(messages: list[dict[str, str]]) -> None:
    wire = orjson.loads(orjson.dumps({"context": context_json(messages)}))["context"]
    assert wire == encode_context(messages)
    assert decode_context(wire) == messages


def test_context_json_across_slices() -> None:
    messages = [{"role": "assistant", "content": "é✓" * 40_000 + "z"}]  # > one 16,384-value slice
    wire = orjson.loads(orjson.dumps(context_json(messages)))
    assert wire == encode_context(messages)
