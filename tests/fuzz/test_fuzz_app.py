"""Property-based fuzzing of every POST route, in process, against a real fake upstream.

Hypothesis generates request bodies per route: valid ones, near-valid ones (wrong types, missing and extra
fields, huge numbers, deep nesting, NUL and non-UTF-8 bytes, duplicate keys, empty and very long strings,
unicode) and hostile raw bytes. Each goes straight into the ASGI app (no sockets on our side; the upstream is
the bundled fake on loopback), and every answer must hold:

- no 5xx but the mapped upstream failures (502/503/504), and those with a JSON error body;
- every error is ``{"error": "<non-empty str>"}`` (OpenAI's shape under ``/v1``) with a JSON content type;
- nothing logged at ERROR by falcon_ollama (an unhandled exception is logged there);
- streamed answers are NDJSON (one object per line, no blank line) ending in ``done: true`` (or the pull's
  ``success``) or in an error line, and every answer matches ``docs/openapi.yaml``;
- ``/api/ps`` still answers afterwards (requests must not poison per-worker state).

A second fuzzer scripts the fake upstream to misbehave (error statuses, HTML, stalls, cut or garbage
streams) under valid requests, with the same checks.

Bounded for CI: derandomized, ``FUZZ_EXAMPLES`` examples per route (200 by default). Run longer locally
with e.g. ``FUZZ_EXAMPLES=3000 FUZZ_RANDOM=1 pytest tests/fuzz/test_fuzz_app.py``. Each bug the fuzzing
found has a regression test at the end of this file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from falcon.testing import ASGIConductor
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from fake_openai import FAULT_KINDS, FakeConfig, FakeUpstreamThread, Fault
from falcon_ollama.app import FalconOllamaApp, create_app
from falcon_ollama.catalog_config import load_catalog_file
from falcon_ollama.settings import Settings
from tests.conftest import EXAMPLE_CATALOG, proxy_settings
from tests.fuzz import (
    MAPPED_UPSTREAM_FAILURES,
    ErrorLogs,
    error_problems,
    json_depth,
    media_type,
    ndjson_lines,
    not_sendable,
    response_problems,
    sse_problems,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
MAX_BODY = 64 * 1024  # small, so that the 413 path is reachable with generated bodies
REQUEST_TIMEOUT = 30.0

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),  # FUZZ_RANDOM=1: a new random seed per run (local hunting)
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


# --- the app in process -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


class InProcessApp:
    """The ASGI app on a private event loop: lifespan started once, requests driven directly.

    The ASGI ``receive`` hands over the body, then blocks until the response is complete before reporting a
    disconnect, like a client that waits for the whole answer (Falcon's simulate_* disconnect at once, which
    our disconnect watcher rightly treats as a gone client)."""

    def __init__(self, app: FalconOllamaApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._conductor = ASGIConductor(app)

    def __enter__(self) -> InProcessApp:
        self.loop.run_until_complete(self._conductor.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.loop.run_until_complete(self._conductor.__aexit__(None, None, None))
        finally:
            self.loop.close()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, chunk: int = 0
    ) -> Reply:
        coro = self._request(method, path, body, headers or {}, chunk)
        return self.loop.run_until_complete(asyncio.wait_for(coro, REQUEST_TIMEOUT))

    async def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str], chunk: int
    ) -> Reply:
        raw_headers = [(b"host", b"127.0.0.1:11434")]
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 11434),
        }
        size = chunk if chunk > 0 else max(len(body), 1)
        pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        complete = asyncio.Event()
        status = 0
        response_headers: dict[str, str] = {}
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if pieces:
                piece = pieces.pop(0)
                return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    response_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    complete.set()

        try:
            await self.app(scope, receive, send)
        finally:
            complete.set()
        return Reply(status, response_headers, b"".join(parts))


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig(record=False)) as fake:
        yield fake


def fuzz_settings(fake: FakeUpstreamThread) -> Settings:
    return proxy_settings(
        fake,
        catalog=load_catalog_file(EXAMPLE_CATALOG),
        catalog_path=str(EXAMPLE_CATALOG),
        max_body_bytes=MAX_BODY,
        max_retries=0,  # the fake answers at once; a retry only slows a failing example down
        embed_batch_size=16,  # several batches (and their concurrency) for generated input lists
    )


@pytest.fixture(scope="module")
def error_logs() -> Iterator[ErrorLogs]:
    with ErrorLogs.capture() as handler:
        yield handler


@pytest.fixture(scope="module")
def app(upstream: FakeUpstreamThread, error_logs: ErrorLogs) -> Iterator[InProcessApp]:
    with InProcessApp(create_app(fuzz_settings(upstream))) as running:
        warm = running.request("GET", "/api/tags")
        assert warm.status == 200, warm
        yield running


# --- strategies -------------------------------------------------------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="
CHAT_MODELS = ["gpt-4o", "gpt-4o-mini", "o4-mini", "llama3.2", "deepseek-r1:latest", "GPT-4O:Latest", "llava"]
EMBED_MODELS = ["text-embedding-3-small", "nomic-embed-text", "all-minilm:latest", "TEXT-EMBEDDING-3-SMALL"]
ODD_MODELS = [
    "",
    " ",
    "nope",
    "whisper-1",
    "gpt-4o:7b",
    "gpt-4o ",
    "x" * 300,
    "\x00",
    "模型:latest",
    "a/b/c:d",
]

SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n",
    "\r\n",
    "\u2028\u2029",
    "\ufeff",
    "é",
    "日本語",
    "🦙" * 3,
    "\u202eRTL",
    "\\u0000",
    '"',
    "\\",
    "{}",
    "[DONE]",
    "data: x",
    "json",
    "Respond in JSON",
]

text = st.one_of(
    st.sampled_from(SPECIAL_TEXT),
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.text(st.characters(codec="utf-8", categories=["L", "N", "Zs"]), max_size=200),
)
long_text = st.integers(1_000, 100_000).map(lambda n: "x" * n) | st.integers(100, 20_000).map(
    lambda n: "é🦙" * n
)
huge_numbers = st.sampled_from(
    [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63), -(10**30), 1e300, -1e300, 5e-324, 1.5, -0.0]
)
numbers = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | huge_numbers
leaves = st.none() | st.booleans() | numbers | text
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


def encode(value: Any) -> bytes:
    """JSON bytes for any generated value: integers beyond 64 bits and any depth (orjson refuses both)."""
    out: list[bytes] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):  # a piece of punctuation pushed below
            out.append(item)
        elif isinstance(item, dict):
            stack.append(b"}")
            for position, (key, child) in enumerate(reversed(list(item.items()))):
                stack.append(child)
                stack.append(orjson.dumps(key) + b":")
                if position < len(item) - 1:
                    stack.append(b",")
            stack.append(b"{")
        elif isinstance(item, list):
            stack.append(b"]")
            for position, child in enumerate(reversed(item)):
                stack.append(child)
                if position < len(item) - 1:
                    stack.append(b",")
            stack.append(b"[")
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(str(item).encode())
        else:
            out.append(orjson.dumps(item))
    return b"".join(out)


def nested(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


# Deep nesting: within the depth limit (FALCON_OLLAMA_MAX_JSON_DEPTH, 64), past it, and past orjson's 1024.
deep_values = st.builds(
    nested, json_values, st.integers(1, 80) | st.integers(81, 400) | st.integers(1020, 1100), st.booleans()
)
weird = st.one_of(json_values, deep_values, long_text, huge_numbers)

# Valid values only: near_valid() below is what breaks them.
keep_alive = st.one_of(
    st.integers(-10, 10**6),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(["5m", "0", "-1m", "1h30m", "300ms", "1.5h", "2us", "3µs", ".5s", "10s"]),
)
think = st.sampled_from([True, False, "high", "medium", "low", "max"])
fmt = st.one_of(
    st.sampled_from(["json", ""]),
    st.just({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}),
    st.just({"title": "My Schema!", "type": "object", "properties": {"n": {"type": "string"}}}),
)
options = st.fixed_dictionaries(
    {},
    optional={
        "num_predict": st.integers(-2, 64),
        "seed": st.integers(-1, 2**31),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "stop": text | st.lists(text, max_size=6),
        "frequency_penalty": st.floats(-2, 2),
        "presence_penalty": st.floats(-2, 2),
        "top_k": st.integers(1, 100),
        "num_ctx": st.integers(1, 2**20),
        "mirostat": st.integers(0, 2),
        "min_p": st.floats(0, 1),
        "use_mmap": st.booleans(),
        "numa": st.booleans(),
        "unknown_option": json_values,
    },
)
image = st.sampled_from([PNG, "data:image/png;base64," + PNG, "/9j/4AAQSkZJRgABAQ==", "R0lGODlhAQABAAAAACw="])
images = st.lists(image, max_size=2)
arguments = st.dictionaries(text, json_values, max_size=3) | st.just('{"city": "Paris"}')
tool_call = st.fixed_dictionaries(
    {
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["get_weather", "f"])}, optional={"arguments": arguments}
        )
    },
    optional={"id": st.sampled_from(["call_1", "call_2"])},
)
tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["get_weather", "f"])},
            optional={
                "description": text,
                "parameters": st.just({"type": "object", "properties": {"city": {"type": "string"}}}),
            },
        ),
    }
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "USER"]), "content": text},
    optional={"images": images, "thinking": text},
)
assistant_call = st.fixed_dictionaries(
    {
        "role": st.just("assistant"),
        "content": st.just(""),
        "tool_calls": st.lists(tool_call, min_size=1, max_size=2),
    }
)
tool_result = st.fixed_dictionaries(
    {"role": st.just("tool"), "content": text},
    optional={"tool_name": st.sampled_from(["get_weather", "f", "other"]), "tool_call_id": st.just("call_1")},
)
messages = st.one_of(
    st.lists(message, max_size=4),
    st.tuples(st.lists(message, max_size=2), assistant_call, st.lists(tool_result, max_size=2), message).map(
        lambda parts: [*parts[0], parts[1], *parts[2], parts[3]]
    ),
)
common_optional = {
    "stream": st.booleans(),
    "keep_alive": keep_alive,
    "options": options,
    "format": fmt,
    "think": think,
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 20),
}


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy with the given odds (st.one_of's own choice is far from uniform)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(range(len(pool))).flatmap(lambda i: pool[i])


def models(preferred: list[str]) -> st.SearchStrategy[str]:
    """Mostly models the fake serves (so most requests get past the lookup), sometimes anything."""
    return weighted((8, st.sampled_from(preferred)), (1, st.sampled_from(ODD_MODELS)), (1, text))


response_item = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer"]), "content": text}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("message"),
            "role": st.just("user"),
            "content": st.lists(
                st.fixed_dictionaries({"type": st.just("input_text"), "text": text}), max_size=2
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call"), "call_id": st.just("c1"), "name": st.just("f"), "arguments": text}
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call_output"), "call_id": st.just("c1"), "output": text}
    ),
    st.fixed_dictionaries({"type": st.just("reasoning"), "id": st.just("rs_1"), "summary": st.just([])}),
)
response_tool = st.fixed_dictionaries(
    {"type": st.just("function"), "name": st.sampled_from(["f", "get_weather"])},
    optional={"parameters": st.just({"type": "object", "properties": {"city": {"type": "string"}}})},
) | st.just({"type": "web_search"})

VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "/api/chat": st.fixed_dictionaries(
        {"model": models(CHAT_MODELS), "messages": messages},
        optional={**common_optional, "tools": st.lists(tool, max_size=2), "truncate": st.booleans()},
    ),
    "/api/generate": st.fixed_dictionaries(
        {"model": models(CHAT_MODELS), "prompt": text},
        optional={
            **common_optional,
            "system": text,
            "template": text,
            "raw": st.booleans(),
            "images": images,
            "context": st.lists(st.integers(0, 2**24), max_size=6)
            | st.just([0x0F0110A1, 0, 5995298, 7499628, 6627898, 2258291]),
        },
    ),
    "/api/embed": st.fixed_dictionaries(
        {"model": models(EMBED_MODELS)},
        optional={
            "input": text | st.lists(text, max_size=40),
            "truncate": st.booleans(),
            "dimensions": st.integers(1, 16),
            "keep_alive": keep_alive,
            "options": options,
        },
    ),
    "/api/embeddings": st.fixed_dictionaries(
        {"model": models(EMBED_MODELS)},
        optional={"prompt": text, "keep_alive": keep_alive, "options": options},
    ),
    "/api/show": st.fixed_dictionaries(
        {"model": models(CHAT_MODELS + EMBED_MODELS)},
        optional={"verbose": st.booleans(), "system": text, "options": options},
    ),
    "/api/pull": st.fixed_dictionaries(
        {"model": models(CHAT_MODELS + EMBED_MODELS)},
        optional={"stream": st.booleans(), "insecure": st.booleans()},
    ),
    "/v1/chat/completions": st.fixed_dictionaries(
        {"model": models(CHAT_MODELS), "messages": st.lists(message, min_size=1, max_size=2)},
        optional={"stream": st.booleans(), "max_tokens": st.integers(1, 50), "temperature": st.floats(0, 2)},
    ),
    "/v1/completions": st.fixed_dictionaries(
        {"model": models(CHAT_MODELS), "prompt": text},
        optional={"stream": st.booleans(), "max_tokens": st.integers(1, 50)},
    ),
    "/v1/embeddings": st.fixed_dictionaries(
        {"model": models(EMBED_MODELS), "input": text | st.lists(text, min_size=1, max_size=5)},
        optional={"encoding_format": st.sampled_from(["float", "base64"]), "dimensions": st.integers(1, 8)},
    ),
    "/v1/responses": st.fixed_dictionaries(
        {"model": models(CHAT_MODELS), "input": text | st.lists(response_item, min_size=1, max_size=4)},
        optional={
            "stream": st.booleans(),
            "instructions": text,
            "max_output_tokens": st.integers(1, 50),
            "temperature": st.floats(0, 2),
            "tools": st.lists(response_tool, max_size=2),
            "tool_choice": st.sampled_from(["auto", "none", "required"]),
            "reasoning": st.fixed_dictionaries({}, optional={"effort": st.sampled_from(["low", "high"])}),
            "text": st.just({"format": {"type": "json_object"}})
            | st.just({"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}}),
            "store": st.booleans(),
        },
    ),
    "/v1/messages": st.fixed_dictionaries(
        {
            "model": models(CHAT_MODELS),
            "max_tokens": st.integers(1, 50),
            "messages": st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.just("user"),
                        "content": text
                        | st.lists(st.builds(lambda t: {"type": "text", "text": t}, text), max_size=2),
                    }
                ),
                min_size=1,
                max_size=2,
            ),
        },
        optional={
            "stream": st.booleans(),
            "system": text,
            "temperature": st.floats(0, 1),
            "top_k": st.integers(1, 50),
            "thinking": st.sampled_from([{"type": "enabled", "budget_tokens": 1024}, {"type": "adaptive"}]),
        },
    ),
}
# The model-management routes answer 501 without reading the body: any body will do.
MANAGEMENT = [
    ("POST", "/api/push"),
    ("POST", "/api/create"),
    ("POST", "/api/copy"),
    ("DELETE", "/api/delete"),
]
MANAGEMENT += [("POST", "/api/blobs/sha256:" + "0" * 64)]
# Field names the app reads somewhere, for the "add a field" mutation.
KNOWN_FIELDS = sorted(
    {
        "model",
        "name",
        "messages",
        "prompt",
        "input",
        "stream",
        "format",
        "keep_alive",
        "tools",
        "options",
        "think",
    }
    | {"logprobs", "top_logprobs", "suffix", "system", "template", "raw", "context", "images", "truncate"}
    | {"dimensions", "verbose", "role", "content", "tool_calls", "function", "arguments", "tool_name"}
)


def _mutate(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """One change somewhere inside ``value``: retyped, dropped, added, made huge, deep, long or empty."""
    if isinstance(value, dict | list) and value and depth < 5 and (depth == 0 or draw(st.booleans())):
        if isinstance(value, dict) and (depth > 0 or draw(st.integers(0, 3))):  # the top: mostly inside
            key = draw(st.sampled_from(sorted(value)))
            return {**value, key: _mutate(draw, value[key], depth + 1)}
        if isinstance(value, list):
            index = draw(st.integers(0, len(value) - 1))
            return [*value[:index], _mutate(draw, value[index], depth + 1), *value[index + 1 :]]
    action = draw(st.sampled_from(["retype", "deep", "huge", "long", "empty", "drop", "extra"]))
    if action == "drop" and isinstance(value, dict) and value:
        gone = draw(st.sampled_from(sorted(value)))
        return {k: v for k, v in value.items() if k != gone}
    if action == "extra" and isinstance(value, dict):
        return {**value, draw(st.sampled_from(KNOWN_FIELDS) | text): draw(json_values | weird)}
    strategy = {"deep": deep_values, "huge": huge_numbers, "long": long_text}.get(action)
    if strategy is None:
        strategy = st.sampled_from(["", [], {}, None, 0, False]) if action == "empty" else json_values
    return draw(strategy)


@st.composite
def near_valid(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A valid body with one to three changes at any depth (wrong types, missing/extra fields, ...)."""
    body: Any = draw(valid)
    for _ in range(draw(st.integers(1, 3))):
        body = _mutate(draw, body)
    return body


