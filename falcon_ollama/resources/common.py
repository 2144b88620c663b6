"""What every Ollama resource does the same way: read a JSON body, write a JSON body, read the model field.

Bodies are read whole (bounded by ``max_body_bytes``) and parsed once with orjson, after the cheap checks
of :func:`falcon_ollama.limits.parse_json` (values, depth, duplicate keys). Error texts follow
Ollama's where clients might show them: ``missing request body``, ``model is required``.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import orjson

from falcon_ollama import memory_budget
from falcon_ollama.errors import OllamaError
from falcon_ollama.limits import Limits, check_content_type, parse_json
from falcon_ollama.wire import JSON_CONTENT_TYPE


async def read_body(req: falcon.asgi.Request, max_bytes: int) -> bytes:
    """The request body, refusing (413) anything above ``max_bytes`` before reading it all, and reserved on
    the worker's memory budget (503 when it is in use): its length before a byte is read, else as it comes."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise OllamaError(413, f"request body too large (limit {max_bytes} bytes)")
    reserved = length or 0
    memory_budget.reserve_body(reserved)
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > max_bytes:
            raise OllamaError(413, f"request body too large (limit {max_bytes} bytes)")
        if size > reserved:
            memory_budget.reserve_body(size - reserved)
            reserved = size
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json_object(req: falcon.asgi.Request, limits: Limits) -> dict[str, Any]:
    """The body as a JSON object within ``limits``; 400 (413 for size) with a clear message otherwise."""
    check_content_type(req.content_type)
    body = await read_body(req, limits.max_body_bytes)
    if not body.strip():
        raise OllamaError(400, "missing request body")
    data = parse_json(body, limits)
    if not isinstance(data, dict):
        raise OllamaError(400, f"request body must be a JSON object, not {_json_type(data)}")
    return data


async def read_model_body(req: falcon.asgi.Request, limits: Limits) -> tuple[dict[str, Any], str]:
    """The body as a JSON object and its model name (``model``, else ``name``); 400 when there is none."""
    body = await read_json_object(req, limits)
    name = model_field(body)
    if not name:
        raise OllamaError(400, "model is required")
    return body, name


def optional_str(body: dict[str, Any], key: str) -> str | None:
    """A string field, absent/null -> None; any other type is a 400 naming the field."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise OllamaError(400, f"invalid value for '{key}': expected a string, got {_json_type(value)}")


def optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise OllamaError(400, f"invalid value for '{key}': expected true or false, got {_json_type(value)}")


def model_field(body: dict[str, Any]) -> str:
    """``model`` with the deprecated ``name`` as fallback (Ollama's ``cmp.Or(req.Model, req.Name)``)."""
    return optional_str(body, "model") or optional_str(body, "name") or ""


def send_json(resp: falcon.asgi.Response, payload: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = orjson.dumps(payload)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
