"""``format: {schema}`` on upstreams that refuse ``response_format: json_schema`` (llama.cpp's server).

The translation builds both requests (:meth:`ChatPlan.json_object_fallback`, the same for
``/v1/responses``' plan); this decides when to send the
second: once, when the first was refused with a message that names ``json_schema``. The refusal is a 400 by
then (upstream.py maps a 500 that says the request is invalid to 400, without retrying it), so nothing else
is retried here and a request without a schema is never sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson

from falcon_ollama.upstream import UpstreamError

log = logging.getLogger("falcon_ollama.relay")

T = TypeVar("T")


class FormatPlan(Protocol):
    """A translated chat completion request that can be sent again in JSON mode (ChatPlan, ResponsesPlan)."""

    @property
    def body(self) -> dict[str, Any]: ...

    def json_object_fallback(self) -> dict[str, Any] | None: ...


def refuses_json_schema(error: UpstreamError) -> bool:
    """The upstream refused the request (400) and said why: its ``json_schema`` response format."""
    return error.status == 400 and "json_schema" in error.message


def with_format_fallback(
    plan: FormatPlan, body: bytes, send: Callable[[bytes], Awaitable[T]]
) -> Awaitable[T]:
    """``send(body)``; if the upstream refuses json_schema, ``send`` once more with the JSON-mode request.
    (A request without a response format is sent as it is: no wrapping coroutine on the common path.)"""
    if "response_format" not in plan.body:
        return send(body)
    return _with_fallback(plan, body, send)


async def _with_fallback(plan: FormatPlan, body: bytes, send: Callable[[bytes], Awaitable[T]]) -> T:
    try:
        return await send(body)
    except UpstreamError as exc:
        fallback = plan.json_object_fallback() if refuses_json_schema(exc) else None
        if fallback is None:
            raise
        log.info(
            "the upstream refused response_format json_schema (HTTP %s); sent again in JSON mode with the"
            " schema in a system message",
            exc.upstream_status,
        )
        return await send(orjson.dumps(fallback))