@st.composite
def raw_variant(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """A valid body damaged at the byte level: duplicate keys, bad UTF-8, NUL, BOM, cut, junk around it."""
    encoded = encode(draw(valid))
    action = draw(
        st.sampled_from(
            ["duplicate", "bad-utf8", "nul", "bom", "cut", "trailing", "nan", "surrogate", "spaces"]
        )
    )
    if action == "duplicate":  # orjson keeps the last value; the first may be of any type
        first = orjson.dumps(draw(st.sampled_from(["model", "messages", "stream", "prompt", "input"])))
        return b"{" + first + b":" + encode(draw(json_values)) + b"," + encoded[1:]
    if action == "bad-utf8":
        position = draw(st.integers(0, len(encoded)))
        return (
            encoded[:position]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]))
            + encoded[position:]
        )
    if action == "nul":
        position = draw(st.integers(0, len(encoded)))
        return encoded[:position] + b"\x00" + encoded[position:]
    if action == "bom":
        return b"\xef\xbb\xbf" + encoded
    if action == "cut":
        return encoded[: draw(st.integers(0, max(len(encoded) - 1, 0)))]
    if action == "trailing":
        return encoded + draw(st.sampled_from([b"x", b"{}", b"\n{}", b" \t\r\n", b"\x00"]))
    if action == "nan":
        return b'{"options": {"temperature": NaN}, ' + encoded[1:]
    if action == "surrogate":
        return b'{"x": "\\ud800", ' + encoded[1:]
    return b"\n \t" + encoded + b"\r\n"


