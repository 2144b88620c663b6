"""Tests for the incremental SSE decoder.

The decoder's whole job is to be split-agnostic, so besides the table of hand-written cases every
case is also replayed byte by byte, and hypothesis checks generated streams under arbitrary splits
against both the known payloads and an independent, deliberately naive reference parser.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falcon_ollama.sse import SSEDecoder, SSEError

BOM = b"\xef\xbb\xbf"


def decode(chunks: Iterable[bytes], max_event_bytes: int = 8 * 1024 * 1024) -> list[bytes]:
    """Run a whole stream through a fresh decoder, including the end-of-stream flush."""
    decoder = SSEDecoder(max_event_bytes)
    out: list[bytes] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    out += decoder.flush()
    return out


def bytewise(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


def split_at(stream: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(points)]


def reference(stream: bytes) -> list[bytes]:
    """A line-at-a-time transcription of the WHATWG rules, plus our lenient end of stream.

    It shares no code or strategy with the decoder (regex line splitting over the complete stream,
    no normalisation, no boundary search), which is what makes it a useful oracle.
    """
    if stream.startswith(BOM):
        stream = stream[len(BOM) :]
    lines = re.split(rb"\r\n|\r|\n", stream)
    if lines[-1] == b"":
        lines.pop()  # the stream ended with a line terminator; there is no further line
    out: list[bytes] = []
    data: list[bytes] = []
    for line in lines:
        if line == b"":
            if data:
                out.append(b"\n".join(data))
            data = []
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
    if data:
        out.append(b"\n".join(data))
    return out


# --------------------------------------------------------------------------- table-driven cases

JSON = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"delta":{"content":"Hi"}}]}'

# (id, chunks, payloads returned by feed, payloads returned by flush)
CASES: list[tuple[str, list[bytes], list[bytes], list[bytes]]] = [
    ("single event", [b"data: hello\n\n"], [b"hello"], []),
    ("openai json", [b"data: " + JSON + b"\n\n"], [JSON], []),
    ("several in one chunk", [b"data: a\n\ndata: b\n\ndata: c\n\n"], [b"a", b"b", b"c"], []),
    ("crlf", [b"data: a\r\n\r\ndata: b\r\n\r\n"], [b"a", b"b"], []),
    ("crlf, one event per chunk", [b"data: a\r\n\r\n", b"data: b\r\n\r\n"], [b"a", b"b"], []),
    ("crlf, lf inside", [b"data: a\nb\r\n\r\n"], [b"a"], []),
    ("crlf, two data lines", [b"data: a\r\ndata: b\r\n\r\n"], [b"a\nb"], []),
    ("crlf, no space", [b"data:a\r\n\r\n"], [b"a"], []),
    ("crlf, lone cr inside", [b"data: a\rb\r\n\r\n"], [b"a"], []),
    ("crlf, other field", [b"event: a\r\n\r\n"], [], []),
    ("crlf, after a tail", [b"data: a", b"b\r\n\r\n"], [b"ab"], []),
    ("lone cr", [b"data: a\r\rdata: b\r\r"], [b"a", b"b"], []),
    ("mixed endings", [b"data: a\r\n\rdata: b\n\r\ndata: c\rdata: d\r\n\n"], [b"a", b"b", b"c\nd"], []),
    ("cr then crlf", [b"data: a\r\r\n"], [b"a"], []),
    ("keep-alive comment", [b": keep-alive\n\ndata: x\n\n"], [b"x"], []),
    (
        "openrouter comment",
        [b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n"],
        [b"x"],
        [],
    ),
    ("comment inside event", [b"data: a\n: note\ndata: b\n\n"], [b"a\nb"], []),
    ("bare colon comment", [b":\ndata: x\n\n"], [b"x"], []),
    ("event line", [b"event: message\ndata: x\n\n"], [b"x"], []),
    ("event after data", [b"data: x\nevent: delta\n\n"], [b"x"], []),
    ("responses event", [b'event: response.output_text.delta\ndata: {"a":1}\n\n'], [b'{"a":1}'], []),
    ("two responses events", [b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"], [b"1", b"2"], []),
    ("responses event then data", [b"event: a\ndata: 1\n\ndata: 2\n\n"], [b"1", b"2"], []),
    ("event, two data lines", [b"event: a\ndata: 1\ndata: 2\n\n"], [b"1\n2"], []),
    ("event, data without space", [b"event: a\ndata:1\n\n"], [b"1"], []),
    ("event, data, then an id", [b"event: a\ndata: 1\nid: 7\n\n"], [b"1"], []),
    ("event, data, cut", [b"event: a\ndata: 1\n"], [], [b"1"]),
    ("id and retry", [b"id: 7\nretry: 1000\ndata: x\n\nid\n\n"], [b"x"], []),
    ("unknown fields", [b"foo: bar\nDATA: no\ndata : no\ndatum: no\ndata: yes\n\n"], [b"yes"], []),
    ("multi-line data", [b"data: a\ndata: b\ndata: c\n\n"], [b"a\nb\nc"], []),
    ("no space after colon", [b"data:x\n\n"], [b"x"], []),
    ("only one space stripped", [b"data:  x \n\n"], [b" x "], []),
    ("colon in value", [b"data: a: b:c\n\n"], [b"a: b:c"], []),
    ("tab is not stripped", [b"data:\tx\n\n"], [b"\tx"], []),
    ("field without colon", [b"data\n\n"], [b""], []),
    ("field without colon then data", [b"data\ndata: x\n\n"], [b"\nx"], []),
    ("other field without colon", [b"event\ndata: x\n\n"], [b"x"], []),
    ("empty data line", [b"data:\n\n"], [b""], []),
    ("empty data line with space", [b"data: \n\n"], [b""], []),
    ("empty lines in multi-line data", [b"data:\ndata:\n\n"], [b"\n"], []),
    ("event without data", [b"event: ping\nid: 3\n\n"], [], []),
    ("comment-only event", [b": hi\n\n"], [], []),
    ("blank lines only", [b"\n\n\n\r\n\r\r"], [], []),
    ("blank lines between events", [b"\ndata: a\n\n\n\ndata: b\n\n\n"], [b"a", b"b"], []),
    ("final event without blank line", [b"data: a\n\ndata: last"], [b"a"], [b"last"]),
    ("final event with one newline", [b"data: last\n"], [], [b"last"]),
    ("final multi-line event", [b"data: a\ndata: b\r\n"], [], [b"a\nb"]),
    ("final field without colon", [b"data"], [], [b""]),
    ("final comment", [b"data: a\n\n: bye"], [b"a"], []),
    ("done sentinel", [b"data: " + JSON + b"\n\ndata: [DONE]\n\n"], [JSON, b"[DONE]"], []),
    ("bom", [BOM + b"data: x\n\n"], [b"x"], []),
    ("bom split", [b"\xef", b"\xbb", b"\xbfdata: x\n\n"], [b"x"], []),
    ("bom alone then data", [BOM, b"data: x\n\n"], [b"x"], []),
    ("only first bom skipped", [BOM + BOM + b"data: x\n\n"], [], []),
    ("bom mid-stream is data", [BOM + b"data: a\n\n" + BOM + b"data: b\n\n"], [b"a"], []),
    ("bom prefix that is not a bom", [b"\xef\xbbdata: x\n\n"], [], []),
    ("truncated bom at eof", [b"\xef\xbb"], [], []),
    ("non-utf8 passes through", [b"data: \xff\xfe\n\n"], [b"\xff\xfe"], []),
    ("crlf split across chunks", [b"data: a\r", b"\n\r", b"\n"], [b"a"], []),
    ("crlf split before data", [b"data: a\r", b"\ndata: b\r\n\r\n"], [b"a\nb"], []),
    ("cr, empty chunk, lf", [b"data: a\r", b"", b"\n", b"\r", b"", b"\ndata: b\n\n"], [b"a", b"b"], []),
    ("cr, empty chunk, lf, data", [b"data: a\r", b"", b"\ndata: b\r", b"", b"\n\n"], [b"a\nb"], []),
    ("lone cr at chunk end", [b"data: a\r", b"\r", b"data: b\r", b"\r"], [b"a", b"b"], []),
    ("boundary split between newlines", [b"data: a\n", b"\ndata: b\n", b"\n"], [b"a", b"b"], []),
    ("json split mid-payload", [b'data: {"a"', b":1}", b"\n", b"\n"], [b'{"a":1}'], []),
    ("prefix split", [b"da", b"ta", b": x\n\n"], [b"x"], []),
    ("empty chunks", [b"", b"data: x\n\n", b""], [b"x"], []),
]


@pytest.mark.parametrize(("chunks", "fed", "flushed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_table(chunks: list[bytes], fed: list[bytes], flushed: list[bytes]) -> None:
    decoder = SSEDecoder()
    got: list[bytes] = []
    for chunk in chunks:
        result = decoder.feed(chunk)
        assert all(type(p) is bytes for p in result)
        got += result
    assert got == fed
    assert decoder.flush() == flushed


@pytest.mark.parametrize("chunks", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_table_is_split_independent(chunks: list[bytes]) -> None:
    stream = b"".join(chunks)
    expected = reference(stream)
    assert decode([stream]) == expected
    assert decode(bytewise(stream)) == expected


def test_events_are_returned_by_the_chunk_that_completes_them() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [b"a"]
    assert decoder.feed(b"c\n") == []
    assert decoder.feed(b"\ndata: d\n\ndata: e\n\n") == [b"bc", b"d", b"e"]
    assert decoder.flush() == []


def test_flush_resets_for_a_new_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.flush() == [b"a"]
    # A fresh stream: its BOM is skipped again, and the earlier trailing CR is forgotten.
    assert decoder.feed(BOM + b"\ndata: b\n\n") == [b"b"]
    assert decoder.flush() == []
    assert decoder.flush() == []


def test_large_event_split_into_many_chunks() -> None:
    payload = b"x" * 300_000
    stream = b"data: " + payload + b"\n\ndata: [DONE]\n\n"
    assert decode(split_at(stream, range(0, len(stream), 1000))) == [payload, b"[DONE]"]


def test_big_event_in_small_pieces() -> None:
    """A 2 MiB event arriving in 61-byte pieces decodes whole (its cost is measured in bench_sse.py)."""
    lines = [b"data: " + b"%058d" % i for i in range(32_768)]  # 64-byte lines, 2 MiB event
    stream = b"\n".join(lines) + b"\n\n"
    chunks = split_at(stream, range(0, len(stream), 61))
    assert decode(chunks) == [b"\n".join(line[6:] for line in lines)]


# --------------------------------------------------------------------------- size limit


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"data: " + b"x" * 100], id="long line, one chunk"),
        pytest.param(bytewise(b"data: " + b"x" * 100), id="long line, byte by byte"),
        pytest.param([b"data: aaaa\n" * 10], id="long multi-line event, one chunk"),
        pytest.param(bytewise(b"data: aaaa\n" * 10), id="long multi-line event, byte by byte"),
        pytest.param([b"data: aaaa\n" * 10 + b"\n"], id="complete long event"),
        pytest.param(
            [b"data: ok\n\n" + b"data: aaaa\n" * 10 + b"\n"], id="complete long event after a good one"
        ),
        pytest.param([b": " + b"c" * 100], id="long comment"),
        pytest.param([b"data: " + b"x" * 20, b"x" * 10 + b"\n\n"], id="completed by the next chunk"),
        pytest.param([b"data: " + b"x" * 20 + b"\n", b"data: " + b"x" * 10 + b"\n\n"], id="next line"),
    ],
)
def test_event_over_limit_raises(chunks: list[bytes]) -> None:
    decoder = SSEDecoder(max_event_bytes=32)
    with pytest.raises(SSEError, match="32 bytes"):
        for chunk in chunks:
            decoder.feed(chunk)
        decoder.flush()


def test_limit_is_inclusive_and_measured_on_the_event() -> None:
    at_limit = b"data: " + b"x" * 26  # a 32-byte event
    for stream in (at_limit + b"\n\n", at_limit + b"\n", at_limit, at_limit + b"\r\n\r\n"):
        assert decode([stream], max_event_bytes=32) == [b"x" * 26]
        assert decode(bytewise(stream), max_event_bytes=32) == [b"x" * 26]
    over = b"data: " + b"x" * 27
    for stream in (over + b"\n\n", over + b"\r\n\r\n", over + b"\n", over):
        for chunks in ([stream], bytewise(stream)):
            with pytest.raises(SSEError):
                decode(chunks, max_event_bytes=32)


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "bytewise"])
def test_oversized_event_is_rejected_as_soon_as_it_is_known(chunked: bool) -> None:
    at_limit = b"data: " + b"x" * 26  # 32 bytes: still acceptable if the event ends here
    decoder = SSEDecoder(max_event_bytes=32)
    for chunk in bytewise(at_limit) if chunked else [at_limit]:
        assert decoder.feed(chunk) == []
    assert decoder.feed(b"\r") == []  # a line ending is not part of the event...
    with pytest.raises(SSEError):
        decoder.feed(b"x")  # ...but another line makes it 34 bytes

    decoder = SSEDecoder(max_event_bytes=32)
    for chunk in bytewise(at_limit) if chunked else [at_limit]:
        assert decoder.feed(chunk) == []
    with pytest.raises(SSEError):
        decoder.feed(b"x")


def test_memory_stays_bounded_while_an_event_grows() -> None:
    """The error must come as soon as the event is known to be too big, not at its end."""
    decoder = SSEDecoder(max_event_bytes=1024)
    decoder.feed(b"data: ")
    with pytest.raises(SSEError):
        for _ in range(1000):
            decoder.feed(b"x" * 100)
    assert decoder.flush() == []  # the buffered bytes were dropped


def test_is_a_value_error() -> None:
    assert issubclass(SSEError, ValueError)


def test_rejects_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        SSEDecoder(max_event_bytes=0)


# --------------------------------------------------------------------------- property-based

# Payload text never holds CR or LF (they end lines); anything else goes, including ":" and
# leading spaces, plus a few strings that look like protocol on purpose.
line_text = st.one_of(
    st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=30),
    st.sampled_from(["", " ", "data: x", ": x", "[DONE]", '{"a": 1}', "\ufeff", "data"]),
)
eols = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def data_line(draw: st.DrawFn, value: str) -> bytes:
    raw = value.encode()
    forms = [b"data: " + raw]
    if not raw.startswith(b" "):
        forms.append(b"data:" + raw)  # no space: only unambiguous if the value has no leading one
    if not raw:
        forms.append(b"data")  # a field without a colon has an empty value
    return draw(st.sampled_from(forms))


@st.composite
def noise_line(draw: st.DrawFn) -> bytes:
    text = draw(line_text).encode()
    return draw(
        st.sampled_from(
            [
                b":" + text,
                b": keep-alive",
                b"event: " + text,
                b"id: " + text,
                b"retry: 1000",
                b"id",
                b"x-y: z",
            ]
        )
    )


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A serialized stream and the payloads it must decode to."""
    events = draw(st.lists(st.lists(line_text, min_size=1, max_size=4), max_size=8))
    out = [BOM] if draw(st.booleans()) else []

    def add_eol() -> None:
        ending = draw(eols)
        if ending == b"\n" and out and out[-1].endswith(b"\r"):
            ending = b"\r\n"  # CR followed by LF would be one line ending, not two
        out.append(ending)

    for index, event in enumerate(events):
        for _ in range(draw(st.integers(0, 2))):  # blank lines between events dispatch nothing
            add_eol()
        lines = [draw(data_line(value)) for value in event]
        for _ in range(draw(st.integers(0, 2))):
            lines.insert(draw(st.integers(0, len(lines))), draw(noise_line()))
        for line in lines:
            out.append(line)
            add_eol()
        last = index == len(events) - 1
        ending = draw(st.sampled_from(["blank", "eol", "none"] if last else ["blank"]))
        if ending == "blank":
            add_eol()
        elif ending == "none":
            out[-1] = b""  # the stream stops right after the final line; flush must still deliver
    expected = [b"\n".join(value.encode() for value in event) for event in events]
    return b"".join(out), expected


