"""What the fuzz tests share: the OpenAPI document, response checks, error-log capture.

``docs/openapi.yaml`` is the contract both fuzzers check responses against (``response_problems``).
``not_sendable`` names requests the bundled fake upstream cannot serve (not the app's fault): the fuzzers
skip those. A bug the fuzzers find gets a regression test in ``test_fuzz_app.py`` when it is fixed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson
import yaml
from jsonschema import Draft202012Validator

from tests.servers import REPO

SPEC_PATH = REPO / "docs" / "openapi.yaml"

# Paths whose errors are OpenAI-shaped ({"error": {"message": ...}}) rather than Ollama's {"error": "..."}.
OPENAI_PREFIX = "/v1/"
# The 5xx statuses an upstream failure (or admission control's "server busy") maps to; any other is a bug.
MAPPED_UPSTREAM_FAILURES = frozenset({502, 503, 504})


@functools.cache
def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return spec


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow a local ``$ref`` (``#/components/...``) until a node without one."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@functools.cache
def _validator(path: str, method: str, status_key: str, mtype: str) -> Draft202012Validator | None:
    spec = load_spec()
    operation = spec["paths"][path][method]
    response = resolve(spec, operation["responses"][status_key])
    content = response.get("content") or {}
    entry = content.get(mtype)
    if entry is None or "schema" not in entry:
        return None
    # The schema's "#/components/..." references resolve against this wrapper's root.
    root = {**entry["schema"], "components": spec["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def documented_status(path: str, method: str, status: int) -> str | None:
    """The key of the response documented for ``status`` (exact, else ``4XX``/``5XX``), or None."""
    responses = load_spec()["paths"][path][method]["responses"]
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in responses:
            return key
    return None


def response_problems(
    path: str, method: str, status: int, content_type: str | None, body: bytes
) -> list[str]:
    """Everything in a response that disagrees with ``docs/openapi.yaml`` (``path`` is the template)."""
    method = method.lower()
    key = documented_status(path, method, status)
    if key is None:
        return [f"status {status} is not documented for {method.upper()} {path}"]
    if method == "head":
        return []
    spec = load_spec()
    response = resolve(spec, spec["paths"][path][method]["responses"][key])
    documented = set((response.get("content") or {}).keys())
    mtype = media_type(content_type)
    if not documented:
        return [] if not body else [f"{status} has a body but documents none"]
    if mtype not in documented:
        return [
            f"content type {content_type!r} is not documented for {status} (documented: {sorted(documented)})"
        ]
    validator = _validator(path, method, key, mtype)
    if validator is None:
        return []
    if mtype == "application/x-ndjson":
        documents: list[Any] = []
        for number, line in enumerate(ndjson_lines(body)):
            try:
                documents.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                return [f"NDJSON line {number} is not JSON ({exc}): {line[:200]!r}"]
    elif mtype == "application/json":
        try:
            documents = [orjson.loads(body)]
        except orjson.JSONDecodeError as exc:
            return [f"the body is not JSON ({exc}): {body[:200]!r}"]
    else:
        return []
    problems = []
    for document in documents:
        for error in validator.iter_errors(document):
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"schema: at '{where}': {error.message[:300]}")
    return problems[:10]


def ndjson_lines(body: bytes) -> Iterator[bytes]:
    """The lines of an NDJSON body; a blank line or a missing final newline is itself a problem."""
    if not body.endswith(b"\n"):
        raise AssertionError(f"NDJSON body does not end with a newline: {body[-200:]!r}")
    for line in body[:-1].split(b"\n"):
        if not line.strip():
            raise AssertionError(f"NDJSON body has a blank line: {body[:500]!r}")
        yield line


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class ErrorLogs(logging.Handler):
    """Collects ERROR records from falcon_ollama (the app logs every unhandled exception there) and Falcon.

    The fake upstream's own failures are its business: they reach the client as a mapped 502."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("fake_openai"):
            self.records.append(record)

    def take(self) -> list[str]:
        """The messages (with tracebacks) collected so far; clears them."""
        formatter = logging.Formatter()
        messages = [formatter.format(record) for record in self.records]
        self.records.clear()
        return messages

    @classmethod
    @contextlib.contextmanager
    def capture(cls) -> Iterator[ErrorLogs]:
        handler = cls()
        loggers = [logging.getLogger("falcon_ollama"), logging.getLogger("falcon")]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.addHandler(handler)
            if logger.getEffectiveLevel() > logging.ERROR:  # another test may have quietened it
                logger.setLevel(logging.ERROR)
        try:
            yield handler
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(handler)
                logger.setLevel(level)


# The bundled fake upstream builds an embedding of any ``dimensions`` it is asked for (OpenAI refuses more
# than the model's length): 2**31 is gigabytes per input and the test process is killed. The app passes
# ``dimensions`` of /v1/embeddings on unchecked, as it should; the fake is what cannot take it (/api/embed
# shortens vectors itself and never sends ``dimensions``).
FAKE_HUGE_DIMENSIONS = "fake-upstream-huge-dimensions"
_FAKE_MAX_DIMENSIONS = 4096


def fake_upstream_limit(path: str, body: bytes) -> str | None:
    """Why the bundled fake upstream cannot serve this request (not the app's fault), or None."""
    if path != "/v1/embeddings":
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    dimensions = data.get("dimensions") if isinstance(data, dict) else None
    if isinstance(dimensions, int | float) and dimensions > _FAKE_MAX_DIMENSIONS:
        return FAKE_HUGE_DIMENSIONS
    return None


def not_sendable(path: str, body: bytes) -> str | None:
    """A fake-upstream limit this request would hit: the fuzzers skip it."""
    return fake_upstream_limit(path, body)


# --- response shape checks shared by both fuzzers -------------------------------------------------------

_EVENT_FIELD = re.compile(rb"^(data|event|id|retry)?:")


def error_problems(path: str, status: int, content_type: str | None, body: bytes) -> list[str]:
    """An error must be JSON: Ollama's ``{"error": "<non-empty>"}``, or OpenAI's shape under ``/v1/``."""
    if media_type(content_type) != "application/json":
        return [f"error {status} has content type {content_type!r}, not application/json"]
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [f"error {status} body is not JSON: {body[:200]!r}"]
    if not isinstance(data, dict) or "error" not in data:
        return [f"error {status} body has no 'error': {body[:200]!r}"]
    error = data["error"]
    if path.startswith(OPENAI_PREFIX) and isinstance(error, dict):
        message = error.get("message")
        if not isinstance(message, str) or not message:
            return [f"OpenAI error {status} without a message: {body[:200]!r}"]
        return []
    if set(data) != {"error"} or not isinstance(error, str) or not error.strip():
        return [f'error {status} is not {{"error": "<non-empty str>"}}: {body[:200]!r}']
    return []


def sse_problems(body: bytes) -> list[str]:
    """A relayed ``text/event-stream``: each line blank, a comment or a field; each data JSON or [DONE]."""
    problems = []
    for line in body.replace(b"\r\n", b"\n").split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        if not _EVENT_FIELD.match(line):
            problems.append(f"SSE line is not a field: {line[:200]!r}")
            continue
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload != b"[DONE]":
                try:
                    orjson.loads(payload)
                except orjson.JSONDecodeError:
                    problems.append(f"SSE data is not JSON: {payload[:200]!r}")
    return problems