HOSTILE = [
    b"",
    b" ",
    b"\n",
    b"null",
    b"true",
    b"0",
    b"[]",
    b'"model"',
    b"{",
    b"}",
    b"{}",
    b"{} {}",
    b"\x00" * 64,
    b"\xff\xfe{\x00}\x00",
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'{"model": "gpt-4o", "messages": ' + b"[" * 1100 + b"]" * 1100 + b"}",
    b'{"model": 1e999}',
    b'{"model": -}',
    b"{'model': 'gpt-4o'}",
    b'{"model": "gpt-4o"' + b', "x": 1' * 5000 + b"}",
    b"model=gpt-4o&prompt=hi",
    b"--boundary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--boundary--",
]
hostile = st.sampled_from(HOSTILE) | st.binary(max_size=512)


def bodies(path: str) -> st.SearchStrategy[bytes]:
    valid = VALID[path]
    return weighted(
        (4, valid.map(encode)), (3, near_valid(valid).map(encode)), (1, raw_variant(valid)), (1, hostile)
    )


headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(["application/json", "text/plain", "application/x-ndjson", ""]),
        "accept": st.sampled_from(["application/json", "application/x-ndjson", "*/*"]),
        "user-agent": st.sampled_from(["ollama-python/0.5.1", "GitHubCopilotChat/0.30", ""]),
    },
)