@settings(max_examples=300, deadline=None)
@given(case=streams(), data=st.data())
def test_generated_streams_decode_under_any_split(
    case: tuple[bytes, list[bytes]], data: st.DataObject
) -> None:
    stream, expected = case
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts")
    assert decode(split_at(stream, cuts)) == expected
    assert decode([stream]) == expected
    assert reference(stream) == expected


@settings(max_examples=300, deadline=None)
@given(case=streams())
def test_byte_by_byte_equals_all_at_once(case: tuple[bytes, list[bytes]]) -> None:
    stream, expected = case
    assert decode(bytewise(stream)) == decode([stream]) == expected


# Arbitrary "byte soup" built from protocol fragments reaches corners the generator above avoids:
# stray CRs next to LFs, BOMs in odd places, fields glued to values, and so on.
fragments = st.sampled_from(
    [
        b"data",
        b"data:",
        b"data: ",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"\r\n",
        b"x",
        b"event",
        b"id",
        BOM,
        b"\xef",
        b"[DONE]",
    ]
)
soups = st.lists(fragments, max_size=40).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=soups, data=st.data())
def test_byte_soup_matches_reference(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20), label="cuts")
    expected = reference(stream)
    assert decode(split_at(stream, cuts)) == expected
    assert decode(bytewise(stream)) == expected


