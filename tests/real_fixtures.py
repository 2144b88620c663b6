"""Loading the real-world fixtures (tests/fixtures/real): llama.cpp recordings, OpenAI's published examples.

The SSE parsing here is deliberately naive and independent of falcon_ollama.sse (split on blank lines, strip
``data: ``), so the tests that use it compare our decoder/translator against something they did not write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REAL = Path(__file__).resolve().parent / "fixtures" / "real"
LLAMACPP = REAL / "llamacpp"
OPENAI = REAL / "openai"


@dataclass(frozen=True)
class Recorded:
    """One recorded exchange with the real server (see scripts/record_fixtures.py)."""

    name: str
    method: str
    path: str
    request: Any
    request_is_raw: bool
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def llamacpp_cases() -> dict[str, Recorded]:
    manifest = json.loads((LLAMACPP / "cases.json").read_text())
    return {
        c["name"]: Recorded(
            c["name"],
            c["method"],
            c["path"],
            c["request"],
            c["request_is_raw"],
            c["status"],
            c["content_type"],
            (LLAMACPP / c["body_file"]).read_bytes(),
        )
        for c in manifest
    }


def llamacpp(name: str) -> Recorded:
    return llamacpp_cases()[name]


def openai_bytes(name: str) -> bytes:
    return (OPENAI / name).read_bytes()


def openai_json(name: str) -> Any:
    return json.loads(openai_bytes(name))


def sse_payloads(raw: bytes) -> list[bytes]:
    """The ``data`` payloads of an SSE body whose events are single ``data:`` lines (as both servers send)."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block.strip():
            continue
        assert block.startswith(b"data:"), f"unexpected SSE block {block[:60]!r}"
        out.append(block[5:].lstrip(b" "))
    return out


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON events of an SSE body, without the closing ``[DONE]``."""
    return [json.loads(p) for p in sse_payloads(raw) if p != b"[DONE]"]


def streamed_content(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if e.get("choices") and isinstance(e["choices"][0].get("delta"), dict)
    )


def streamed_tool_calls(events: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """index -> (first name seen, concatenated arguments), read straight from the deltas."""
    calls: dict[int, tuple[str, str]] = {}
    for e in events:
        if not e.get("choices"):
            continue
        for frag in e["choices"][0].get("delta", {}).get("tool_calls") or []:
            name, args = calls.get(frag["index"], ("", ""))
            fn = frag.get("function") or {}
            calls[frag["index"]] = (name or fn.get("name") or "", args + (fn.get("arguments") or ""))
    return calls


def last_finish_reason(events: list[dict[str, Any]]) -> str | None:
    reasons = [e["choices"][0].get("finish_reason") for e in events if e.get("choices")]
    found = [r for r in reasons if r]
    return found[-1] if found else None


def json_shape(value: Any) -> Any:
    """A value's JSON type tree: objects keep their keys, arrays the shape of their first item."""
    if isinstance(value, dict):
        return {k: json_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null"


def shape_differences(
    ours: Any,
    reference: Any,
    where: str = "$",
    *,
    nullable: bool = True,
    null_is_absent: bool = False,
    ignore: frozenset[str] = frozenset(),
) -> list[str]:
    """Where ``ours`` lacks a key of ``reference`` or has another JSON type (null matches anything when
    ``nullable``: a field that is null in one answer holds a value in another). ``null_is_absent``: a
    reference key whose value is null may be missing from ours (servers differ on null vs absent);
    ``ignore``: reference keys (at any depth) ours need not have."""
    opts: dict[str, Any] = {"nullable": nullable, "null_is_absent": null_is_absent, "ignore": ignore}
    problems: list[str] = []
    if isinstance(reference, dict):
        if not isinstance(ours, dict):
            return [f"{where}: expected an object, got {json_shape(ours)!r}"]
        for key, value in reference.items():
            if key in ignore or (null_is_absent and value is None and key not in ours):
                continue
            if key not in ours:
                problems.append(f"{where}: missing key {key!r}")
            else:
                problems += shape_differences(ours[key], value, f"{where}.{key}", **opts)
        return problems
    if isinstance(reference, list):
        if not isinstance(ours, list):
            return [f"{where}: expected an array, got {json_shape(ours)!r}"]
        if reference and ours:
            problems += shape_differences(ours[0], reference[0], f"{where}[0]", **opts)
        return problems
    if nullable and (reference is None or ours is None):
        return []
    if json_shape(ours) != json_shape(reference):
        problems.append(f"{where}: {json_shape(ours)!r} where the reference has {json_shape(reference)!r}")
    return problems