# --- the checks ---------------------------------------------------------------------------------------------


def template_of(path: str) -> str:
    return "/api/blobs/{digest}" if path.startswith("/api/blobs/") else path


def check_reply(
    method: str, path: str, body: bytes, reply: Reply, error_logs: ErrorLogs, *, upstream_healthy: bool = True
) -> None:
    if currently_in_test_context():  # a Hypothesis example: show the exchange when it fails
        note(f"request {method} {path} {body[:500]!r}")
        note(f"reply {reply.status} {reply.content_type} {reply.body[:1000]!r}")
    logged = error_logs.take()
    assert not logged, "falcon_ollama logged an error:\n" + "\n".join(logged)
    status = reply.status
    not_managed = status == 501 and (method, path) in MANAGEMENT
    assert status < 500 or status in MAPPED_UPSTREAM_FAILURES or not_managed, (
        f"server error {status}: {reply.body[:500]!r}"
    )
    problems: list[str] = []
    if status >= 400:
        problems += error_problems(path, status, reply.content_type, reply.body)
    mtype = media_type(reply.content_type)
    if status == 200 and mtype == "application/x-ndjson":
        last = orjson.loads(list(ndjson_lines(reply.body))[-1])
        if "error" not in last:  # a failure after the first byte ends the stream with an error line
            finished = last.get("done") is True if path != "/api/pull" else last.get("status") == "success"
            assert finished, f"the stream did not end with its final object: {last!r}"
    if status == 200 and mtype == "text/event-stream" and upstream_healthy:
        problems += sse_problems(reply.body)  # /v1 relays the upstream's bytes as they are, garbage included
    problems += response_problems(template_of(path), method, status, reply.content_type, reply.body)
    assert not problems, "\n".join(problems)


