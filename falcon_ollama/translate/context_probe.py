"""The one request that makes a llama-cpp-python server name the context it serves. Pure, no I/O.

llama-cpp-python's server (llama.cpp through Python, the one ``pip install llama-cpp-python[server]``
runs) publishes its context (``n_ctx``) nowhere: no ``/props``, no ``meta`` in its list, no
``/v1/models/{id}``. It names it only when it refuses a prompt of at least that many tokens, and that check
comes right after tokenization, before anything is evaluated (``Llama._create_completion``, 0.3.x). So a
``/v1/completions`` request whose prompt is longer than any context such a server plausibly runs is refused
at the cost of tokenizing it, and the refusal says ``maximum context length is N tokens``
(``model_list.context_from_error`` reads it). A server whose context is longer than the prompt would
evaluate it and answer one token: hence a prompt far above the usual contexts
(``FALCON_OLLAMA_CONTEXT_PROBE_TOKENS``) and one try per model and worker.

Its list is recognisable: every entry is ``{"id", "object": "model", "owned_by": "me", "permissions": []}``
(tests/fixtures/real/llamacpp/models.body), which no other server we know writes.
"""

from __future__ import annotations

from typing import Any

import orjson

# One token per repetition in the BPE and SentencePiece vocabularies we know (" hello", "▁hello"); a
# vocabulary that splits it into more only makes the prompt longer in tokens, never shorter.
PROBE_WORD = b"hello "


def wants_context_probe(models: list[dict[str, Any]]) -> bool:
    """Whether a model list is llama-cpp-python's server's: every entry owned by ``"me"`` with an empty
    ``permissions`` list, and nothing a richer server adds (``created``, ``meta``)."""
    return bool(models) and all(
        item.get("owned_by") == "me"
        and item.get("permissions") == []
        and "created" not in item
        and "meta" not in item
        for item in models
    )


def context_probe_body(model: str, tokens: int) -> bytes:
    """The probe's ``/v1/completions`` body: ``tokens`` repetitions of :data:`PROBE_WORD` as the prompt, one
    token at most of answer. Built as bytes (the prompt needs no JSON escaping), not through a 1.5 MB str."""
    return b"".join(
        (
            b'{"model":',
            orjson.dumps(model),
            b',"prompt":"',
            PROBE_WORD * tokens,
            b'","max_tokens":1,"temperature":0}',
        )
    )
