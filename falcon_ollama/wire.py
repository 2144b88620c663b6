"""Ollama wire conventions shared by every endpoint: timestamps, JSON bodies, NDJSON lines.

Ollama's server is Go: ``created_at`` is ``time.Now().UTC()`` marshalled as RFC 3339 with up to nine
fractional digits (trailing zeros trimmed), durations are integer nanoseconds, and every JSON body is compact.
orjson writes every byte we send.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


# The last whole second formatted, and its text: every streamed chunk carries ``created_at``, and chunks come
# many per second, so formatting the date and time once per second saves most of the cost (measured in
# benchmarks/test_hot_paths.py). Replaced as one tuple, so concurrent callers never see half an update.
_last_second: tuple[int, str] = (-1, "")


def _second_text(seconds: int) -> str:
    global _last_second
    cached = _last_second
    if cached[0] == seconds:
        return cached[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    _last_second = (seconds, text)
    return text


def rfc3339_nano(epoch_ns: int, utc_offset_suffix: str = "Z") -> str:
    """Format like Go's ``time.RFC3339Nano``: ``2024-06-04T14:38:31.83753Z`` (fraction trimmed, none if 0)."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    cached = _last_second  # inline: most calls fall in the second already formatted
    base = cached[1] if cached[0] == seconds else _second_text(seconds)
    if nanos:
        return f"{base}.{str(nanos).zfill(9).rstrip('0')}{utc_offset_suffix}"
    return base + utc_offset_suffix


def now_rfc3339() -> str:
    """The current time as Ollama writes ``created_at``."""
    return rfc3339_nano(time.time_ns())


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (orjson); non-str dict keys are rejected, as in Go."""
    return orjson.dumps(obj)


def ndjson_line(obj: Any) -> bytes:
    """One NDJSON line: the object and a single ``\\n``, never a blank line."""
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def error_body(message: str) -> bytes:
    """Ollama's error body ``{"error": "..."}``."""
    return orjson.dumps({"error": message})


def openai_error(status: int, message: str) -> bytes:
    """OpenAI's error body, as Ollama's /v1 routes answer; the type follows the status as Ollama's does."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})
