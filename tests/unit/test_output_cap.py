"""A completion limit above the model's own (translate/output_cap.py): the refusal read, the request cut."""

from __future__ import annotations

import json

import orjson
import pytest

from falcon_ollama.translate.output_cap import cap_from_refusal, within_cap
from tests.real_fixtures import openai_json

COMPLETION_TOKENS = (
    b'{"error":{"message":"max_completion_tokens is too large: 200000. This model supports at most 100000 '
    b'completion tokens, whereas you provided 200000."}}'
)
RECORDED = next(c for c in openai_json("errors.json") if c["name"] == "max_tokens_above_model_output")


@pytest.mark.parametrize(
    ("body", "cap"),
    [
        (json.dumps(RECORDED["body"]).encode(), 16384),  # OpenAI's own words, recorded for gpt-4o
        (COMPLETION_TOKENS, 100000),
        (b'{"error":{"message":"This model\'s maximum context length is 8192 tokens."}}', None),
        (b"", None),
        (b"max_tokens is too large: 5. This model supports at most 0 completion tokens", None),
    ],
)
def test_cap_from_refusal(body: bytes, cap: int | None) -> None:
    assert cap_from_refusal(body) == cap


@pytest.mark.parametrize(
    ("body", "cap", "out"),
    [
        ({"model": "m", "max_tokens": 32000}, 16384, {"model": "m", "max_tokens": 16384}),
        ({"max_completion_tokens": 32000}, 16384, {"max_completion_tokens": 16384}),
        ({"max_tokens": 100}, 16384, None),  # within: nothing to change
        ({"model": "m"}, 16384, None),
        ({"max_tokens": True}, 0, None),
    ],
)
def test_within_cap(body: dict[str, object], cap: int, out: dict[str, object] | None) -> None:
    result = within_cap(orjson.dumps(body), cap)
    assert (orjson.loads(result) if result is not None else None) == out


def test_within_cap_of_what_is_not_an_object() -> None:
    assert within_cap(b"[1]", 5) is None and within_cap(b"{bad", 5) is None
