"""``limits.measure``: the shape of a JSON text from its punctuation, against a plain character scan."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from falcon_ollama.errors import OllamaError
from falcon_ollama.limits import Limits, Shape, _small_shape, measure, parse_json

_TEXT = st.text(alphabet='ab"\\[]{},:é \n/', max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


def scanned(raw: bytes) -> Shape:
    """The definition, one character at a time: 1 + the ``[{,:`` outside strings, the ``:`` outside
    strings, the deepest nesting."""
    values, keys, depth, level = 1, 0, 0, 0
    in_string = escaped = False
    for char in raw.decode():
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            values += 1
            level += 1
            depth = max(depth, level)
        elif char in "]}":
            level -= 1
        elif char in ",:":
            values += 1
            keys += char == ":"
    return Shape(values=values, keys=keys, depth=depth)


@given(_JSON)
def test_the_shape_of_any_document_is_the_scanned_one(doc: Any) -> None:
    raw = orjson.dumps(doc)
    assert measure(raw, 10**9) == scanned(raw)


def test_a_document_of_many_strings_is_measured_the_same() -> None:
    """Past the count of strings split at their quotes, the regex passes give the same shape."""
    for doc in ([f'"{i}":[]' for i in range(5000)], {f"k{i}": "]" for i in range(5000)}):
        raw = orjson.dumps(doc)
        assert measure(raw, 10**9) == scanned(raw)


@pytest.mark.parametrize("raw", [b'{"a": "b}', b'{"a"": 1}', b'["x", "y]'])
def test_unpaired_quotes_are_invalid_json(raw: bytes) -> None:
    with pytest.raises(OllamaError) as caught:
        parse_json(raw, Limits())
    assert caught.value.status == 400 and "invalid JSON" in caught.value.message


def test_the_value_bound_counts_what_the_scan_counts() -> None:
    raw = orjson.dumps({"messages": [{"role": "user", "content": "a: [b], {c}"}] * 3})
    bound = scanned(raw).values
    assert measure(raw, bound) == scanned(raw)
    with pytest.raises(OllamaError) as caught:
        measure(raw, bound - 1)
    assert caught.value.status == 413


@given(_JSON, st.integers(0, 6))
def test_a_small_body_gets_the_scanned_keys_and_the_depth_limit_of_the_scan(doc: Any, limit: int) -> None:
    """Bodies up to 64 KiB skip the value count (fewer bytes than the value limit) and the exact depth
    when their brackets cannot pass the limit: the keys and the depth verdict stay the scan's."""
    raw = orjson.dumps(doc)
    keys, depth = _small_shape(raw, limit)
    scan = scanned(raw)
    assert keys == scan.keys
    assert (depth > limit) == (scan.depth > limit)
    if depth > limit:
        assert depth == scan.depth


@pytest.mark.parametrize("size", [10, 60_000, 70_000])
def test_a_duplicate_key_is_refused_in_a_small_body_and_a_large_one(size: int) -> None:
    raw = b'{"model": "m", "pad": "' + b"x" * size + b'", "model": "n"}'
    with pytest.raises(OllamaError) as caught:
        parse_json(raw, Limits())
    assert caught.value.status == 400 and "duplicate key 'model'" in caught.value.message


@pytest.mark.parametrize("size", [0, 70_000])
def test_nesting_over_the_limit_is_refused_in_a_small_body_and_a_large_one(size: int) -> None:
    raw = b'{"pad": "' + b"[" * size + b'", "x": ' + b"[" * 65 + b"]" * 65 + b"}"
    with pytest.raises(OllamaError) as caught:
        parse_json(raw, Limits(max_json_depth=64))
    assert caught.value.status == 400 and "nested too deeply" in caught.value.message
    assert len(parse_json(raw, Limits(max_json_depth=66))["pad"]) == size