def check_ps_still_answers(app: InProcessApp, error_logs: ErrorLogs) -> None:
    reply = app.request("GET", "/api/ps")
    check_reply("GET", "/api/ps", b"", reply, error_logs)
    assert reply.status == 200


def send(
    app: InProcessApp, method: str, path: str, body: bytes, extra: dict[str, str], chunked: bool
) -> Reply:
    request_headers = dict(extra)
    if not chunked:
        request_headers["content-length"] = str(len(body))
    return app.request(method, path, body, request_headers, chunk=1024 if chunked else 0)


# --- the fuzz tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(VALID))
@FUZZ_SETTINGS
@given(data=st.data())
def test_post_routes_never_fail_unexpectedly(
    app: InProcessApp, error_logs: ErrorLogs, path: str, data: st.DataObject
) -> None:
    body = data.draw(bodies(path), label="body")
    assume(not_sendable(path, body) is None)
    extra = data.draw(headers, label="headers")
    chunked = data.draw(st.booleans(), label="chunked")
    reply = send(app, "POST", path, body, extra, chunked)
    check_reply("POST", path, body, reply, error_logs)
    if path in ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings"):
        check_ps_still_answers(app, error_logs)


@pytest.mark.parametrize(("method", "path"), MANAGEMENT)
@settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 6, 10))
@given(body=st.one_of(hostile, VALID["/api/pull"].map(encode)))
def test_management_routes_answer_501(
    app: InProcessApp, error_logs: ErrorLogs, method: str, path: str, body: bytes
) -> None:
    reply = send(app, method, path, body, {"content-type": "application/json"}, chunked=False)
    check_reply(method, path, body, reply, error_logs)
    assert reply.status == 501


