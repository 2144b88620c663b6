"""The translators fed answers we did not write: llama.cpp's recorded answers and OpenAI's published examples.

Each answer goes through the same pieces the relay uses (SSEDecoder -> StreamTranslator, completion_to_ollama,
parse_embeddings_response) and what comes out must parse with ollama-python's own models and carry the
upstream's text, tool calls and finish reason. Expected values are read from the fixtures with a naive parser
(tests/real_fixtures.py), not from our code.
"""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import pytest
from ollama import _types as sdk

from falcon_ollama.catalog_config import CatalogConfig
from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.sse import SSEDecoder
from falcon_ollama.translate.chat_response import Kind, ReplyShape, StreamTranslator, completion_to_ollama
from falcon_ollama.translate.embed import parse_embeddings_response, shorten_embeddings, split_dimensions
from falcon_ollama.translate.model_list import context_from_error
from tests.real_fixtures import (
    last_finish_reason,
    llamacpp,
    llamacpp_cases,
    openai_bytes,
    openai_json,
    sse_events,
    streamed_content,
    streamed_tool_calls,
)

MODEL = "tiny-llama:latest"
DONE_REASON = {"stop": "stop", "length": "length", "tool_calls": "stop"}

# (label, raw SSE body)
STREAMS = {
    "openai/chat_stream": lambda: openai_bytes("chat_stream.sse"),
    "openai/chat_stream_include_usage": lambda: openai_bytes("chat_stream_include_usage.sse"),
    "openai/chat_stream_tool_calls": lambda: openai_bytes("chat_stream_tool_calls.sse"),
    "llamacpp/chat_stream": lambda: llamacpp("chat_stream").body,
    "llamacpp/chat_tool_call_stream": lambda: llamacpp("chat_tool_call_stream").body,
}
# (label, whole chat.completion body)
COMPLETIONS = {
    "openai/chat_completion": lambda: openai_bytes("chat_completion.json"),
    "openai/chat_completion_tool_calls": lambda: openai_bytes("chat_completion_tool_calls.json"),
    "llamacpp/chat": lambda: llamacpp("chat").body,
    "llamacpp/chat_tool_call": lambda: llamacpp("chat_tool_call").body,
}


