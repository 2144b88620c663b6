"""The bundled fake upstream checked against answers it did not write.

- Default mode (imitates OpenAI): its answers have every key of OpenAI's published examples with the same
  JSON types and SSE framing, and its 400/401/404/429 refusals match OpenAI's published error bodies
  (status, type, param, code and message) -- tests/fixtures/real/openai.
- llama.cpp mode (``models_have_created_owned_by=False, answer_any_model=True, send_usage=False``): its
  answers have the keys and types of llama.cpp's recorded answers -- tests/fixtures/real/llamacpp.

Both are real HTTP servers on loopback, driven with raw HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, Fault
from tests.real_fixtures import (
    Recorded,
    llamacpp_cases,
    openai_bytes,
    openai_json,
    shape_differences,
    sse_events,
    sse_payloads,
)

USER = [{"role": "user", "content": "Say hello in one word."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PICK_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
LLAMA_MODE = {
    "models_have_created_owned_by": False,
    "answer_any_model": True,
    "send_usage": False,
    "reject_unknown_params": False,
    "accept_json_schema": False,
}
# What llama-cpp-python sends that the fake does not imitate (the proxy ignores it; the replay test in
# test_recorded_upstream.py runs the proxy on these very bytes): the legacy "function_call" beside
# "tool_calls", explicit nulls instead of absent keys, and id/type/name repeated in every tool-call fragment.
LLAMA_EXTRAS = frozenset({"function_call"})
LLAMA_COMPARE: dict[str, Any] = {"null_is_absent": True, "ignore": LLAMA_EXTRAS}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig()) as upstream:
        yield upstream


@pytest.fixture
def client(fake: FakeUpstreamThread) -> Iterator[httpx.Client]:
    fake.reset()
    fake.config = FakeConfig()
    with httpx.Client(base_url=fake.url, timeout=10) as c:
        yield c


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def assert_sse_framing(raw: bytes) -> None:
    """One-line ``data:`` JSON events ending with ``data: [DONE]``, as OpenAI and llama.cpp send."""
    assert raw.endswith(b"data: [DONE]\n\n") or raw.endswith(b"data: [DONE]\r\n\r\n"), raw[-40:]
    payloads = sse_payloads(raw)
    assert payloads[-1] == b"[DONE]" and b"[DONE]" not in payloads[:-1]
    for payload in payloads[:-1]:
        assert b"\n" not in payload
        json.loads(payload)


def assert_event_shapes(ours: list[dict[str, Any]], reference: list[dict[str, Any]], **compare: Any) -> None:
    """First, content and finishing events compared with the reference's events of the same role."""

    def roles(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        picked: dict[str, dict[str, Any]] = {}
        for e in events:
            choices = e.get("choices") or []
            if not choices:
                picked.setdefault("usage", e)
            elif choices[0].get("finish_reason"):
                picked.setdefault("finish", e)
            elif "role" in choices[0].get("delta", {}):
                picked.setdefault("first", e)
            elif choices[0]["delta"].get("tool_calls"):
                picked.setdefault("tool_fragment", e)
            elif choices[0]["delta"].get("content"):
                picked.setdefault("content", e)
        return picked

    mine, theirs = roles(ours), roles(reference)
    assert set(theirs) <= set(mine), f"events the reference has and we lack: {set(theirs) - set(mine)}"
    for role, event in theirs.items():
        assert shape_differences(mine[role], event, **compare) == [], role


# -- default mode against OpenAI's published examples ----------------------------------------------------


def test_models_list_matches_openai(client: httpx.Client) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200 and media_type(r.headers["content-type"]) == "application/json"
    assert shape_differences(r.json(), openai_json("models_list.json"), nullable=False) == []


def test_chat_completion_matches_openai(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER, "max_tokens": 8})
    assert r.status_code == 200 and media_type(r.headers["content-type"]) == "application/json"
    assert shape_differences(r.json(), openai_json("chat_completion.json")) == []