def test_oversized_bodies_are_413(app: InProcessApp, error_logs: ErrorLogs) -> None:
    """Over the limit, whether announced by Content-Length or only found while reading."""
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * MAX_BODY}]})
    for path in [*sorted(VALID), "/api/show"]:
        for chunked in (False, True):
            reply = send(app, "POST", path, body, {}, chunked)
            check_reply("POST", path, body, reply, error_logs)
            assert reply.status == 413, (path, chunked, reply)


@pytest.fixture(scope="module")
def faulty() -> Iterator[tuple[FakeUpstreamThread, InProcessApp]]:
    """Its own fake and app: scripted faults left unconsumed must not reach the other tests' requests."""
    with FakeUpstreamThread(FakeConfig(record=False)) as fake:
        settings = dataclasses.replace(
            fuzz_settings(fake),
            first_byte_timeout=0.5,
            idle_timeout=0.3,
            total_timeout=5.0,
            max_retries=1,
            retry_base_delay=0.0,
            max_retry_wait=0.2,
        )
        with InProcessApp(create_app(settings)) as running:
            assert running.request("GET", "/api/tags").status == 200
            yield fake, running


UPSTREAM_STATUSES = [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529]
faults = st.builds(
    Fault,
    kind=st.sampled_from(sorted(FAULT_KINDS)),
    status=st.none() | st.sampled_from(UPSTREAM_STATUSES),
    body=st.none()
    | st.sampled_from(["", "not json", '{"error": "x"}', '{"error": {"message": "sk-abc123 bad"}}']),
    headers=st.sampled_from([{}, {"Retry-After": "0"}, {"Retry-After": "1000"}, {"Retry-After": "soon"}]),
    seconds=st.sampled_from([0.0, 0.1, 0.7]),
    after_events=st.integers(0, 4),
    size=st.sampled_from([10, 70_000, 2_000_000]),
    times=st.integers(1, 3),
)
FAULT_ROUTES = [
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/api/embeddings",
    "/v1/chat/completions",
    "/v1/messages",
]


