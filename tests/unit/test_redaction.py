"""The redactor, the log formatter that applies it, and the bounded model-list parser."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from falcon_ollama.access import ApiKeys
from falcon_ollama.errors import UpstreamProtocolError
from falcon_ollama.logs import configure_logging
from falcon_ollama.redaction import Redactor, redactor_for
from falcon_ollama.resources.error_map import status_of
from falcon_ollama.settings import Settings
from falcon_ollama.translate.model_list import parse_model_list

UPSTREAM = "AIzaSyCONFIGUREDupstream0123456789ab"
INBOUND = "inbound_0123456789abcdef"


def test_literal_keys_of_any_shape_and_key_shaped_text_are_redacted() -> None:
    r = Redactor([UPSTREAM, INBOUND, "EMPTY", None])
    assert repr(r) == "Redactor(2 secrets)" and UPSTREAM not in repr(r)
    text = f"a {UPSTREAM} b {INBOUND}c sk-abc***xyz Bearer tok.en= EMPTY"
    assert r.text(text) == "a [redacted] b [redacted]c [redacted] [redacted] EMPTY"
    assert r.data(text.encode()) == r.text(text).encode()


_FRAGMENTS = [UPSTREAM, INBOUND, UPSTREAM[:12], "sk-", "sk-abc", "task-abcdef", "AIza", "Bearer"]
_FRAGMENTS += ["Bearer x", " ", "a", '"', "/", "\\/", "\n", "é", "0123456789abcdef"]


@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12))
@example(["Bearer x"])
@example(["a sk-abc"])
@example(["AIza", "0123456789abcdef"])
@example([INBOUND])
def test_text_is_exactly_what_the_pattern_makes_of_it(parts: list[str]) -> None:
    """The substring check that skips the pattern never changes the result."""
    r = Redactor([UPSTREAM, INBOUND])
    text = "".join(parts)
    assert r.text(text) == r._all_text.sub("[redacted]", text)


def test_text_without_a_secret_is_returned_as_it_is() -> None:
    line = '{"message":"POST /api/chat 200","model":"task-model","route":"/api/chat"}'
    assert Redactor([UPSTREAM]).text(line) is line


def test_a_stream_chunk_keeps_ordinary_key_shaped_text_but_never_a_configured_key() -> None:
    r = Redactor([UPSTREAM])
    content = b'data: {"choices":[{"delta":{"content":"set api_key = \\"sk-your-key\\""}}]}\n\n'
    assert r.chunk(content) is content
    leaked = b'data: {"choices":[{"delta":{"content":"' + UPSTREAM.encode() + b' sk-your-key"}}]}\n\n'
    assert r.chunk(leaked) == b'data: {"choices":[{"delta":{"content":"[redacted] sk-your-key"}}]}\n\n'
    error = b'data: {"error": {"message": "key sk-abc***xyz rejected"}}\n\n'
    assert r.chunk(error) == b'data: {"error": {"message": "key [redacted] rejected"}}\n\n'


def test_redactor_for_settings_covers_upstream_and_inbound_keys() -> None:
    r = redactor_for(Settings(openai_api_key=UPSTREAM, api_keys=ApiKeys([INBOUND]) + ApiKeys(["x" * 20])))
    assert r.text(f"{UPSTREAM} {INBOUND} {'x' * 20}") == "[redacted] [redacted] [redacted]"
    assert INBOUND not in repr(ApiKeys([INBOUND]))


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_lines_are_redacted_whatever_put_the_key_there(
    fmt: str, restore_root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    configure_logging("debug", fmt, None, Redactor([UPSTREAM, INBOUND]))
    log = logging.getLogger("falcon_ollama.test")
    log.warning("upstream said %s", UPSTREAM, extra={"fields": {"client_key": INBOUND}})
    try:
        raise ValueError(f"boom {INBOUND}")
    except ValueError:
        log.exception("failed with Bearer %s", "abcdefghijklmnop")
    written = out.getvalue()
    assert written.count("[redacted]") >= 4
    assert UPSTREAM not in written and INBOUND not in written and "abcdefghijklmnop" not in written
    if fmt == "json":
        for line in written.splitlines():
            orjson.loads(line)


def models(count: int) -> bytes:
    return orjson.dumps({"object": "list", "data": [{"id": f"m{i}", "created": i} for i in range(count)]})


def test_model_list_parser_caps_and_reads_prefixes() -> None:
    full = parse_model_list(models(50), max_models=100)
    assert len(full.models) == 50 and not full.more
    capped = parse_model_list(models(50), max_models=10)
    assert [m["id"] for m in capped.models] == [f"m{i}" for i in range(10)] and capped.more
    cut = parse_model_list(models(50)[:300], max_models=100, complete=False)
    assert 0 < len(cut.models) < 50 and cut.more
    assert parse_model_list(b'[{"id": "a"}, {"id": ""}, 3, {"x": 1}]', max_models=5).models == [{"id": "a"}]
    keys_first = b'{"object": {"nested": [1, "]"]}, "data": [{"id": "a"}], "more": 1}'
    assert parse_model_list(keys_first, max_models=5).models == [{"id": "a"}]
    assert parse_model_list(b'{"data": []}', max_models=5).models == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "upstream returned an invalid model list (not JSON)"),
        (b'{"data": [{"id": "a"}', "upstream returned an invalid model list (not JSON)"),
        (b'{"object": "list"}', "upstream returned an invalid model list (no 'data' array)"),
        (b'{"data": 3}', "upstream returned an invalid model list (no 'data' array)"),
    ],
)
def test_model_list_parser_refuses_what_is_not_a_list(body: bytes, message: str) -> None:
    with pytest.raises(UpstreamProtocolError) as caught:
        parse_model_list(body, max_models=5)
    assert status_of(caught.value) == 502 and caught.value.message == message
