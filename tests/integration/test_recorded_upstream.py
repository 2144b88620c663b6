"""Our proxy in front of a replay of llama.cpp's recorded answers, driven by the ollama-python SDK.

The replay server answers each upstream request with the bytes llama.cpp sent for the matching recorded
request (tests/fixtures/real/llamacpp), so the whole chain -- catalog, translators, relay, SSE decoding --
is exercised on real-world answers, and ollama-python's own models must accept what comes out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ollama
import pytest

from falcon_ollama.catalog_config import load_catalog_file
from falcon_ollama.translate.chat_request import SCHEMA_INSTRUCTION
from tests.real_fixtures import Recorded, last_finish_reason, llamacpp_cases, sse_events, streamed_content
from tests.servers import ProxyThread

USER = [{"role": "user", "content": "Say hello in one word."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class ReplayUpstream:
    """A loopback HTTP server answering with recorded llama.cpp exchanges, chosen by the request."""

    def __init__(self) -> None:
        self.cases = llamacpp_cases()
        self.override: dict[str, str] = {}  # path -> case name, for the refusal tests
        self.delay: dict[str, float] = {}  # path -> seconds before answering
        self.raw: dict[str, tuple[int, bytes]] = {}  # path -> (status, body) not recorded (hostile answers)
        self.requests: list[tuple[str, str, Any]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length))

            def _answer(self, raw: bytes | None) -> None:
                body = json.loads(raw) if raw else None
                replay.requests.append((self.command, self.path, body))
                case = replay.pick(self.command, self.path, body)
                pause = replay.delay.get(self.path.split("?")[0])
                if pause:
                    time.sleep(pause)
                raw = replay.raw.get(self.path.split("?")[0])
                if raw is not None:
                    case = Recorded(
                        "raw", self.command, self.path, None, False, raw[0], "application/json", raw[1]
                    )
                self.send_response(case.status)
                self.send_header("Content-Type", case.content_type)
                self.send_header("Content-Length", str(len(case.body)))
                self.end_headers()
                self.wfile.write(case.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def pick(self, method: str, path: str, body: Any) -> Recorded:
        path = path.split("?")[0]
        if path in self.override:
            return self.cases[self.override[path]]
        if method == "GET" and path == "/v1/models":
            return self.cases["models"]
        if path == "/v1/chat/completions":
            if (body.get("response_format") or {}).get("type") == "json_schema":
                return self.cases["error_response_format_json_schema"]  # llama.cpp refuses every one
            name = "chat_tool_call" if body.get("tools") else "chat"
            return self.cases[name + ("_stream" if body.get("stream") else "")]
        if path == "/v1/completions":  # only the context probe uses it: a prompt above the 2,048 served
            return self.cases["completions_context_exceeded"]
        if path == "/v1/embeddings":
            if body["model"] == "tiny-llama":
                return self.cases["embeddings_per_token"]
            return self.cases["embeddings_single" if len(body["input"]) == 1 else "embeddings"]
        return self.cases["error_unknown_path"]

    def __enter__(self) -> ReplayUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as upstream:
        yield upstream


@pytest.fixture
def sdk(replay: ReplayUpstream, start_proxy: Callable[..., ProxyThread]) -> ollama.Client:
    """Without the context probe, whose requests would count in the tests that count (its own are below)."""
    replay.override.clear()
    replay.delay.clear()
    proxy = start_proxy(replay, context_probe_tokens=0)
    return ollama.Client(host=proxy.url, timeout=30)


def recorded_json(replay: ReplayUpstream, name: str) -> Any:
    return replay.cases[name].json()


def test_tags_and_show(sdk: ollama.Client) -> None:
    listed = sdk.list()
    names = sorted(m.model for m in listed.models if m.model)
    assert names == ["tiny-embed:latest", "tiny-llama:latest"]
    for m in listed.models:
        assert m.modified_at is not None  # llama.cpp's listing has no "created": a fallback time is used
    shown = sdk.show("tiny-llama")
    assert shown.modelinfo and any(k.endswith(".context_length") for k in shown.modelinfo)


def test_chat(sdk: ollama.Client, replay: ReplayUpstream) -> None:
    answer = sdk.chat(model="tiny-llama", messages=USER, options={"temperature": 0})
    choice = recorded_json(replay, "chat")["choices"][0]
    assert answer.message.content == choice["message"]["content"]
    assert answer.done and answer.done_reason == choice["finish_reason"]
    assert answer.eval_count == recorded_json(replay, "chat")["usage"]["completion_tokens"]


def test_chat_stream(sdk: ollama.Client, replay: ReplayUpstream) -> None:
    parts = list(sdk.chat(model="tiny-llama", messages=USER, stream=True))
    events = sse_events(replay.cases["chat_stream"].body)
    assert "".join(p.message.content or "" for p in parts) == streamed_content(events)
    assert parts[-1].done and parts[-1].done_reason == last_finish_reason(events)
    assert all(not p.done for p in parts[:-1])


@pytest.mark.parametrize(("tools", "case"), [([], "chat"), ([WEATHER], "chat_tool_call")])
def test_stream_counts_agree_with_the_unstreamed_usage(
    sdk: ollama.Client, replay: ReplayUpstream, tools: list[Any], case: str
) -> None:
    """llama.cpp streams no usage (issue 12): the estimate of the same request streamed stays within the
    tolerance docs/api.md states of the counts llama.cpp gives unstreamed -- eval_count within 2 tokens or
    10% (one event a token, empty ones included), prompt_eval_count within 4x (this model's byte-level
    vocabulary spends a token a byte; the estimate assumes a real tokenizer's 4 characters a token)."""
    usage = recorded_json(replay, case)["usage"]
    whole = sdk.chat(model="tiny-llama", messages=USER, tools=tools)
    assert (whole.prompt_eval_count, whole.eval_count) == (usage["prompt_tokens"], usage["completion_tokens"])
    last = list(sdk.chat(model="tiny-llama", messages=USER, tools=tools, stream=True))[-1]
    assert last.done and last.eval_count is not None and last.prompt_eval_count is not None
    assert abs(last.eval_count - usage["completion_tokens"]) <= max(2, usage["completion_tokens"] // 10)
    assert usage["prompt_tokens"] / 4 <= last.prompt_eval_count <= usage["prompt_tokens"]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call(sdk: ollama.Client, replay: ReplayUpstream, stream: bool) -> None:
    recorded = replay.cases["chat_tool_call_stream" if stream else "chat_tool_call"]
    if stream:
        names = {
            f["function"]["name"]
            for e in sse_events(recorded.body)
            for f in e["choices"][0]["delta"].get("tool_calls") or []
        }
    else:
        names = {
            c["function"]["name"] for c in recorded.json()["choices"][0]["message"].get("tool_calls") or []
        }
    result = sdk.chat(model="tiny-llama", messages=USER, tools=[WEATHER], stream=stream)
    parts = list(result) if stream else [result]
    calls = [c for p in parts for c in p.message.tool_calls or []]
    assert {c.function.name for c in calls} == names
    for call in calls:
        assert isinstance(call.function.arguments, dict)  # cut JSON arrives as {"raw": ...}, not an error


@pytest.mark.parametrize("stream", [False, True])
def test_format_schema_falls_back_to_json_mode(
    sdk: ollama.Client, replay: ReplayUpstream, stream: bool
) -> None:
    """llama.cpp's recorded refusal of json_schema (issue 12): one refused request, then the same in JSON
    mode with the schema stated in a system message, whose answer the client gets."""
    schema = {"type": "object", "properties": {"word": {"type": "string"}}}
    before = len(replay.requests)
    result = sdk.chat(model="tiny-llama", messages=USER, format=schema, stream=stream)
    parts = list(result) if stream else [result]
    assert parts[-1].done
    sent = [body for _, path, body in replay.requests[before:] if path == "/v1/chat/completions"]
    assert [b["response_format"]["type"] for b in sent] == ["json_schema", "json_object"]
    assert sent[1]["messages"] == [
        {"role": "system", "content": f"{SCHEMA_INSTRUCTION}\n{json.dumps(schema, separators=(',', ':'))}"},
        *USER,
    ]


def test_embed(sdk: ollama.Client, replay: ReplayUpstream) -> None:
    result = sdk.embed(model="tiny-embed", input=["hello", "world"])
    recorded = [d["embedding"] for d in recorded_json(replay, "embeddings")["data"]]
    assert len(result.embeddings) == 2
    for got, raw in zip(result.embeddings, recorded, strict=True):
        norm = sum(x * x for x in raw) ** 0.5
        assert got == pytest.approx([x / norm for x in raw], rel=1e-6)


def test_per_token_embeddings_are_a_clear_error(sdk: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        sdk.embed(model="tiny-llama", input="hello world")
    assert caught.value.status_code == 502
    assert "flat list of numbers" in caught.value.error


@pytest.mark.parametrize(
    "case", ["error_bad_json", "error_response_format_json_schema", "error_messages_type"]
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_refusals_become_ollama_errors(
    sdk: ollama.Client, replay: ReplayUpstream, case: str, stream: bool
) -> None:
    """llama.cpp refuses with 500 (JSON, or text/plain for bad JSON) or 400: an Ollama error, never a hang.

    Its request-validation 500s (issue 12) say the request cannot be served: 400 with the message's first
    useful part, no traceback line or path of the server's files, and no retry (one upstream request);
    a bare "Internal Server Error" is still a 502 after the retries."""
    replay.override["/v1/chat/completions"] = case
    before = len(replay.requests)
    with pytest.raises(ollama.ResponseError) as caught:
        result = sdk.chat(model="tiny-llama", messages=USER, stream=stream)
        if stream:
            list(result)
    refused = case != "error_bad_json"
    assert caught.value.status_code == (400 if refused else 502)
    message = caught.value.error
    if refused:
        assert message.startswith("the upstream refused the request (HTTP 500): 1 validation error: {'type'")
    else:
        assert message == "upstream error (HTTP 500): Internal Server Error"
    for internal in ("Traceback", "File ", ".py", "~/", "site-packages", "line 376"):
        assert internal not in message
    assert len(replay.requests) - before == (1 if refused else 3)


def test_served_context_learnt_from_the_over_long_prompt_refusal(
    sdk: ollama.Client, replay: ReplayUpstream
) -> None:
    """llama-cpp-python publishes its served context nowhere (no /props, no ``meta``): its refusal of an
    over-long prompt names it (2,048), and from then on /api/show and /api/tags say 2,048, not the default."""
    assert sdk.show("tiny-llama").modelinfo["tiny.context_length"] == 8192  # type: ignore[index]
    replay.override["/v1/chat/completions"] = "error_context_exceeded"
    with pytest.raises(ollama.ResponseError) as caught:
        sdk.chat(model="tiny-llama", messages=USER)
    assert caught.value.status_code == 400
    assert "maximum context length is 2048 tokens" in caught.value.error
    replay.override.clear()
    assert sdk.show("tiny-llama").modelinfo["tiny.context_length"] == 2048  # type: ignore[index]
    tags = sdk._client.get("/api/tags").json()  # raw: the SDK's ModelDetails drops context_length
    contexts = {m["name"]: m["details"]["context_length"] for m in tags["models"]}
    assert contexts == {"tiny-llama:latest": 2048, "tiny-embed:latest": 8192}


def _probes(replay: ReplayUpstream) -> list[Any]:
    return [body for method, path, body in replay.requests if path == "/v1/completions"]


def _contexts(client: ollama.Client) -> dict[str, int]:
    tags = client._client.get("/api/tags").json()  # raw: the SDK's ModelDetails drops context_length
    return {m["name"]: m["details"]["context_length"] for m in tags["models"]}


def test_context_probe_names_the_served_context_before_the_first_list(
    replay: ReplayUpstream, start_proxy: Callable[..., ProxyThread]
) -> None:
    """A llama-cpp-python list (owned_by "me") is followed by one probe per model: a 1-token completion of a
    prompt of FALCON_OLLAMA_CONTEXT_PROBE_TOKENS words, refused before evaluation with the served context
    (the recorded refusal names 2,048). The very first /api/tags and /api/show report it; nothing is probed
    again."""
    replay.override.clear()
    before = len(_probes(replay))
    client = ollama.Client(host=start_proxy(replay, context_probe_tokens=3000).url, timeout=30)
    assert _contexts(client) == {"tiny-llama:latest": 2048, "tiny-embed:latest": 2048}
    assert client.show("tiny-llama").modelinfo["tiny.context_length"] == 2048  # type: ignore[index]
    probes = _probes(replay)[before:]
    assert sorted(p["model"] for p in probes) == ["tiny-embed", "tiny-llama"]
    for probe in probes:
        assert len(probe["prompt"].split()) == 3000 and probe["max_tokens"] == 1
    client.chat(model="tiny-llama", messages=USER)
    assert _contexts(client)["tiny-llama:latest"] == 2048
    assert len(_probes(replay)) - before == 2


def test_context_probe_skips_what_the_catalog_says_is_bounded_and_can_be_turned_off(
    replay: ReplayUpstream, start_proxy: Callable[..., ProxyThread], tmp_path: Path
) -> None:
    replay.override.clear()
    toml = tmp_path / "catalog.toml"
    toml.write_text('[models."tiny-llama"]\ncontext_length = 4096\n')
    before = len(_probes(replay))
    client = ollama.Client(host=start_proxy(replay, catalog=load_catalog_file(toml)).url, timeout=30)
    assert _contexts(client) == {"tiny-llama:latest": 4096, "tiny-embed:latest": 2048}
    assert [p["model"] for p in _probes(replay)[before:]] == ["tiny-embed"]

    # a model the catalog hides is not asked (on a multi-model server each probe loads its model)
    hidden = tmp_path / "hidden.toml"
    hidden.write_text('[listing]\nexclude = ["tiny-embed"]\n')
    before = len(_probes(replay))
    client = ollama.Client(host=start_proxy(replay, catalog=load_catalog_file(hidden)).url, timeout=30)
    assert _contexts(client) == {"tiny-llama:latest": 2048}
    assert [p["model"] for p in _probes(replay)[before:]] == ["tiny-llama"]

    before = len(_probes(replay))
    client = ollama.Client(host=start_proxy(replay, context_probe_tokens=0).url, timeout=30)
    assert _contexts(client) == {"tiny-llama:latest": 8192, "tiny-embed:latest": 8192}
    assert _probes(replay)[before:] == []

    # FALCON_OLLAMA_CONTEXT_PROBE_MODELS: the first N models of a list (in its order) per refresh
    client = ollama.Client(host=start_proxy(replay, context_probe_models=1).url, timeout=30)
    assert _contexts(client) == {"tiny-llama:latest": 2048, "tiny-embed:latest": 8192}
    assert [p["model"] for p in _probes(replay)[before:]] == ["tiny-llama"]


def test_a_probe_that_gets_no_answer_holds_nothing_up(
    replay: ReplayUpstream, start_proxy: Callable[..., ProxyThread], caplog: pytest.LogCaptureFixture
) -> None:
    """An upstream that sits on the probe: the first list waits for it at most a moment (2 s), each probe
    ends at FALCON_OLLAMA_CONTEXT_PROBE_TIMEOUT, the defaults stand, and a log line says so."""
    replay.override.clear()
    replay.delay["/v1/completions"] = 3.0
    caplog.set_level(logging.INFO, logger="falcon_ollama.catalog")
    try:
        client = ollama.Client(host=start_proxy(replay, context_probe_timeout=0.5).url, timeout=30)
        started = time.monotonic()
        assert _contexts(client) == {"tiny-llama:latest": 8192, "tiny-embed:latest": 8192}
        assert time.monotonic() - started < 2.9  # the probes' 2 x 0.5 s, not the upstream's 2 x 3 s
        assert client.chat(model="tiny-llama", messages=USER).done
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "did not name the context of 'tiny-embed'" not in caplog.text:
            time.sleep(0.05)
        assert "did not name the context of 'tiny-llama' when asked (no answer" in caplog.text
        assert "did not name the context of 'tiny-embed' when asked (no answer" in caplog.text
    finally:
        replay.delay.clear()


@pytest.mark.parametrize(
    "answer",
    [
        (400, b"[" * 60_000),  # nested deeper than Python's stack: the stdlib decoder's RecursionError
        (400, b'{"error": {"message": "maximum context length is 99999999999 tokens"}}'),
        (200, b'{"choices": [{"text": "hello"}]}'),  # a server that evaluated the prompt
        (500, b"\xff\xfe not json"),
    ],
)
def test_a_hostile_probe_answer_teaches_nothing_and_breaks_nothing(
    replay: ReplayUpstream, start_proxy: Callable[..., ProxyThread], answer: tuple[int, bytes]
) -> None:
    """Whatever the probe gets back, the list is served with its defaults, each model is asked once, and
    the worker serves chat as before."""
    replay.override.clear()
    replay.raw["/v1/completions"] = answer
    try:
        before = len(_probes(replay))
        client = ollama.Client(host=start_proxy(replay).url, timeout=30)
        assert _contexts(client) == {"tiny-llama:latest": 8192, "tiny-embed:latest": 8192}
        assert client.chat(model="tiny-llama", messages=USER).done
        assert _contexts(client) == {"tiny-llama:latest": 8192, "tiny-embed:latest": 8192}
        assert sorted(p["model"] for p in _probes(replay)[before:]) == ["tiny-embed", "tiny-llama"]
    finally:
        replay.raw.clear()
