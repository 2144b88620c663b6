"""Ollama ``options`` -> OpenAI sampling parameters: one table row per mapping rule (translate/options.py)."""

from __future__ import annotations

from typing import Any

import pytest

from falcon_ollama.errors import ProxyError
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.translate.options import OPENAI_MAX_STOP_SEQUENCES, UNMAPPABLE, map_options

REASONING_NOTE = " (not supported by reasoning models)"


@pytest.mark.parametrize(
    ("options", "reasoning", "params", "dropped"),
    [
        pytest.param(None, False, {}, [], id="options-absent"),
        pytest.param({}, False, {}, [], id="options-empty"),
        # num_predict: a positive limit maps; -1 (infinite), -2 (fill context) and 0 mean "no limit" here.
        pytest.param({"num_predict": 128}, False, {"max_tokens": 128}, [], id="num_predict-positive"),
        pytest.param(
            {"num_predict": 128}, True, {"max_completion_tokens": 128}, [], id="num_predict-reasoning"
        ),
        pytest.param({"num_predict": -1}, False, {}, [], id="num_predict-minus-one-omitted"),
        pytest.param({"num_predict": -2}, False, {}, [], id="num_predict-minus-two-omitted"),
        pytest.param({"num_predict": 0}, False, {}, [], id="num_predict-zero-omitted"),
        pytest.param({"num_predict": -1}, True, {}, [], id="num_predict-minus-one-reasoning-omitted"),
        pytest.param({"num_predict": 64.9}, False, {"max_tokens": 64}, [], id="num_predict-float-truncated"),
        pytest.param({"num_predict": 1}, False, {"max_tokens": 1}, [], id="num_predict-one"),
        # temperature / top_p / penalties pass 1:1 (as floats)
        pytest.param({"temperature": 0.2}, False, {"temperature": 0.2}, [], id="temperature"),
        pytest.param({"temperature": 0}, False, {"temperature": 0.0}, [], id="temperature-zero-kept"),
        pytest.param({"top_p": 0.9}, False, {"top_p": 0.9}, [], id="top_p"),
        pytest.param(
            {"frequency_penalty": 0.5}, False, {"frequency_penalty": 0.5}, [], id="frequency_penalty"
        ),
        pytest.param(
            {"presence_penalty": -1.5}, False, {"presence_penalty": -1.5}, [], id="presence_penalty"
        ),
        # Ollama takes any number; OpenAI refuses one outside its range: brought inside, and reported
        pytest.param(
            {"temperature": 2.5},
            False,
            {"temperature": 2.0},
            ["temperature (outside OpenAI's range 0 to 2: the nearest bound is sent)"],
            id="temperature-above-range",
        ),
        pytest.param(
            {"temperature": -1},
            False,
            {"temperature": 0.0},
            ["temperature (outside OpenAI's range 0 to 2: the nearest bound is sent)"],
            id="temperature-below-range",
        ),
        pytest.param({"temperature": 2}, False, {"temperature": 2.0}, [], id="temperature-at-the-bound"),
        pytest.param(
            {"top_p": 1.5},
            False,
            {"top_p": 1.0},
            ["top_p (outside OpenAI's range 0 to 1: the nearest bound is sent)"],
            id="top_p-above",
        ),
        pytest.param(
            {"presence_penalty": -3, "frequency_penalty": 9},
            False,
            {"presence_penalty": -2.0, "frequency_penalty": 2.0},
            [
                "presence_penalty (outside OpenAI's range -2 to 2: the nearest bound is sent)",
                "frequency_penalty (outside OpenAI's range -2 to 2: the nearest bound is sent)",
            ],
            id="penalties-outside",
        ),
        # seed: negative means "random" in Ollama -> omitted
        pytest.param({"seed": 42}, False, {"seed": 42}, [], id="seed"),
        pytest.param({"seed": 0}, False, {"seed": 0}, [], id="seed-zero-kept"),
        pytest.param({"seed": -1}, False, {}, [], id="seed-negative-omitted"),
        pytest.param({"seed": 7.0}, False, {"seed": 7}, [], id="seed-float-accepted"),
        pytest.param({"seed": 42}, True, {"seed": 42}, [], id="seed-kept-for-reasoning"),
        # stop: a string or a list of strings; empty strings are not stop sequences
        pytest.param({"stop": "END"}, False, {"stop": ["END"]}, [], id="stop-string"),
        pytest.param({"stop": ["a", "b"]}, False, {"stop": ["a", "b"]}, [], id="stop-list"),
        pytest.param({"stop": ""}, False, {}, [], id="stop-empty-string-omitted"),
        pytest.param({"stop": []}, False, {}, [], id="stop-empty-list-omitted"),
        pytest.param({"stop": ["", "x"]}, False, {"stop": ["x"]}, [], id="stop-empty-items-removed"),
        pytest.param(
            {"stop": ["1", "2", "3", "4"]}, False, {"stop": ["1", "2", "3", "4"]}, [], id="stop-four-kept"
        ),
        pytest.param(
            {"stop": ["1", "2", "3", "4", "5", "6"]},
            False,
            {"stop": ["1", "2", "3", "4"]},
            ["stop (beyond the first 4 sequences)"],
            id="stop-more-than-four-truncated",
        ),
        pytest.param(
            {"stop": ["x"]},
            True,
            {},
            ["stop (not supported by reasoning models)"],
            id="stop-dropped-for-reasoning",
        ),
        # reasoning models reject the sampling parameters: dropped and reported
        pytest.param(
            {"temperature": 0.7}, True, {}, ["temperature" + REASONING_NOTE], id="temperature-reasoning"
        ),
        pytest.param({"top_p": 0.5}, True, {}, ["top_p" + REASONING_NOTE], id="top_p-reasoning"),
        pytest.param(
            {"presence_penalty": 1.0},
            True,
            {},
            ["presence_penalty" + REASONING_NOTE],
            id="presence_penalty-reasoning",
        ),
        pytest.param(
            {"frequency_penalty": 1.0},
            True,
            {},
            ["frequency_penalty" + REASONING_NOTE],
            id="frequency_penalty-reasoning",
        ),
        # unknown keys: ignored silently, as Ollama does (no 400, not reported)
        pytest.param(
            {"foo": 1, "reasoning": "high", "max_tokens": 5}, False, {}, [], id="unknown-keys-ignored"
        ),
        pytest.param({"foo": "wrong type is fine"}, True, {}, [], id="unknown-key-any-type"),
        # None values: skipped before any type check
        pytest.param(
            {"temperature": None, "top_k": None, "stop": None, "use_mmap": None, "num_predict": None},
            False,
            {},
            [],
            id="none-values-skipped",
        ),
        # everything at once: order of the report follows the options' order
        pytest.param(
            {
                "num_predict": 100,
                "temperature": 0.5,
                "top_k": 40,
                "stop": ["x"],
                "num_ctx": 8192,
                "seed": 3,
                "use_mmap": False,
            },
            False,
            {"max_tokens": 100, "temperature": 0.5, "stop": ["x"], "seed": 3},
            ["top_k", "num_ctx", "use_mmap"],
            id="mixed",
        ),
        pytest.param(
            {"num_predict": 100, "temperature": 0.5, "top_k": 40, "top_p": 0.9, "seed": 3},
            True,
            {"max_completion_tokens": 100, "seed": 3},
            ["temperature" + REASONING_NOTE, "top_k", "top_p" + REASONING_NOTE],
            id="mixed-reasoning",
        ),
    ],
)
def test_map_options(options: Any, reasoning: bool, params: dict[str, Any], dropped: list[str]) -> None:
    mapped = map_options(options, reasoning=reasoning)
    assert mapped.params == params
    assert mapped.dropped == dropped