def test_tool_call_completion_matches_openai(client: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini", "messages": USER, "tools": [WEATHER], "tool_choice": PICK_WEATHER}
    r = client.post("/v1/chat/completions", json=body)
    assert shape_differences(r.json(), openai_json("chat_completion_tool_calls.json")) == []
    assert r.json()["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("fixture", "extra"),
    [
        ("chat_stream.sse", {}),
        ("chat_stream_include_usage.sse", {"stream_options": {"include_usage": True}}),
        ("chat_stream_tool_calls.sse", {"tools": [WEATHER], "tool_choice": PICK_WEATHER}),
    ],
)
def test_stream_matches_openai(client: httpx.Client, fixture: str, extra: dict[str, Any]) -> None:
    body = {"model": "gpt-4o-mini", "messages": USER, "stream": True, "max_tokens": 4, **extra}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200 and media_type(r.headers["content-type"]) == "text/event-stream"
    assert_sse_framing(r.content)
    reference = sse_events(openai_bytes(fixture))
    ours = sse_events(r.content)
    assert_event_shapes(ours, reference)
    # Keys present on every reference event (e.g. "usage": null with include_usage) are on every one of ours.
    common = set.intersection(*(set(e) for e in reference))
    for event in ours:
        assert common <= set(event), common - set(event)


def test_streamed_tool_call_fragments_match_openai(client: httpx.Client) -> None:
    """After the first fragment OpenAI sends only ``index`` and ``function.arguments``."""
    body = {"model": "gpt-4o-mini", "messages": USER, "stream": True, "tools": [WEATHER]}
    r = client.post("/v1/chat/completions", json=body | {"tool_choice": PICK_WEATHER})

    def fragments(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [f for e in events if e["choices"] for f in e["choices"][0]["delta"].get("tool_calls") or []]

    ours, reference = (
        fragments(sse_events(r.content)),
        fragments(sse_events(openai_bytes("chat_stream_tool_calls.sse"))),
    )
    assert set(ours[0]) == set(reference[0]) and set(ours[0]["function"]) == set(reference[0]["function"])
    for frag in ours[1:]:
        assert set(frag) == set(reference[1]) and set(frag["function"]) == set(reference[1]["function"])


def test_embeddings_match_openai(client: httpx.Client) -> None:
    r = client.post("/v1/embeddings", json={"model": "text-embedding-ada-002", "input": "hello"})
    assert r.status_code == 200
    assert shape_differences(r.json(), openai_json("embeddings.json"), nullable=False) == []


ERROR_CASES = openai_json("errors.json")


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["name"] for c in ERROR_CASES])
def test_refusals_match_openai(fake: FakeUpstreamThread, client: httpx.Client, case: dict[str, Any]) -> None:
    request = case["request"]
    headers = {"Authorization": "Bearer sk-test"}
    if isinstance(request, str):
        r = client.post(
            "/v1/chat/completions", content=request, headers=headers | {"Content-Type": "application/json"}
        )
    else:
        body = {"messages": USER} | {k: v for k, v in request.items() if k != "authorization"}
        if "authorization" in request:
            fake.config.api_key = "sk-the-right-key-1234"
            headers["Authorization"] = request["authorization"]
        if case["status"] == 429:
            fake.script(Fault("status", status=429, model=body["model"]))
        r = client.post("/v1/chat/completions", json=body, headers=headers)
    want = case["body"]["error"]
    assert r.status_code == case["status"], r.text
    assert media_type(r.headers["content-type"]) == "application/json"
    got = r.json()
    assert set(got) == {"error"} and set(got["error"]) == {"message", "type", "param", "code"}
    assert (got["error"]["type"], got["error"]["param"], got["error"]["code"]) == (
        want["type"],
        want["param"],
        want["code"],
    )
    if case["compare"] == "exact":
        assert got["error"]["message"] == want["message"]
    else:
        assert got["error"]["message"].startswith(case["prefix"]), got["error"]["message"]


# -- llama.cpp mode against the recorded llama.cpp answers -----------------------------------------------