def outcome(chunks: Sequence[bytes], limit: int) -> list[bytes] | str:
    try:
        return decode(chunks, max_event_bytes=limit)
    except SSEError:
        return "SSEError"


def oversized(stream: bytes, limit: int) -> bool:
    """Whether some event (normalised, without its terminating blank line) exceeds the limit."""
    if stream.startswith(BOM):
        stream = stream[len(BOM) :]
    blocks = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n")
    if blocks[-1].endswith(b"\n"):
        blocks[-1] = blocks[-1][:-1]  # at end of stream a final newline only ends the last line
    return any(len(block) > limit for block in blocks)


@settings(max_examples=300, deadline=None)
@given(stream=soups, data=st.data())
def test_size_limit_is_split_independent(stream: bytes, data: st.DataObject) -> None:
    # Limits around the stream's own size make "just over" and "just under" both likely.
    limit = data.draw(st.integers(1, len(stream) + 1), label="limit")
    whole = outcome([stream], limit)
    for max_cuts in (2, 20):  # few cuts leave whole events inside one chunk; many cut them up
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=max_cuts), label="cuts")
        assert outcome(split_at(stream, cuts), limit) == whole
    assert outcome(bytewise(stream), limit) == whole
    assert (whole == "SSEError") == oversized(stream, limit)
    if whole != "SSEError":
        assert whole == reference(stream)
