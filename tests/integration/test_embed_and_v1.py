"""/api/embed, /api/embeddings and the /v1 OpenAI-compatible routes through real servers."""

from __future__ import annotations

import base64
import logging
import math
import time
from array import array
from collections.abc import Callable
from typing import Any

import httpx
import ollama
import openai
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, Fault, expected_text
from falcon_ollama.catalog_config import load_catalog_file
from tests.conftest import EXAMPLE_CATALOG
from tests.servers import ProxyThread

USER = [{"role": "user", "content": "hi"}]


def embedding_requests(fake: FakeUpstreamThread) -> list[object]:
    return [r for r in fake.requests if r.path.endswith("/embeddings")]


# --- /api/embed ------------------------------------------------------------------------------------------


def test_sdk_embed_single_and_list(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    client = ollama.Client(host=proxy.url)
    one = client.embed("nomic-embed-text", input="hello world")
    assert len(one.embeddings) == 1 and len(one.embeddings[0]) == 8
    assert math.isclose(math.hypot(*one.embeddings[0]), 1.0, rel_tol=1e-9)  # L2-normalized as Ollama promises
    assert one.prompt_eval_count and one.total_duration
    many = client.embed("nomic-embed-text", input=["a", "b", "hello world"])
    assert len(many.embeddings) == 3
    assert many.embeddings[2] == one.embeddings[0]  # same text, same vector, in input order
    sent = embedding_requests(fake)[-1].json
    assert sent["model"] == "text-embedding-3-small" and sent["input"] == ["a", "b", "hello world"]


def test_embed_empty_input_answers_without_the_upstream(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    for value in ("", []):
        resp = httpx.post(proxy.url + "/api/embed", json={"model": "nomic-embed-text", "input": value})
        assert resp.json() == {"model": "nomic-embed-text", "embeddings": []}
    resp = httpx.post(proxy.url + "/api/embed", json={"model": "nomic-embed-text"})
    assert resp.json()["embeddings"] == []
    assert embedding_requests(fake) == []


@pytest.mark.parametrize("value", [5, {"a": 1}, [1, 2], ["ok", None], True])
def test_embed_invalid_input_type(proxy: ProxyThread, value: object) -> None:
    resp = httpx.post(proxy.url + "/api/embed", json={"model": "nomic-embed-text", "input": value})
    assert (resp.status_code, resp.json()) == (400, {"error": "invalid input type"})


def test_embed_model_errors(proxy: ProxyThread) -> None:
    missing = httpx.post(proxy.url + "/api/embed", json={"input": "x"})
    assert (missing.status_code, missing.json()) == (404, {"error": "model '' not found"})
    # Ollama's EmbedHandler (v0.33.0-rc2): getModel fails, handleScheduleError words it with Go's %q
    unknown = httpx.post(proxy.url + "/api/embed", json={"model": "nope", "input": "x"})
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": 'model "nope" not found, try pulling it first'},
    )
    legacy = httpx.post(proxy.url + "/api/embeddings", json={"model": 'no"pe:v1', "prompt": "x"})
    assert (legacy.status_code, legacy.json()) == (
        404,
        {"error": 'model "no\\"pe:v1" not found, try pulling it first'},
    )
    chat_model = httpx.post(proxy.url + "/api/embed", json={"model": "gpt-4o", "input": "x"})
    assert chat_model.status_code == 400 and chat_model.json()["error"]


@pytest.mark.parametrize("model", ["text-embedding-3-small", "text-embedding-ada-002", "nomic-embed-text"])
def test_embed_dimensions_shorten_locally_for_any_model(
    proxy: ProxyThread, fake: FakeUpstreamThread, model: str
) -> None:
    """Ollama's EmbedHandler cuts each normalized vector to ``dimensions`` and normalizes it again, for any
    model; the upstream is not asked (OpenAI refuses ``dimensions`` for ada-002, most local servers too)."""
    full = httpx.post(proxy.url + "/api/embed", json={"model": model, "input": "x"}).json()["embeddings"][0]
    body = {"model": model, "input": "x", "dimensions": 4}
    resp = httpx.post(proxy.url + "/api/embed", json=body)
    assert resp.status_code == 200, resp.text
    vector = resp.json()["embeddings"][0]
    assert "dimensions" not in embedding_requests(fake)[-1].json
    norm = math.sqrt(sum(x * x for x in full[:4]))
    assert vector == pytest.approx([x / norm for x in full[:4]], rel=1e-6)
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-6)


