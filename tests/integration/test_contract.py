"""Our responses against the contract: golden shapes from ../shared/ollama-api.md and the SDK's own models.

Golden fixtures (tests/fixtures/contract) are examples copied from the contract document. A response of
ours must have every field the golden one has (except Go ``omitempty`` fields whose value is zero for us,
e.g. ``load_duration``), with the same JSON type, recursively. Order is not compared (clients do not care).
Then every response shape is parsed by the real ollama-python pydantic models, as the SDK would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from ollama import _types as sdk

from tests.servers import ProxyThread

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "contract"
# Fields Ollama fills that have no meaning for us and are omitempty in Ollama's Go structs.
OMITTABLE = {"load_duration"}
USER = [{"role": "user", "content": "hi"}]


def golden(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_same_shape(ours: Any, gold: Any, where: str = "$") -> None:
    if isinstance(gold, dict):
        assert isinstance(ours, dict), f"{where}: expected an object, got {ours!r}"
        for key, value in gold.items():
            if key in OMITTABLE and key not in ours:
                continue
            assert key in ours, f"{where}: missing field {key!r}"
            assert_same_shape(ours[key], value, f"{where}.{key}")
    elif isinstance(gold, list):
        assert isinstance(ours, list), f"{where}: expected an array, got {ours!r}"
        if gold and ours:
            assert_same_shape(ours[0], gold[0], f"{where}[0]")
    elif isinstance(gold, bool):
        assert isinstance(ours, bool), f"{where}: expected a boolean, got {ours!r}"
    elif isinstance(gold, int | float):
        assert isinstance(ours, int | float) and not isinstance(ours, bool), f"{where}: expected a number"
    elif isinstance(gold, str):
        assert isinstance(ours, str), f"{where}: expected a string, got {ours!r}"


def lines(resp: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in resp.content.splitlines()]


def test_tags_shape(proxy: ProxyThread) -> None:
    body = httpx.get(proxy.url + "/api/tags").json()
    assert_same_shape(body, golden("tags.json"))
    sdk.ListResponse.model_validate(body)


def test_ps_shape(proxy: ProxyThread) -> None:
    httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER, "stream": False})
    body = httpx.get(proxy.url + "/api/ps").json()
    assert body["models"]
    assert_same_shape(body, golden("ps.json"))
    sdk.ProcessResponse.model_validate(body)


@pytest.mark.parametrize("model", ["gpt-4o", "llama3.2", "text-embedding-3-small", "o4-mini"])
def test_show_shape(proxy: ProxyThread, model: str) -> None:
    body = httpx.post(proxy.url + "/api/show", json={"model": model}).json()
    keys = golden("show_keys.json")
    assert set(keys["required"]) | set(keys["expected"]) <= set(body)
    assert set(keys["details"]) <= set(body["details"])
    arch = body["model_info"]["general.architecture"]
    assert isinstance(body["model_info"][f"{arch}.context_length"], int)
    sdk.ShowResponse.model_validate(body)


def test_chat_stream_shapes(proxy: ProxyThread) -> None:
    chunks = lines(httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}))
    for chunk in chunks[:-1]:
        assert_same_shape(chunk, golden("chat_chunk.json"))
        sdk.ChatResponse.model_validate(chunk)
    assert_same_shape(chunks[-1], golden("chat_final.json"))
    sdk.ChatResponse.model_validate(chunks[-1])


def test_chat_tool_call_shape(proxy: ProxyThread) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
    chunks = lines(
        httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER, "tools": [tool]})
    )
    with_calls = [c for c in chunks if c["message"].get("tool_calls")]
    assert len(with_calls) == 1
    assert_same_shape(with_calls[0], golden("chat_tool_call.json"))
    sdk.ChatResponse.model_validate(with_calls[0])


def test_generate_shapes(proxy: ProxyThread) -> None:
    chunks = lines(httpx.post(proxy.url + "/api/generate", json={"model": "gpt-4o", "prompt": "hi"}))
    for chunk in chunks[:-1]:
        assert_same_shape(chunk, golden("generate_chunk.json"))
        sdk.GenerateResponse.model_validate(chunk)
    assert_same_shape(chunks[-1], golden("generate_final.json"))
    sdk.GenerateResponse.model_validate(chunks[-1])


def test_load_and_unload_shapes(proxy: ProxyThread) -> None:
    load = httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": []}).json()
    assert_same_shape(load, golden("chat_load.json"))
    assert load["done_reason"] == "load"
    sdk.ChatResponse.model_validate(load)
    unload = httpx.post(proxy.url + "/api/generate", json={"model": "gpt-4o", "keep_alive": 0}).json()
    assert_same_shape(unload, golden("generate_unload.json"))
    assert unload["done_reason"] == "unload"
    sdk.GenerateResponse.model_validate(unload)


def test_pull_stream_shape(proxy: ProxyThread) -> None:
    ours = lines(httpx.post(proxy.url + "/api/pull", json={"model": "gpt-4o"}))
    gold = golden("pull_stream.json")
    assert ours[0]["status"] == gold[0]["status"]
    assert ours[-1] == gold[-1] == {"status": "success"}
    for chunk in ours:
        sdk.ProgressResponse.model_validate(chunk)


@pytest.mark.parametrize("case", golden("errors.json"), ids=lambda c: c["case"])
def test_error_texts(proxy: ProxyThread, case: dict[str, Any]) -> None:
    content = (
        case["raw"].encode() if "raw" in case else (orjson.dumps(case["body"]) if "body" in case else b"")
    )
    resp = httpx.request(case["method"], proxy.url + case["path"], content=content)
    assert resp.status_code == case["status"]
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {"error": case["error"]}
