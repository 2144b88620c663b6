"""Images (bare base64 -> data URIs) and generate's ``context`` (conversation packed into integers)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from falcon_ollama.errors import ProxyError
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.translate.context import MARKER, decode_context, encode_context
from falcon_ollama.translate.images import image_data_uri, sniff_mime

# --- images -------------------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb"
GIF87 = b"GIF87a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00"
GIF89 = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\r\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11"
WAVE = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
BMP = b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x01\x00\x00\x00"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        pytest.param(PNG, "image/png", id="png"),
        pytest.param(JPEG, "image/jpeg", id="jpeg"),
        pytest.param(b"\xff\xd8\xff\xdb", "image/jpeg", id="jpeg-raw"),
        pytest.param(GIF87, "image/gif", id="gif87a"),
        pytest.param(GIF89, "image/gif", id="gif89a"),
        pytest.param(WEBP, "image/webp", id="webp"),
        pytest.param(WAVE, None, id="riff-wave-is-not-webp"),
        pytest.param(BMP, None, id="bmp"),
        pytest.param(b"hello", None, id="text"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b"\x89PNG", None, id="truncated-png-signature"),
        pytest.param(b"GIF88a", None, id="gif-unknown-version"),
    ],
)
def test_sniff_mime(head: bytes, mime: str | None) -> None:
    assert sniff_mime(head) == mime


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        pytest.param(PNG, "image/png", id="png"),
        pytest.param(JPEG, "image/jpeg", id="jpeg"),
        pytest.param(GIF87, "image/gif", id="gif87a"),
        pytest.param(GIF89, "image/gif", id="gif89a"),
        pytest.param(WEBP, "image/webp", id="webp"),
        pytest.param(PNG[:8], "image/png", id="png-signature-only-padded"),
        pytest.param(JPEG[:3], "image/jpeg", id="jpeg-three-bytes"),
        pytest.param(PNG * 200, "image/png", id="png-long"),
    ],
)
def test_bare_base64_becomes_a_data_uri(data: bytes, mime: str) -> None:
    encoded = b64(data)
    assert image_data_uri(encoded, 0) == f"data:{mime};base64,{encoded}"


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("data:image/png;base64," + b64(PNG), id="png-data-uri"),
        pytest.param("data:image/jpeg;base64," + b64(JPEG), id="jpeg-data-uri"),
        pytest.param("data:;base64," + b64(PNG), id="data-uri-without-mime"),
    ],
)
def test_data_uri_passes_unchanged(uri: str) -> None:
    assert image_data_uri(uri, 0) == uri


@pytest.mark.parametrize(
    ("image", "index", "message"),
    [
        ("", 0, "invalid image input: image 0 must be a non-empty base64 string"),
        (None, 1, "invalid image input: image 1 must be a non-empty base64 string"),
        (123, 0, "invalid image input: image 0 must be a non-empty base64 string"),
        ([b64(PNG)], 0, "invalid image input: image 0 must be a non-empty base64 string"),
        ({"data": b64(PNG)}, 2, "invalid image input: image 2 must be a non-empty base64 string"),
        ("!!!not base64 at all!!!", 0, "invalid image input: image 0 is not valid base64"),
        ("iVBORw0KGgo*" + "A" * 20, 3, "invalid image input: image 3 is not valid base64"),
        ("abcde", 0, "invalid image input: image 0 is not valid base64"),
        ("https://example.com/cat.png", 0, "invalid image input: image 0 is not valid base64"),
        (
            b64(b"just some plain text here"),
            0,
            "invalid image input: image 0 is not a PNG, JPEG, GIF or WebP image",
        ),
        (b64(BMP), 4, "invalid image input: image 4 is not a PNG, JPEG, GIF or WebP image"),
        (b64(WAVE), 0, "invalid image input: image 0 is not a PNG, JPEG, GIF or WebP image"),
    ],
)
def test_invalid_image_is_400(image: Any, index: int, message: str) -> None:
    with pytest.raises(ProxyError) as info:
        image_data_uri(image, index)
    assert status_of(info.value) == 400
    assert info.value.message == message


# --- context ------------------------------------------------------------------------------------------------


def pack(data: bytes) -> list[int]:
    """The documented format, written independently: marker, pad, then 3 big-endian bytes per integer."""
    pad = -len(data) % 3
    data += b"\x00" * pad
    return [MARKER, pad, *(int.from_bytes(data[i : i + 3], "big") for i in range(0, len(data), 3))]


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([], id="empty"),
        pytest.param([{"role": "user", "content": "hi"}], id="one-message"),
        pytest.param([{"role": "user", "content": ""}], id="empty-content"),
        pytest.param(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Why is the sky blue?"},
                {"role": "assistant", "content": "Rayleigh scattering."},
            ],
            id="conversation",
        ),
        pytest.param([{"role": "user", "content": 'héllo wörld 世界 🎉 \u0000 \n\t"quotes"'}], id="unicode"),
        pytest.param([{"role": "assistant", "content": "x" * 10_000}], id="long"),
        pytest.param([{"role": "user", "content": "a"}], id="pad-2"),
        pytest.param([{"role": "user", "content": "ab"}], id="pad-1"),
        pytest.param([{"role": "user", "content": "abc"}], id="pad-0"),
    ],
)
def test_context_round_trip(messages: list[dict[str, str]]) -> None:
    packed = encode_context(messages)
    assert packed == pack(orjson.dumps(messages))
    assert packed[0] == MARKER
    assert 0 <= packed[1] <= 2
    assert all(isinstance(v, int) and 0 <= v < 1 << 24 for v in packed[1:])
    assert decode_context(packed) == messages
    # survives a trip through a client's JSON
    assert decode_context(orjson.loads(orjson.dumps(packed))) == messages


def test_encode_empty_exact() -> None:
    assert encode_context([]) == [MARKER, 1, int.from_bytes(b"[]\x00", "big")]


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(None, id="none"),
        pytest.param([], id="empty-list"),
        pytest.param([128006, 882, 128007, 271, 13347, 128009], id="real-ollama-token-ids"),
        pytest.param([1, 2, 3], id="small-ints"),
        pytest.param([MARKER], id="marker-only"),
        pytest.param("abc", id="string"),
        pytest.param({"context": [MARKER, 0]}, id="object"),
        pytest.param([0, MARKER, 1], id="marker-not-first"),
    ],
)
def test_foreign_context_is_none(context: Any) -> None:
    assert decode_context(context) is None


def _valid() -> list[int]:
    return encode_context([{"role": "user", "content": "hello"}])


@pytest.mark.parametrize(
    "context",
    [
        pytest.param([MARKER, 3, *_valid()[2:]], id="pad-too-large"),
        pytest.param([MARKER, -1, *_valid()[2:]], id="pad-negative"),
        pytest.param([MARKER, 1.0, *_valid()[2:]], id="pad-float"),
        pytest.param([MARKER, "0", *_valid()[2:]], id="pad-string"),
        pytest.param([*_valid(), 1 << 24], id="value-too-large"),
        pytest.param([*_valid(), -1], id="value-negative"),
        pytest.param([*_valid(), "x"], id="value-string"),
        pytest.param([*_valid(), 1.5], id="value-float"),
        pytest.param([*_valid()[:2], True, *_valid()[3:]], id="value-bool"),
        pytest.param(_valid()[:-1], id="truncated"),
        pytest.param([MARKER, 2], id="pad-without-data"),
        pytest.param([MARKER, 0], id="no-data"),
        pytest.param(pack(b"{{{"), id="not-json"),
        pytest.param(pack(b"\xff\xfe[]"), id="not-utf8"),
        pytest.param(pack(b'{"role":"user","content":"x"}'), id="json-object-not-list"),
        pytest.param(pack(b'"text"'), id="json-string"),
        pytest.param(pack(b"[1,2]"), id="list-of-numbers"),
        pytest.param(pack(b'[{"role":"tool","content":"x"}]'), id="tool-role"),
        pytest.param(pack(b'[{"role":"user"}]'), id="missing-content"),
        pytest.param(pack(b'[{"role":"user","content":5}]'), id="content-not-string"),
        pytest.param(pack(b'[{"content":"x"}]'), id="missing-role"),
        pytest.param(
            pack(b"[" + b",".join([b'{"role":"user","content":""}'] * 10_001) + b"]"), id="too-many"
        ),
    ],
)
def test_damaged_context_is_none(context: list[Any]) -> None:
    assert decode_context(context) is None


def test_decode_keeps_only_role_and_content() -> None:
    packed = pack(b'[{"role":"user","content":"x","images":["abc"],"thinking":"t"}]')
    assert decode_context(packed) == [{"role": "user", "content": "x"}]


def test_decode_accepts_the_maximum_number_of_messages() -> None:
    messages = [{"role": "user", "content": ""}] * 10_000
    assert decode_context(encode_context(messages)) == messages
