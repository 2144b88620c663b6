"""``/v1/completions`` <-> generate (translate/completions.py): one row per rule of Ollama's middleware."""

from __future__ import annotations

import json
from typing import Any

import pytest

from falcon_ollama.errors import InvalidRequest
from falcon_ollama.translate.completions import CompletionReplies, completion_to_generate

BASE = {"model": "m", "prompt": "p"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {"model": "m", "prompt": "p", "options": {}, "stream": False}),
        ({"stream": True}, {"stream": True}),
        ({"stop": "END"}, {"options": {"stop": ["END"]}}),
        ({"stop": ["a", "b"]}, {"options": {"stop": ["a", "b"]}}),
        (
            {"max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "seed": 3},
            {"options": {"num_predict": 5, "temperature": 0.5, "top_p": 0.9, "seed": 3}},
        ),
        (
            {"frequency_penalty": 0.1, "presence_penalty": 0.2},
            {"options": {"frequency_penalty": 0.1, "presence_penalty": 0.2}},
        ),
        ({"suffix": "tail"}, {"suffix": "tail"}),
        ({"suffix": ""}, {}),  # an empty suffix is no suffix
        ({"logprobs": 2}, {"logprobs": True, "top_logprobs": 2}),
        ({"logprobs": 0}, {}),
        ({"n": 3, "echo": True, "best_of": 2, "user": "u"}, {}),  # ignored, as Ollama ignores them
        ({"prompt": None}, {"prompt": ""}),
    ],
)
def test_request(extra: dict[str, Any], expected: dict[str, Any]) -> None:
    want = {"model": "m", "prompt": "p", "options": {}, "stream": False} | expected
    assert completion_to_generate(BASE | extra) == want


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"prompt": ["a"]}, "invalid type for 'prompt' field: expected a string"),
        ({"suffix": 3}, "invalid type for 'suffix' field: expected a string"),
        ({"stop": ["a", 1]}, "invalid type for 'stop' field: float64"),
        ({"stop": [True]}, "invalid type for 'stop' field: bool"),
        ({"stop": [{}]}, "invalid type for 'stop' field: map[string]interface {}"),
    ],
)
def test_request_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        completion_to_generate(BASE | extra)
    assert caught.value.message == message


FINAL = {
    "model": "llama3.2",
    "response": "",
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 4,
    "eval_count": 2,
}
PART = {"model": "llama3.2", "response": "w0 ", "done": False}


def events(raw: bytes) -> list[Any]:
    assert raw.endswith(b"\n\n")
    out: list[Any] = []
    for event in raw.split(b"\n\n")[:-1]:
        assert event.startswith(b"data: ")
        data = event[len(b"data: ") :]
        out.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return out


def test_answer() -> None:
    whole = CompletionReplies("cmpl-1", 100).answer({**FINAL, "response": "hello"})
    assert whole == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 100,
        "model": "llama3.2",
        "system_fingerprint": "fp_ollama",
        "choices": [{"text": "hello", "index": 0, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }


@pytest.mark.parametrize("include_usage", [False, True])
def test_events(include_usage: bool) -> None:
    replies = CompletionReplies("cmpl-1", 100, include_usage=include_usage)
    lines = (json.dumps(PART) + "\n" + json.dumps(FINAL) + "\n").encode()
    out = events(replies.events(lines))
    assert [e["choices"][0]["text"] for e in out[:2]] == ["w0 ", ""]
    assert [e["choices"][0]["finish_reason"] for e in out[:2]] == [None, "stop"]
    assert all("usage" not in e for e in out[:2])
    if include_usage:
        assert out[2]["choices"] == [] and out[2]["usage"] == {
            "prompt_tokens": 4,
            "completion_tokens": 2,
            "total_tokens": 6,
        }
    assert out[-1] == "[DONE]" and len(out) == (4 if include_usage else 3)


def test_an_error_line_is_openais_error_event() -> None:
    out = events(CompletionReplies("cmpl-1", 100).events(b'{"error":"upstream broke"}\n'))
    assert out == [{"error": {"message": "upstream broke", "type": "api_error", "param": None, "code": None}}]