REAL = llamacpp_cases()
# Answers llama.cpp gave with 200, except to a request OpenAI refuses and the fake refuses like OpenAI
# (a body without "messages") and the chat model's per-token embeddings, which the fake does not imitate.
NOT_IMITATED = {"error_missing_messages", "embeddings_per_token"}
SUCCESSES = [
    name
    for name, c in REAL.items()
    if c.status == 200 and c.path.startswith("/v1/") and name not in NOT_IMITATED
]


def replay(client: httpx.Client, case: Recorded) -> httpx.Response:
    if case.method == "GET":
        return client.get(case.path)
    if case.request_is_raw:
        return client.post(case.path, content=case.request, headers={"Content-Type": "application/json"})
    return client.post(case.path, json=case.request)


@pytest.mark.parametrize("name", SUCCESSES)
def test_llama_mode_matches_llamacpp(fake: FakeUpstreamThread, client: httpx.Client, name: str) -> None:
    fake.config = FakeConfig(models=["tiny-llama", "tiny-embed"], **LLAMA_MODE)
    real = REAL[name]
    r = replay(client, real)
    assert r.status_code == real.status, r.text
    assert media_type(r.headers["content-type"]) == media_type(real.content_type)
    if media_type(real.content_type) == "text/event-stream":
        assert_sse_framing(r.content)
        ours, theirs = sse_events(r.content), sse_events(real.body)
        strip = [e for e in theirs if not (e["choices"] and e["choices"][0]["delta"].get("tool_calls"))]
        assert_event_shapes(ours, strip or theirs, **LLAMA_COMPARE)
        assert streamed_fragment_keys(ours) <= streamed_fragment_keys(theirs)
        assert not any(e.get("usage") for e in sse_events(r.content))  # llama.cpp never sends usage
    else:
        assert shape_differences(r.json(), real.json(), **LLAMA_COMPARE) == []


def test_llama_mode_refuses_json_schema_as_llamacpp_does(
    client: httpx.Client, fake: FakeUpstreamThread
) -> None:
    """Same status, shape and words before the traceback line as the recorded refusal (the path differs)."""
    fake.config = FakeConfig(models=["tiny-llama"], **LLAMA_MODE)
    real = REAL["error_response_format_json_schema"]
    r = replay(client, real)
    assert r.status_code == real.status == 500
    assert shape_differences(r.json(), real.json()) == []
    ours, theirs = r.json()["error"]["message"], real.json()["error"]["message"]
    assert ours.split("  File ")[0] == theirs.split("  File ")[0]
    assert r.json()["error"]["type"] == real.json()["error"]["type"] == "internal_server_error"


@pytest.mark.parametrize("name", ["error_context_exceeded", "completions_context_exceeded"])
def test_llama_mode_refuses_an_over_long_prompt_as_llamacpp_does(
    client: httpx.Client, fake: FakeUpstreamThread, name: str
) -> None:
    """With llama-cpp-python's n_ctx (2,048 in the recording), the same status, error object and words; only
    the token counts differ (the fake counts words, the real server its vocabulary's tokens). The proxy's
    context probe relies on the completion route's wording."""
    fake.config = FakeConfig(models=["tiny-llama"], context_window=2048, **LLAMA_MODE)
    real = REAL[name]
    r = replay(client, real)
    assert r.status_code == real.status == 400
    ours, theirs = r.json()["error"], real.json()["error"]
    assert {k: v for k, v in ours.items() if k != "message"} == {
        k: v for k, v in theirs.items() if k != "message"
    }
    assert re.sub(r"\d+", "N", ours["message"]) == re.sub(r"\d+", "N", theirs["message"])
    assert "maximum context length is 2048 tokens" in ours["message"] and "2048" in theirs["message"]
    fake.config.context_window = 0
    assert replay(client, real).status_code == 200


def streamed_fragment_keys(events: list[dict[str, Any]]) -> set[str]:
    """Every key path used in streamed tool-call fragments (``index``, ``function.arguments``...)."""
    keys: set[str] = set()
    for e in events:
        for frag in (e["choices"][0]["delta"].get("tool_calls") or []) if e["choices"] else []:
            keys |= {k for k in frag if k != "function"} | {f"function.{k}" for k in frag.get("function", {})}
    return keys