@pytest.mark.parametrize("path", FAULT_ROUTES)
@settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 4, 10))
@given(fault=faults, data=st.data())
def test_upstream_failures_are_mapped(
    faulty: tuple[FakeUpstreamThread, InProcessApp],
    error_logs: ErrorLogs,
    path: str,
    fault: Fault,
    data: st.DataObject,
) -> None:
    """Whatever the upstream does (errors, HTML, cut or stalled streams, garbage), the client gets a mapped
    status with a JSON error, or a 200 stream that ends in a final object or an error line."""
    fake, app = faulty
    body = data.draw(VALID[path].map(encode), label="body")
    assume(not_sendable(path, body) is None)
    fake.reset()
    fake.script(dataclasses.replace(fault, path="/v1/"))
    try:
        reply = send(app, "POST", path, body, {}, chunked=False)
    finally:
        fake.reset()
    check_reply("POST", path, body, reply, error_logs, upstream_healthy=False)
    check_ps_still_answers(app, error_logs)


# --- bugs the fuzzing found, each fixed and kept as a regression test -------------------------------------


def _fresh(upstream: FakeUpstreamThread, **overrides: Any) -> InProcessApp:
    """A separate app, so a bug that poisons per-worker state cannot leak into the fuzz tests' app."""
    return InProcessApp(create_app(dataclasses.replace(fuzz_settings(upstream), **overrides)))


@pytest.fixture
def fresh_app(upstream: FakeUpstreamThread, error_logs: ErrorLogs) -> Iterator[InProcessApp]:
    with _fresh(upstream) as running:
        yield running
    error_logs.take()