@pytest.mark.parametrize(
    ("options", "param", "python_type"),
    [
        ({"temperature": 1}, "temperature", float),
        ({"top_p": 1}, "top_p", float),
        ({"num_predict": 10.0}, "max_tokens", int),
        ({"seed": 5.5}, "seed", int),
    ],
)
def test_mapped_values_have_the_openai_type(options: dict[str, Any], param: str, python_type: type) -> None:
    value = map_options(options, reasoning=False).params[param]
    assert type(value) is python_type


# Every Ollama option with no OpenAI equivalent, with a value of its valid type: never sent, always reported.
UNMAPPABLE_ROWS: list[tuple[str, Any]] = [
    ("top_k", 40),
    ("min_p", 0.05),
    ("typical_p", 1.0),
    ("repeat_penalty", 1.1),
    ("repeat_last_n", 64),
    ("num_ctx", 4096),
    ("mirostat", 1),
    ("mirostat_tau", 5.0),
    ("mirostat_eta", 0.1),
    ("tfs_z", 1.0),
    ("num_keep", 4),
    ("num_gpu", -1),
    ("num_thread", 8),
    ("num_batch", 512),
    ("main_gpu", 0),
    ("num_gqa", 8),
    ("draft_num_predict", 4),
    ("use_mmap", True),
    ("use_mlock", False),
    ("numa", False),
    ("low_vram", False),
    ("f16_kv", True),
    ("logits_all", False),
    ("vocab_only", False),
    ("embedding_only", False),
    ("penalize_newline", True),
]


