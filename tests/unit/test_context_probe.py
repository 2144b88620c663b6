"""The context probe's pure half: which lists are llama-cpp-python's, and the request sent to them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from falcon_ollama.translate.context_probe import PROBE_WORD, context_probe_body, wants_context_probe
from falcon_ollama.translate.model_list import parse_model_list
from tests.real_fixtures import llamacpp, openai_bytes

LLAMA_ENTRY = {"id": "tiny-llama", "object": "model", "owned_by": "me", "permissions": []}


def _listed(body: bytes) -> list[dict[str, Any]]:
    return parse_model_list(body, max_models=100).models


@pytest.mark.parametrize(
    ("models", "wanted"),
    [
        (_listed(llamacpp("models").body), True),  # recorded from llama-cpp-python 0.3.36
        (_listed(openai_bytes("models_list.json")), False),  # recorded from OpenAI
        ([], False),
        ([LLAMA_ENTRY], True),
        ([{**LLAMA_ENTRY, "created": 1700000000}], False),  # a richer server that happens to say "me"
        ([{**LLAMA_ENTRY, "meta": {"n_ctx_train": 4096}}], False),  # llama.cpp's own server: it has /props
        ([{**LLAMA_ENTRY, "permissions": None}], False),
        ([{**LLAMA_ENTRY, "owned_by": "vllm"}], False),
        ([LLAMA_ENTRY, {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "system"}], False),
        ([{"id": "qwen3-8b", "object": "model", "owned_by": "vllm", "max_model_len": 32768}], False),
    ],
)
def test_only_llama_cpp_python_lists_are_probed(models: list[dict[str, Any]], wanted: bool) -> None:
    assert wants_context_probe(models) is wanted


@pytest.mark.parametrize(("model", "tokens"), [("tiny-llama", 2100), ('we"ird\\ \u00e9 name', 5), ("m", 0)])
def test_probe_body_is_a_one_token_completion_of_a_long_prompt(model: str, tokens: int) -> None:
    body = json.loads(context_probe_body(model, tokens))
    assert body["model"] == model
    assert body["prompt"] == PROBE_WORD.decode() * tokens
    assert len(body["prompt"].split()) == tokens
    assert body["max_tokens"] == 1 and body["temperature"] == 0
    assert set(body) == {"model", "prompt", "max_tokens", "temperature"}