def _chat(**fields: Any) -> bytes:
    return encode({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", _chat(stream=False, options={"num_predict": 1e300})),
        ("/api/chat", _chat(stream=True, options={"seed": 2**64})),
        ("/api/generate", encode({"model": "gpt-4o", "prompt": "hi", "options": {"num_predict": 1e20}})),
    ],
    ids=["chat-num_predict", "chat-seed-stream", "generate-num_predict"],
)
def test_integer_options_beyond_int64_are_refused_with_400(
    app: InProcessApp, error_logs: ErrorLogs, path: str, body: bytes
) -> None:
    """Was a 500: int() of a huge float is unbounded, and orjson cannot write it into the upstream request."""
    reply = send(app, "POST", path, body, {}, chunked=False)
    check_reply("POST", path, body, reply, error_logs)
    assert reply.status == 400


DEEP_BODIES = [
    ("/api/chat", _chat(stream=False, format=nested({}, 300, as_list=False))),
    (
        "/api/chat",
        _chat(tools=[{"type": "function", "function": {"name": "f", "parameters": nested({}, 300, False)}}]),
    ),
    (
        "/api/chat",
        encode(
            {
                "model": "gpt-4o",
                "stream": False,
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": nested({}, 300, False)}}],
                    },
                    {"role": "user", "content": "hi"},
                ],
            }
        ),
    ),
    ("/api/generate", encode({"model": "gpt-4o", "prompt": "hi", "format": nested({}, 600, False)})),
    ("/v1/chat/completions", encode({"model": "gpt-4o", "messages": [], "metadata": nested([], 300, True)})),
    ("/api/show", encode({"model": "gpt-4o", "options": nested([], 1000, True)})),
]
DEEP_IDS = [
    "chat-format",
    "chat-tools",
    "chat-tool-call-arguments",
    "generate-format",
    "v1-extra-field",
    "show",
]


@pytest.mark.parametrize(("path", "body"), DEEP_BODIES, ids=DEEP_IDS)
def test_deep_nesting_is_refused_with_400(
    app: InProcessApp, error_logs: ErrorLogs, path: str, body: bytes
) -> None:
    """Was a 500 (orjson.loads accepts 1024 levels, orjson.dumps only 254); the depth limit refuses it now."""
    assert json_depth(orjson.loads(body)) > 255
    reply = send(app, "POST", path, body, {}, chunked=False)
    check_reply("POST", path, body, reply, error_logs)
    assert reply.status == 400


@pytest.mark.parametrize(("path", "body"), DEEP_BODIES, ids=DEEP_IDS)
def test_deep_nesting_with_a_raised_depth_limit_is_not_a_server_error(
    upstream: FakeUpstreamThread, error_logs: ErrorLogs, path: str, body: bytes
) -> None:
    with _fresh(upstream, max_json_depth=1024) as running:
        reply = send(running, "POST", path, body, {}, chunked=False)
        check_reply("POST", path, body, reply, error_logs)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", encode({"model": "gpt-4o", "keep_alive": 1e300})),
        ("/api/generate", encode({"model": "gpt-4o", "keep_alive": 1e17})),
        ("/api/embed", encode({"model": "text-embedding-3-small", "keep_alive": "9999999999999h"})),
        ("/api/chat", encode({"model": "gpt-4o", "keep_alive": 1e12})),
    ],
    ids=["chat-1e300", "generate-1e17", "embed-duration", "chat-1e12-year-33000"],
)
def test_huge_keep_alive_keeps_api_ps_working(
    fresh_app: InProcessApp, error_logs: ErrorLogs, path: str, body: bytes
) -> None:
    """Was a 500 on every later /api/ps: the window now saturates at Go's largest duration."""
    reply = send(fresh_app, "POST", path, body, {}, chunked=False)
    check_reply("POST", path, body, reply, error_logs)
    check_ps_still_answers(fresh_app, error_logs)