def expected_arguments(text: str) -> dict[str, Any]:
    """What Ollama clients must get for a call's argument text (an object; cut JSON kept whole)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}


def translate_stream(raw: bytes, kind: Kind, piece: int) -> list[dict[str, Any]]:
    """Feed ``raw`` in ``piece``-byte reads through the relay's decoder and translator."""
    decoder = SSEDecoder()
    translator = StreamTranslator(ReplyShape(MODEL, kind, emit_thinking=True, prompt_chars=20))
    out = b""
    for start in range(0, len(raw), piece):
        for payload in decoder.feed(raw[start : start + piece]):
            out += translator.feed(payload)
    for payload in decoder.flush():
        out += translator.feed(payload)
    out += translator.finish()
    assert out.endswith(b"\n")
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
@pytest.mark.parametrize("label", sorted(STREAMS))
def test_stream_to_ollama_chat(label: str, piece: int) -> None:
    raw = STREAMS[label]()
    events = sse_events(raw)
    lines = translate_stream(raw, "chat", piece)
    for line in lines:
        sdk.ChatResponse.model_validate(line)
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert "".join(line["message"]["content"] for line in lines) == streamed_content(events)
    final = lines[-1]
    assert final["done_reason"] == DONE_REASON[last_finish_reason(events) or "stop"]
    usage = next((e["usage"] for e in events if e.get("usage")), None)
    if usage:
        assert (final["prompt_eval_count"], final["eval_count"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
    calls = [c for line in lines for c in line["message"].get("tool_calls") or []]
    want = streamed_tool_calls(events)
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (name, expected_arguments(args)) for _, (name, args) in sorted(want.items())
    ]


@pytest.mark.parametrize("label", sorted(STREAMS))
def test_stream_to_ollama_generate(label: str) -> None:
    raw = STREAMS[label]()
    lines = translate_stream(raw, "generate", 64)
    for line in lines:
        sdk.GenerateResponse.model_validate(line)
    assert "".join(line["response"] for line in lines) == streamed_content(sse_events(raw))


@pytest.mark.parametrize("label", sorted(COMPLETIONS))
def test_completion_to_ollama_chat(label: str) -> None:
    raw = COMPLETIONS[label]()
    choice = json.loads(raw)["choices"][0]
    out = completion_to_ollama(raw, ReplyShape(MODEL, "chat", emit_thinking=True, prompt_chars=20))
    sdk.ChatResponse.model_validate(out)
    assert out["message"]["content"] == (choice["message"].get("content") or "")
    assert out["done"] is True and out["done_reason"] == DONE_REASON[choice["finish_reason"]]
    want = [
        (c["function"]["name"], expected_arguments(c["function"]["arguments"]), c.get("id"))
        for c in choice["message"].get("tool_calls") or []
    ]
    got = [
        (c["function"]["name"], c["function"]["arguments"], c.get("id"))
        for c in out["message"].get("tool_calls") or []
    ]
    assert got == want
    usage = json.loads(raw).get("usage")
    if usage:
        assert (out["prompt_eval_count"], out["eval_count"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )


@pytest.mark.parametrize("label", sorted(COMPLETIONS))
def test_completion_to_ollama_generate(label: str) -> None:
    raw = COMPLETIONS[label]()
    out = completion_to_ollama(raw, ReplyShape(MODEL, "generate", emit_thinking=True, prompt_chars=20))
    sdk.GenerateResponse.model_validate(out)
    assert out["response"] == (json.loads(raw)["choices"][0]["message"].get("content") or "")


@pytest.mark.parametrize(
    ("label", "raw", "count"),
    [
        ("openai/embeddings", lambda: openai_bytes("embeddings.json"), 1),
        ("llamacpp/embeddings", lambda: llamacpp("embeddings").body, 2),
        ("llamacpp/embeddings_single", lambda: llamacpp("embeddings_single").body, 1),
    ],
)
def test_embeddings_to_ollama(label: str, raw: Any, count: int) -> None:
    body = raw()
    data = json.loads(body)
    raw_vectors, prompt_tokens = parse_embeddings_response(body, count, normalize=False)
    vectors = json.loads(raw_vectors)
    assert vectors == [item["embedding"] for item in sorted(data["data"], key=lambda i: i["index"])]
    assert prompt_tokens == data["usage"]["prompt_tokens"]
    normalized = json.loads(parse_embeddings_response(body, count, normalize=True)[0])
    sdk.EmbedResponse.model_validate({"model": "m", "embeddings": normalized})
    for vector in normalized:
        assert sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_base64_embeddings_are_the_same_vectors(normalize: bool) -> None:
    """The recorded llama.cpp vectors (float32 values written as JSON numbers), sent as base64 float32 as
    OpenAI and vLLM send them when asked: the same float32 numbers come out, normalized the same way."""
    body = llamacpp("embeddings").body
    data = json.loads(body)
    for item in data["data"]:
        item["embedding"] = base64.b64encode(array("f", item["embedding"]).tobytes()).decode()
    as_numbers = json.loads(parse_embeddings_response(body, 2, normalize=normalize)[0])
    as_base64 = json.loads(parse_embeddings_response(json.dumps(data).encode(), 2, normalize=normalize)[0])
    assert [len(v) for v in as_base64] == [len(v) for v in as_numbers] == [64, 64]
    assert [array("f", v) for v in as_base64] == [array("f", v) for v in as_numbers]
    assert as_base64 != as_numbers or normalize  # unchanged vectors keep float32's short digits


@pytest.mark.parametrize(
    ("embedding", "says"),
    [
        ("not base64!", "not base64 float32"),
        ("AAAA", "not base64 float32"),  # 3 bytes: not a whole float32
        ("", "not base64 float32"),
        (base64.b64encode(array("f", [1.0, float("nan")]).tobytes()).decode(), "not a finite number"),
        (base64.b64encode(array("f", [float("inf")]).tobytes()).decode(), "not a finite number"),
        ([1.0, "2.0"], "not a flat list"),
        ([1.0, True], "not a flat list"),
        ([1.0, None], "not a flat list"),
        ([[1.0], [2.0]], "not a flat list"),
        ([1.0, [2.0]], "not a flat list"),
        ({"a": 1.0}, "not a flat list"),
    ],
)
def test_malformed_vectors_are_502(embedding: object, says: str) -> None:
    body = json.dumps({"data": [{"index": 0, "embedding": embedding}]}).encode()
    for normalize in (False, True):
        with pytest.raises(UpstreamProtocolError) as caught:
            parse_embeddings_response(body, 1, normalize=normalize)
        assert status_of(caught.value) == 502 and says in caught.value.message


def test_per_token_embeddings_are_refused_clearly() -> None:
    """llama.cpp answers a chat model's embeddings with one vector per token (a nested list)."""
    body = llamacpp("embeddings_per_token").body
    assert isinstance(json.loads(body)["data"][0]["embedding"][0], list)
    with pytest.raises(UpstreamProtocolError) as caught:
        parse_embeddings_response(body, 1, normalize=True)
    assert status_of(caught.value) == 502
    assert "not a flat list of numbers" in caught.value.message


def test_openai_models_list_has_what_the_catalog_reads() -> None:
    """The catalog reads ``data[].id`` and, when present, ``created`` (unix seconds)."""
    for item in openai_json("models_list.json")["data"]:
        assert isinstance(item["id"], str) and isinstance(item["created"], int)
    for item in llamacpp("models").json()["data"]:
        assert isinstance(item["id"], str)


def test_huge_numbers_are_normalized_without_overflow() -> None:
    """Squares of numbers near 1e200 overflow a float64: the length is then found the careful way."""
    body = json.dumps({"data": [{"index": 0, "embedding": [3e200, -4e200]}]}).encode()
    assert json.loads(parse_embeddings_response(body, 1, normalize=True)[0]) == [[pytest.approx(0.6), -0.8]]
    assert json.loads(parse_embeddings_response(body, 1, normalize=False)[0]) == [[3e200, -4e200]]


@pytest.mark.parametrize("name", ["error_context_exceeded", "completions_context_exceeded"])
def test_served_context_from_the_recorded_over_long_prompt_refusal(name: str) -> None:
    """llama-cpp-python names its served context only when it refuses an over-long prompt, in words of its
    own on the raw completion route (the context probe's) and OpenAI's on chat."""
    assert context_from_error(llamacpp(name).body) == 2048


@pytest.mark.parametrize(
    ("body", "context"),
    [
        # llama.cpp's own server (tools/server: exceed_context_size_error) says it as a field
        (
            b'{"error":{"code":400,"message":"the request exceeds the available context size",'
            b'"type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}',
            4096,
        ),
        # vLLM and OpenAI word it as llama-cpp-python copies it
        (
            b'{"error":{"message":"This model\'s maximum context length is 32768 tokens. However, ..."}}',
            32768,
        ),
        (b'{"error":"Requested tokens (3000) exceed context window of 2048"}', 2048),
        (b'{"error":{"message":"maximum context length is 0 tokens"}}', None),
        (b'{"error":{"message":"maximum context length is 99999999999 tokens"}}', None),
        (b"not json", None),
        (b"[" * 60_000, None),  # deeper than the stack: RecursionError in the stdlib decoder, not raised
        (b'{"error":{"n_ctx":true}}', None),
    ],
)
def test_context_from_error_shapes(body: bytes, context: int | None) -> None:
    assert context_from_error(body) == context


def test_no_other_recorded_refusal_names_a_context() -> None:
    for name, case in llamacpp_cases().items():
        if case.status >= 400 and not name.endswith("context_exceeded"):
            assert context_from_error(case.body) is None, name


@pytest.mark.parametrize(
    ("vector", "dimensions", "normalize", "expected"),
    [
        ([3.0, 4.0, 12.0], 2, True, [0.6, 0.8]),  # normalized whole, cut, normalized again
        ([3.0, 4.0, 12.0], 2, False, [0.6, 0.8]),  # a cut vector is always of unit length (Ollama's order)
        ([3.0, 4.0, 12.0], 3, True, [3 / 13, 4 / 13, 12 / 13]),  # not shorter: only normalized
        ([3.0, 4.0, 12.0], 7, False, [3.0, 4.0, 12.0]),
        ([3.0, 4.0, 12.0], None, True, [3 / 13, 4 / 13, 12 / 13]),
        ([0.0, 0.0, 5.0], 2, True, [0.0, 0.0]),  # a zero vector stays zero
    ],
)
def test_vectors_cut_to_dimensions(
    vector: list[float], dimensions: int | None, normalize: bool, expected: list[float]
) -> None:
    for encoded in (vector, base64.b64encode(array("f", vector).tobytes()).decode()):
        body = json.dumps({"data": [{"index": 0, "embedding": encoded}]}).encode()
        out = json.loads(parse_embeddings_response(body, 1, normalize=normalize, dimensions=dimensions)[0])
        assert out == [pytest.approx(expected, rel=1e-6)]


@pytest.mark.parametrize(
    ("body", "upstream_id", "cut", "left"),
    [
        ({"dimensions": 4}, "text-embedding-ada-002", 4, {}),  # shortened here
        ({"dimensions": 4}, "nomic-embed-text-v1.5", 4, {}),
        (
            {"dimensions": 4},
            "text-embedding-3-small",
            None,
            {"dimensions": 4},
        ),  # OpenAI shortens these itself
        ({"dimensions": 0}, "text-embedding-3-large", None, {}),  # zero or less: the whole vector, not sent
        ({"dimensions": 1536}, "text-embedding-3-small", None, {}),  # its whole length (1536) or more: too
        ({"dimensions": 10**6}, "text-embedding-3-small", None, {}),
        ({"dimensions": -3}, "text-embedding-ada-002", None, {}),
        ({"dimensions": "4"}, "text-embedding-ada-002", None, {"dimensions": "4"}),  # the upstream's own 400
        ({}, "text-embedding-ada-002", None, {}),
    ],
)
def test_split_dimensions(
    body: dict[str, Any], upstream_id: str, cut: int | None, left: dict[str, Any]
) -> None:
    length = CatalogConfig().facts_for(upstream_id).embedding_length
    assert split_dimensions(body, upstream_id, length) == cut
    assert body == left


def test_shorten_embeddings_keeps_each_encoding() -> None:
    numbers = [3.0, 4.0, 12.0]
    packed = base64.b64encode(array("f", numbers).tobytes()).decode()
    data = [{"index": 0, "embedding": numbers}, {"index": 1, "embedding": packed}]
    answer = {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    out = json.loads(shorten_embeddings(json.dumps(answer).encode(), 2))
    assert out["data"][0]["embedding"] == pytest.approx([0.6, 0.8])
    assert list(array("f", base64.b64decode(out["data"][1]["embedding"]))) == pytest.approx([0.6, 0.8])
    assert out["usage"] == answer["usage"] and out["model"] == "m"
    unchanged = json.loads(shorten_embeddings(json.dumps(answer).encode(), 3))
    assert unchanged["data"][0]["embedding"] == numbers  # not longer than asked: as the upstream sent it
    with pytest.raises(UpstreamProtocolError):
        shorten_embeddings(b'{"data": [{"embedding": "not base64!"}]}', 2)
