"""Plain data shared by the fake upstream: its configuration, scripted faults and recorded requests.

These live apart from the server so tests and other processes can build them (and turn them into JSON for
the admin endpoints) without touching the event loop machinery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-pro",
    "gpt-5.1",
    "gpt-5.2",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "whisper-1",
    "tts-1",
    "tts-1-hd",
    "dall-e-3",
    "omni-moderation-latest",
    "gpt-4o-realtime-preview",
    "gpt-image-1",
)


def _default_models() -> list[str]:
    return list(DEFAULT_MODELS)


@dataclass
class FakeConfig:
    """How the fake behaves. The instance on a running fake is mutable; changes apply to the next request."""

    models: list[str] = field(default_factory=_default_models)
    # False mimics llama-cpp-python's server, whose listing entries have no "created" (recorded in
    # tests/fixtures/real/llamacpp: {"id", "object", "owned_by": "me", "permissions": []}).
    models_have_created_owned_by: bool = True
    # When set, requests must carry "Authorization: Bearer <api_key>" or get OpenAI's 401.
    api_key: str | None = None
    # True mimics llama.cpp / vLLM, which answer whatever model name they are given.
    answer_any_model: bool = False
    ttfb_ms: float = 0.0
    token_delay_ms: float = 0.0
    tokens: int = 8
    # False mimics servers (llama.cpp) that never send a usage chunk, even when asked to.
    send_usage: bool = True
    embedding_dim: int = 8
    max_embedding_inputs: int = 2048
    record: bool = True
    max_recorded: int = 10000
    # Benchmark mode: identical requests get the identical cached answer (ids included).
    canned: bool = False
    # How many reasoning tokens ("r0 r1 r2 ") a reasoning model emits before its content.
    reasoning_tokens: int = 3
    # Open-weight reasoning models served as vLLM / llama.cpp serve them: they think on their own (the text
    # arrives in ``reasoning_content``) and take no OpenAI reasoning parameters.
    open_reasoning_models: list[str] = field(default_factory=lambda: ["qwen3*", "deepseek-r1*"])
    # OpenAI refuses response_format json_object unless a message mentions "json"; False turns that off.
    require_json_word: bool = True
    # False mimics llama-cpp-python's server, which refuses response_format json_schema with a 500: its
    # pydantic message with a traceback line after it (tests/fixtures/real/llamacpp, the recorded answer).
    accept_json_schema: bool = True
    # OpenAI refuses request fields it does not know ("Unrecognized request argument supplied: top_k");
    # False mimics llama.cpp and vLLM, which ignore them.
    reject_unknown_params: bool = True
    # Scripting agent CLIs (Claude Code, Codex): which offered tool a user turn is answered with ("" the
    # first one, "none" never a tool call), the call's arguments as JSON object text ("" an instance of the
    # tool's schema), and whether the answer after a tool result quotes it ("tool said: <output>").
    # Above 0 mimics llama-cpp-python's server with that n_ctx: a prompt of at least that many tokens (the
    # fake's count: whitespace words, + 3 per chat message) is refused with its 400 and text, on chat and
    # completions alike (tests/fixtures/real/llamacpp: error_context_exceeded, completions_context_exceeded).
    context_window: int = 0
    call_tool: str = ""
    call_arguments: str = ""
    echo_tool_result: bool = False

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial configuration (the admin endpoint's body), checking names and types first.

        Everything is validated before anything is assigned, so a bad request leaves the config untouched.
        """
        current = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in current:
                raise ValueError(f"unknown FakeConfig field {name!r}")
            checked[name] = _coerce(name, current[name], value)
        for name, value in checked.items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(name: str, current: Any, value: Any) -> Any:
    if name == "api_key":
        if value is None or isinstance(value, str):
            return value
        raise ValueError("api_key must be a string or null")
    if name == "call_tool":
        if isinstance(value, str):
            return value
        raise ValueError("call_tool must be a string")
    if name == "call_arguments":
        if value == "":
            return value
        try:
            parsed = orjson.loads(value) if isinstance(value, str) else None
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return value
        raise ValueError("call_arguments must be JSON object text (or empty)")
    if name == "models":
        if isinstance(value, list) and all(isinstance(m, str) for m in value):
            return list(value)
        raise ValueError("models must be a list of strings")
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be a boolean")
    if isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be an integer")
    if isinstance(current, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{name} must be a number")
    raise ValueError(f"{name} cannot be set")  # pragma: no cover - every field is handled above


FaultKind = Literal[
    "status",
    "html",
    "text",
    "stall",
    "stall_after",
    "cut",
    "garbage",
    "huge_event",
    "no_done",
    "half_body",
    "close",
    "sse_variant",
    "empty_deltas",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
# Faults that only make sense while streaming: they match streamed requests only, so a stray
# non-stream request (a model listing, a health probe) does not consume them.
STREAM_FAULT_KINDS: frozenset[str] = frozenset(
    {"stall_after", "cut", "garbage", "huge_event", "no_done", "sse_variant", "empty_deltas"}
)
# Faults that only make sense for a body with a Content-Length: they match non-stream requests only.
NON_STREAM_FAULT_KINDS: frozenset[str] = frozenset({"half_body"})

FaultBody = bytes | str | dict[str, Any] | list[Any]


@dataclass
class Fault:
    """One scripted misbehaviour, consumed FIFO by the next ``times`` matching requests.

    ``times`` below 1 means "every matching request until reset()", for tests of persistent outages.
    """

    kind: FaultKind
    path: str = "/v1/"
    model: str | None = None
    times: int = 1
    status: int | None = None
    body: FaultBody | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 1.0
    after_events: int = 2
    size: int = 1_000_000

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.after_events < 0:
            raise ValueError("after_events must be >= 0")
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")

    def matches(self, path: str, model: str | None, stream: bool) -> bool:
        if not path.startswith(self.path):
            return False
        if self.model is not None and self.model != model:
            return False
        if self.kind in STREAM_FAULT_KINDS:
            return stream
        if self.kind in NON_STREAM_FAULT_KINDS:
            return not stream
        return True

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Build a Fault from the admin endpoint's JSON (bodies arrive as JSON values or strings)."""
        if not isinstance(data, dict):
            raise ValueError("a fault must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown Fault fields: {sorted(unknown)}")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("headers must be an object of strings")
        try:
            return cls(**{**data, "headers": dict(headers)})
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if isinstance(self.body, bytes):
            out["body"] = self.body.decode("utf-8", "replace")
        return out


_UNSET: Any = object()


@dataclass(eq=False)
class RecordedRequest:
    """What the fake saw, for assertions. ``json`` is parsed lazily so recording stays cheap."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)
    received_at: float
    query: str = ""
    # Filled in as the answer goes out.
    status: int | None = None
    stream: bool = False
    completed: bool = False
    # When the peer closed the connection before the answer finished (time.monotonic()), else None.
    disconnected_at: float | None = None
    # The kind of the fault applied to this request, if any.
    fault: str | None = None
    _json: Any = field(default=_UNSET, repr=False)

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if self._json is _UNSET:
            try:
                self._json = orjson.loads(self.body) if self.body else None
            except orjson.JSONDecodeError:
                self._json = None
        return self._json

    @property
    def images(self) -> list[str]:
        """The image URLs (usually data URIs) found in chat message content parts, in order."""
        data = self.json
        found: list[str] = []
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            return found
        for message in data["messages"]:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    image = part.get("image_url")
                    url = image.get("url") if isinstance(image, dict) else image
                    if isinstance(url, str):
                        found.append(url)
        return found

    def to_json(self) -> dict[str, Any]:
        parsed = self.json
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": parsed if parsed is not None else self.body.decode("utf-8", "replace"),
            "json": parsed,
            "received_at": self.received_at,
            "status": self.status,
            "stream": self.stream,
            "completed": self.completed,
            "disconnected_at": self.disconnected_at,
            "fault": self.fault,
        }


@dataclass(slots=True)
class FullAnswer:
    """A complete response with a Content-Length body."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class StreamAnswer:
    """An SSE answer: the ``data:`` payloads in order (without the final ``[DONE]``).

    ``content_start``/``content_end`` delimit the payloads that carry content, and ``content_event`` builds
    one more content payload in the same envelope; faults use them to inject odd deltas in the right place.
    """

    events: list[bytes]
    content_start: int
    content_end: int
    content_event: ContentEventBuilder
    # The Responses API's streams: each payload framed as ``event: <name>`` + ``data:``, and no [DONE].
    names: list[bytes] | None = None


class ContentEventBuilder:
    """Builds a content-delta payload by splicing the delta between a fixed prefix and suffix."""

    __slots__ = ("prefix", "suffix", "wrap")

    def __init__(self, prefix: bytes, suffix: bytes, wrap: str | None) -> None:
        self.prefix = prefix
        self.suffix = suffix
        # Chat deltas are objects ({"content": ...}); legacy completions put the text string directly.
        self.wrap = wrap

    def __call__(self, text: str | None) -> bytes:
        value: Any = {self.wrap: text} if self.wrap is not None else text
        return self.prefix + orjson.dumps(value) + self.suffix


Answer = FullAnswer | StreamAnswer