@pytest.mark.parametrize(("key", "value"), UNMAPPABLE_ROWS, ids=[row[0] for row in UNMAPPABLE_ROWS])
@pytest.mark.parametrize("reasoning", [False, True], ids=["chat-model", "reasoning-model"])
def test_unmappable_option_is_dropped_and_reported(key: str, value: Any, reasoning: bool) -> None:
    mapped = map_options({key: value}, reasoning=reasoning)
    assert mapped.params == {}
    assert mapped.dropped == [key]


def test_unmappable_table_is_complete() -> None:
    assert {key for key, _ in UNMAPPABLE_ROWS} == set(UNMAPPABLE)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # integer options
        ({"top_k": "40"}, 'option "top_k" must be of type integer'),
        ({"top_k": True}, 'option "top_k" must be of type integer'),
        ({"num_predict": "5"}, 'option "num_predict" must be of type integer'),
        ({"seed": [1]}, 'option "seed" must be of type integer'),
        ({"num_ctx": {"value": 1}}, 'option "num_ctx" must be of type integer'),
        ({"num_ctx": float("nan")}, 'option "num_ctx" must be of type integer'),
        ({"num_ctx": float("inf")}, 'option "num_ctx" must be of type integer'),
        ({"num_predict": False}, 'option "num_predict" must be of type integer'),
        # float options
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"temperature": True}, 'option "temperature" must be of type float32'),
        ({"top_p": [0.9]}, 'option "top_p" must be of type float32'),
        ({"min_p": "0.1"}, 'option "min_p" must be of type float32'),
        ({"repeat_penalty": {}}, 'option "repeat_penalty" must be of type float32'),
        # a wrong type is an error even where the value would be dropped for a reasoning model
        ({"presence_penalty": "x"}, 'option "presence_penalty" must be of type float32'),
        # boolean options
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"use_mmap": "true"}, 'option "use_mmap" must be of type boolean'),
        ({"numa": 0}, 'option "numa" must be of type boolean'),
        # stop
        ({"stop": 5}, 'option "stop" must be of type array'),
        ({"stop": {"a": 1}}, 'option "stop" must be of type array'),
        ({"stop": True}, 'option "stop" must be of type array'),
        ({"stop": ["a", 1]}, 'option "stop" must be of an array of strings'),
        ({"stop": [None]}, 'option "stop" must be of an array of strings'),
        # options itself
        ("fast", "invalid value for 'options': expected an object"),
        ([], "invalid value for 'options': expected an object"),
        ([{"temperature": 1}], "invalid value for 'options': expected an object"),
        (1, "invalid value for 'options': expected an object"),
    ],
)
@pytest.mark.parametrize("reasoning", [False, True], ids=["chat-model", "reasoning-model"])
def test_wrong_types_are_400_with_ollamas_text(options: Any, message: str, reasoning: bool) -> None:
    with pytest.raises(ProxyError) as info:
        map_options(options, reasoning=reasoning)
    assert status_of(info.value) == 400
    assert info.value.message == message


def test_openai_stop_limit_is_four() -> None:
    assert OPENAI_MAX_STOP_SEQUENCES == 4


def test_input_is_not_modified() -> None:
    options = {"stop": ["1", "2", "3", "4", "5"], "temperature": 1, "top_k": 3}
    snapshot = {"stop": ["1", "2", "3", "4", "5"], "temperature": 1, "top_k": 3}
    map_options(options, reasoning=True)
    assert options == snapshot