def test_big_batch_is_split_and_reassembled_in_order(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(max_embedding_inputs=10)) as fake:
        proxy = start_proxy(fake, embed_batch_size=10, embed_concurrency=3)
        texts = [f"text number {i}" for i in range(47)]
        client = ollama.Client(host=proxy.url)
        together = client.embed("text-embedding-3-small", input=texts).embeddings
        assert len(together) == 47
        assert len(embedding_requests(fake)) == 5
        for i in (0, 9, 10, 46):
            assert together[i] == client.embed("text-embedding-3-small", input=texts[i]).embeddings[0]


def test_one_failed_batch_fails_the_request(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(max_embedding_inputs=10)) as fake:
        proxy = start_proxy(fake, embed_batch_size=10, retry_base_delay=0.01)
        fake.script(Fault(kind="status", status=500, path="/v1/embeddings", times=20))
        body = {"model": "text-embedding-3-small", "input": [f"t{i}" for i in range(30)]}
        resp = httpx.post(proxy.url + "/api/embed", json=body)
        assert resp.status_code == 502 and "upstream error" in resp.json()["error"]


def test_malformed_upstream_vectors_are_502(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig()) as fake:
        proxy = start_proxy(fake)
        nested = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [[0.1, 0.2]]}],
                  "usage": {"prompt_tokens": 1, "total_tokens": 1}}  # fmt: skip
        fake.script(Fault(kind="status", status=200, body=nested, path="/v1/embeddings"))
        resp = httpx.post(proxy.url + "/api/embed", json={"model": "text-embedding-3-small", "input": "x"})
        assert resp.status_code == 502 and "flat list of numbers" in resp.json()["error"]
        short = {"object": "list", "data": [], "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        fake.script(Fault(kind="status", status=200, body=short, path="/v1/embeddings"))
        resp = httpx.post(proxy.url + "/api/embed", json={"model": "text-embedding-3-small", "input": "x"})
        assert resp.status_code == 502 and "0 embeddings for 1 inputs" in resp.json()["error"]


def test_too_long_input_without_truncation_is_ollamas_400(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake)
    message = "This model's maximum context length is 8192 tokens, however you requested 9000"
    error = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "context_length_exceeded",
        }
    }
    fake.script(Fault(kind="status", status=400, body=error, path="/v1/embeddings"))
    body = {"model": "text-embedding-3-small", "input": "x", "truncate": False}
    resp = httpx.post(proxy.url + "/api/embed", json=body)
    assert (resp.status_code, resp.json()) == (400, {"error": "the input length exceeds the context length"})


def test_long_input_is_truncated_by_default(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    long_text = "word " * 40_000  # 200,000 characters: more than 8191 tokens' worth
    resp = httpx.post(proxy.url + "/api/embed", json={"model": "text-embedding-3-small", "input": long_text})
    assert resp.status_code == 200
    assert len(embedding_requests(fake)[-1].json["input"][0]) <= 8191 * 3


def test_body_over_the_limit_is_413_before_any_upstream_call(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    proxy = start_proxy(fake, max_body_bytes=10_000)
    resp = httpx.post(
        proxy.url + "/api/embed", json={"model": "text-embedding-3-small", "input": "x" * 20_000}
    )
    assert resp.status_code == 413 and resp.json()["error"]
    assert embedding_requests(fake) == []


def test_too_many_inputs_is_413_before_any_upstream_call(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    """20,000 one-character inputs (a 100 KB body) were a 650 MB answer; each input is now counted."""
    proxy = start_proxy(fake, max_embed_inputs=3)
    client = ollama.Client(host=proxy.url)
    with pytest.raises(ollama.ResponseError) as refused:
        client.embed("text-embedding-3-small", input=["a"] * 4)
    assert refused.value.status_code == 413
    assert refused.value.error == "too many inputs (limit 3 per request): send them in several requests"
    assert embedding_requests(fake) == []
    assert len(client.embed("text-embedding-3-small", input=["a"] * 3).embeddings) == 3


def test_default_input_cap_refuses_the_fan_out(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    body = {"model": "text-embedding-3-small", "input": ["a"] * 20_000}
    resp = httpx.post(proxy.url + "/api/embed", json=body)
    assert resp.status_code == 413 and "limit 2048 per request" in resp.json()["error"]
    assert embedding_requests(fake) == []


def test_batched_answer_is_one_exact_json_document(
    start_proxy: Callable[..., ProxyThread], caplog: pytest.LogCaptureFixture
) -> None:
    """Batches are serialized one by one and sent as one answer: its length, order and normalization, and
    the request's summary line once the answer is sent."""
    caplog.set_level(logging.INFO, logger="falcon_ollama.request")
    with FakeUpstreamThread(FakeConfig(max_embedding_inputs=4)) as fake:
        proxy = start_proxy(fake, embed_batch_size=4)
        body = {"model": "text-embedding-3-small", "input": [f"t{i}" for i in range(10)]}
        resp = httpx.post(proxy.url + "/api/embed", json=body)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
        assert int(resp.headers["content-length"]) == len(resp.content)
        answer = resp.json()
        assert list(answer) == ["model", "embeddings", "total_duration", "prompt_eval_count"]
        assert answer["model"] == "text-embedding-3-small" and len(answer["embeddings"]) == 10
        assert all(abs(math.hypot(*vector) - 1.0) < 1e-9 for vector in answer["embeddings"])
        one_batch = httpx.post(proxy.url + "/api/embed", json={**body, "input": "t7"})
        assert int(one_batch.headers["content-length"]) == len(one_batch.content)  # sent without a copy
        assert answer["embeddings"][7] == one_batch.json()["embeddings"][0]
        assert len(embedding_requests(fake)) == 4
        deadline = time.monotonic() + 10
        while len(summaries := [r for r in caplog.records if r.name == "falcon_ollama.request"]) < 2:
            assert time.monotonic() < deadline, "no summary line for a streamed /api/embed answer"
            time.sleep(0.05)
        assert [r.fields["status"] for r in summaries] == [200, 200]  # type: ignore[attr-defined]
        gauge = "falcon_ollama_in_flight_requests 0.0"  # nothing in flight (a scrape does not count itself)
        assert gauge in httpx.get(proxy.url + "/metrics").text


# --- /api/embeddings (legacy) ----------------------------------------------------------------------------


def test_sdk_legacy_embeddings(proxy: ProxyThread) -> None:
    client = ollama.Client(host=proxy.url)
    vector = client.embeddings("mxbai-embed-large", prompt="hello world").embedding
    assert len(vector) == 8
    assert not math.isclose(math.hypot(*vector), 1.0)  # the legacy route is not normalized (as in Ollama)
    assert client.embeddings("mxbai-embed-large", prompt="").embedding == []
    resp = httpx.post(proxy.url + "/api/embeddings", json={"prompt": "x"})
    assert (resp.status_code, resp.json()) == (400, {"error": "model is required"})


async def test_async_sdk_embed(proxy: ProxyThread) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    result = await client.embed("all-minilm", input=["a", "b"])
    assert len(result.embeddings) == 2


def test_embed_through_show(proxy: ProxyThread) -> None:
    assert ollama.Client(host=proxy.url).show("nomic-embed-text").capabilities == ["embedding"]


# --- /v1 -------------------------------------------------------------------------------------------------


@pytest.fixture
def oai(proxy: ProxyThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="anything-the-client-has", max_retries=0)


def test_v1_models(oai: openai.OpenAI, proxy: ProxyThread) -> None:
    ids = [m.id for m in oai.models.list()]
    tags = [m["name"] for m in httpx.get(proxy.url + "/api/tags").json()["models"]]
    assert ids == tags
    assert oai.models.retrieve("llama3.2").id == "llama3.2"  # echoed as asked, as Ollama does
    with pytest.raises(openai.NotFoundError) as info:
        oai.models.retrieve("nope")
    assert info.value.body == {"message": "model 'nope' not found", "type": "not_found_error", "param": None,
                               "code": None}  # fmt: skip


def test_v1_chat_non_stream_and_stream(oai: openai.OpenAI, fake: FakeUpstreamThread) -> None:
    reply = oai.chat.completions.create(model="llama3.2", messages=USER)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == expected_text(8)
    sent = fake.requests[-1]
    assert sent.json["model"] == "gpt-4o-mini"  # the alias resolved
    assert sent.headers["authorization"] == "Bearer sk-test-proxy-key-1234567890"  # ours, not the client's
    stream = oai.chat.completions.create(
        model="gpt-4o:latest",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_text(8)
    assert chunks[-1].usage is not None  # passed through untouched


def test_v1_streams_are_relayed_byte_for_byte(proxy: ProxyThread) -> None:
    body = {"model": "gpt-4o", "messages": USER, "stream": True}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body) as resp:
        raw = b"".join(resp.iter_raw())
        assert resp.headers["content-type"].startswith("text/event-stream")
    assert raw.startswith(b"data: {") and raw.endswith(b"data: [DONE]\n\n")


def test_v1_completions_and_embeddings(oai: openai.OpenAI) -> None:
    assert oai.completions.create(model="gpt-4o", prompt="hi").choices[0].text == expected_text(8)
    result = oai.embeddings.create(model="nomic-embed-text", input=["a", "b"])  # base64 by default
    assert [len(d.embedding) for d in result.data] == [8, 8]


def test_v1_errors_keep_openais_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="nope", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as info:  # the upstream's own error, code and param kept
        oai.chat.completions.create(model="gpt-4o", messages=USER, temperature=5)  # type: ignore[arg-type]
    assert info.value.code == "decimal_above_max_value" and info.value.param == "temperature"


def test_v1_rejected_key_is_not_echoed(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(api_key="sk-right")) as fake:
        fake_models = FakeConfig().models
        fake.config.models = fake_models
        proxy = start_proxy(fake, openai_api_key="sk-wrong-secret-999", allow_unlisted_models=True)
        resp = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": USER})
        assert resp.status_code == 502
        assert "sk-" not in resp.text and "999" not in resp.text
        assert resp.json()["error"]["type"] == "api_error"


def test_v1_bad_body(proxy: ProxyThread) -> None:
    resp = httpx.post(proxy.url + "/v1/chat/completions", content=b"{nope")
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    resp = httpx.post(proxy.url + "/v1/chat/completions", json={"messages": USER})
    assert resp.status_code == 400 and "model" in resp.json()["error"]["message"]


def test_v1_disconnect_cancels_the_upstream(start_proxy: Callable[..., ProxyThread]) -> None:
    with FakeUpstreamThread(FakeConfig(tokens=500, token_delay_ms=20)) as fake:
        fake.config.models = FakeConfig().models
        proxy = start_proxy(fake, catalog=load_catalog_file(EXAMPLE_CATALOG))
        body = {"model": "gpt-4o", "messages": USER, "stream": True}
        with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body) as resp:
            next(resp.iter_raw())
            closed_at = time.monotonic()
        deadline = time.monotonic() + 5
        upstream = [r for r in fake.requests if r.path.endswith("/chat/completions")][-1]
        while upstream.disconnected_at is None and time.monotonic() < deadline:
            time.sleep(0.02)
            upstream = [r for r in fake.requests if r.path.endswith("/chat/completions")][-1]
        assert upstream.disconnected_at is not None
        assert upstream.disconnected_at - closed_at < 1.0


@pytest.mark.parametrize("route", ["/api/embed", "/api/embeddings"])
def test_embed_disconnect_before_the_upstream_answers_cancels_it(
    start_proxy: Callable[..., ProxyThread], route: str
) -> None:
    with FakeUpstreamThread(FakeConfig()) as fake:
        proxy = start_proxy(fake, catalog=load_catalog_file(EXAMPLE_CATALOG))
        fake.script(Fault(kind="stall", seconds=4.0, path="/v1/embeddings"))
        body = {"model": "nomic-embed-text", "input": ["a"], "prompt": "a"}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(proxy.url + route, json=body, timeout=0.5)
        closed_at = time.monotonic()
        deadline = closed_at + 6
        while time.monotonic() < deadline:
            sent = embedding_requests(fake)
            if sent and sent[-1].disconnected_at is not None:  # type: ignore[attr-defined]
                break
            time.sleep(0.02)
        upstream: Any = embedding_requests(fake)[-1]
        assert upstream.disconnected_at is not None, "the upstream call outlived its client"
        assert upstream.disconnected_at - closed_at < 1.0
        # The admission slot came back: the proxy still answers embeddings.
        assert httpx.post(proxy.url + route, json=body).status_code == 200


def test_embed_sends_the_request_id_upstream(proxy: ProxyThread, fake: FakeUpstreamThread) -> None:
    body = {"model": "nomic-embed-text", "input": ["a"]}
    resp = httpx.post(proxy.url + "/api/embed", json=body, headers={"X-Request-ID": "embed-42"})
    assert resp.headers["x-request-id"] == "embed-42"
    assert embedding_requests(fake)[-1].headers["x-request-id"] == "embed-42"  # type: ignore[attr-defined]


@pytest.mark.parametrize("dimensions", [0, -1, 2**31])
def test_embed_dimensions_out_of_range_keep_the_whole_vector(proxy: ProxyThread, dimensions: int) -> None:
    """As in Ollama: zero or less, or at least the vector's length, leaves the vector whole."""
    full = httpx.post(proxy.url + "/api/embed", json={"model": "text-embedding-3-small", "input": "x"})
    body = {"model": "text-embedding-3-small", "input": "x", "dimensions": dimensions}
    resp = httpx.post(proxy.url + "/api/embed", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["embeddings"] == full.json()["embeddings"]


@pytest.mark.parametrize("dimensions", ["4", 4.5, True, [4], 10**30])  # 10**30: no Go int either
def test_embed_dimensions_not_an_integer_is_refused(proxy: ProxyThread, dimensions: object) -> None:
    body = {"model": "text-embedding-3-small", "input": "x", "dimensions": dimensions}
    resp = httpx.post(proxy.url + "/api/embed", json=body)
    assert (resp.status_code, resp.json()) == (
        400,
        {"error": "invalid value for 'dimensions': expected an integer"},
    )


def test_upstream_refusing_base64_is_asked_for_numbers(start_proxy: Callable[..., ProxyThread]) -> None:
    """Base64 float32 is asked for first (nothing to parse); a server that refuses it gets numbers, at once
    and from then on for that model, and the vectors are the same either way."""
    with FakeUpstreamThread(FakeConfig()) as fake:
        proxy = start_proxy(fake)
        body = {"model": "text-embedding-3-small", "input": ["a", "b"]}
        as_base64 = httpx.post(proxy.url + "/api/embed", json=body).json()["embeddings"]
        refusal = {
            "error": {
                "message": "Invalid value for 'encoding_format': 'base64' is not supported",
                "type": "invalid_request_error",
                "param": "encoding_format",
                "code": None,
            }
        }
        fake.script(Fault(kind="status", status=400, body=refusal, path="/v1/embeddings"))
        as_numbers = httpx.post(proxy.url + "/api/embed", json=body).json()["embeddings"]
        again = httpx.post(proxy.url + "/api/embed", json=body).json()["embeddings"]
        legacy = {"model": "text-embedding-3-small", "prompt": "a"}
        raw = httpx.post(proxy.url + "/api/embeddings", json=legacy).json()["embedding"]
        formats = [r.json["encoding_format"] for r in embedding_requests(fake)]  # type: ignore[attr-defined]
        assert formats == ["base64", "base64", "float", "float", "float"]
        assert as_numbers == as_base64 == again
        assert math.hypot(*raw) > 2  # the fake's raw vectors are not of unit length: not normalized
        assert [x / math.hypot(*raw) for x in raw] == pytest.approx(as_base64[0], abs=1e-12)


# --- /v1/embeddings dimensions ----------------------------------------------------------------------------


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def test_v1_embeddings_dimensions_shortened_here_for_a_model_that_cannot(
    proxy: ProxyThread, fake: FakeUpstreamThread
) -> None:
    """Ollama's /v1/embeddings goes to EmbedHandler, which shortens any model's vectors; OpenAI (and the
    fake, like it) refuses ``dimensions`` for ada-002."""
    oai = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    full = oai.embeddings.create(model="text-embedding-ada-002", input=["a", "b"]).data
    short = oai.embeddings.create(model="text-embedding-ada-002", input=["a", "b"], dimensions=4).data
    assert "dimensions" not in embedding_requests(fake)[-1].json  # type: ignore[attr-defined]
    for whole, cut in zip(full, short, strict=True):
        assert cut.embedding == pytest.approx(_unit(whole.embedding[:4]), rel=1e-6)
    body = {"model": "text-embedding-ada-002", "input": "a", "dimensions": 4, "encoding_format": "base64"}
    raw = httpx.post(proxy.url + "/v1/embeddings", json=body).json()["data"][0]["embedding"]
    decoded = list(array("f", base64.b64decode(raw)))
    assert decoded == pytest.approx(_unit(full[0].embedding[:4]), rel=1e-5)


def test_v1_embeddings_dimensions_kept_for_a_model_that_shortens_itself(
    proxy: ProxyThread, fake: FakeUpstreamThread
) -> None:
    oai = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    assert (
        len(oai.embeddings.create(model="text-embedding-3-small", input="a", dimensions=4).data[0].embedding)
        == 4
    )
    assert embedding_requests(fake)[-1].json["dimensions"] == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", ["text-embedding-3-small", "text-embedding-ada-002"])
@pytest.mark.parametrize("dimensions", [0, -1, 1536, 10**6])
def test_v1_embeddings_dimensions_out_of_range_is_the_whole_vector(
    proxy: ProxyThread, fake: FakeUpstreamThread, model: str, dimensions: int
) -> None:
    """Ollama leaves the vector whole for zero or less, or at least its length; OpenAI refuses those: not
    sent."""
    whole = httpx.post(proxy.url + "/v1/embeddings", json={"model": model, "input": "a"}).json()
    body = {"model": model, "input": "a", "dimensions": dimensions}
    resp = httpx.post(proxy.url + "/v1/embeddings", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == whole["data"]
    assert "dimensions" not in embedding_requests(fake)[-1].json  # type: ignore[attr-defined]
