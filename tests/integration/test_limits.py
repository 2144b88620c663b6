"""Input limits and hostile bodies: each refused with an Ollama-shaped error, never a 500 or a crash."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from fake_openai import FakeUpstreamThread
from tests.servers import ProxyThread

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


def post(
    proxy: ProxyThread, path: str, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return httpx.post(proxy.url + path, content=content, headers={"content-type": content_type})


def assert_error(resp: httpx.Response, status: int, fragment: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert fragment in resp.json()["error"]


@pytest.fixture
def small(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> ProxyThread:
    return start_proxy(
        fake, max_json_depth=8, max_messages=3, max_images=2, max_image_bytes=1000, max_text_chars=50
    )


@pytest.mark.parametrize(
    "path", ["/api/chat", "/api/generate", "/api/embed", "/api/show", "/v1/chat/completions"]
)
def test_deep_nesting_is_400(small: ProxyThread, path: str) -> None:
    deep = b'{"model": "gpt-4o", "x": ' + b"[" * 20 + b"]" * 20 + b"}"
    resp = post(small, path, deep)
    assert resp.status_code == 400 and "nested too deeply" in resp.text


@pytest.mark.parametrize("path", ["/api/chat", "/api/embed", "/api/show"])
def test_duplicate_keys_are_400(small: ProxyThread, path: str) -> None:
    assert_error(post(small, path, b'{"model": "gpt-4o", "model": "o4-mini"}'), 400, "duplicate key 'model'")


def test_escaped_quote_colon_inside_strings_is_not_a_duplicate(small: ProxyThread) -> None:
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "say \\":\\" twice"}]}'
    assert post(small, "/api/chat", body).status_code == 200


def test_too_many_messages_images_and_text(small: ProxyThread) -> None:
    many = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}] * 4}
    assert_error(httpx.post(small.url + "/api/chat", json=many), 413, "too many messages")
    images = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x", "images": [PNG, PNG, PNG]}]}
    assert_error(httpx.post(small.url + "/api/chat", json=images), 413, "too many images")
    big_image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000).decode()
    one = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x", "images": [big_image]}]}
    assert_error(httpx.post(small.url + "/api/chat", json=one), 413, "image 0 is too large")
    text = {"model": "gpt-4o", "messages": [{"role": "user", "content": "y" * 51}]}
    assert_error(httpx.post(small.url + "/api/chat", json=text), 413, "too long")
    prompt = {"model": "gpt-4o", "prompt": "y" * 51}
    assert_error(httpx.post(small.url + "/api/generate", json=prompt), 413, "too long")
    embed = {"model": "text-embedding-3-small", "input": ["y" * 30, "y" * 30]}
    assert_error(httpx.post(small.url + "/api/embed", json=embed), 413, "too long")


CHAT = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], '


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "invalid JSON"),
        (b'{"model": "gpt-4o"\x00}', "invalid JSON"),
        (CHAT + b'"options": {"seed": 99999999999999999999999999}}', 'option "seed" must be of type integer'),
        (CHAT + b'"options": {"temperature": 1e999}}', "invalid JSON"),
    ],
)
def test_hostile_bytes_and_numbers_are_400(proxy: ProxyThread, content: bytes, fragment: str) -> None:
    assert_error(post(proxy, "/api/chat", content), 400, fragment)


def test_nul_inside_a_string_is_fine(proxy: ProxyThread) -> None:
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "a\\u0000b"}], "stream": false}'
    assert post(proxy, "/api/chat", body).status_code == 200


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "application/xml", "text/html"])
def test_wrong_content_types_are_400(proxy: ProxyThread, content_type: str) -> None:
    assert_error(
        post(proxy, "/api/show", b'{"model": "gpt-4o"}', content_type), 400, "unsupported content type"
    )


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", ""])
def test_curl_style_content_types_are_accepted(proxy: ProxyThread, content_type: str) -> None:
    assert post(proxy, "/api/show", b'{"model": "gpt-4o"}', content_type).status_code == 200


def test_duplicate_keys_with_mixed_spacing_are_400(small: ProxyThread) -> None:
    assert_error(post(small, "/api/show", b'{"model" :"gpt-4o","model":"o4-mini"}'), 400, "duplicate key")


def test_depth_setting_is_capped_where_forwarding_stays_possible() -> None:
    from falcon_ollama.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="FALCON_OLLAMA_MAX_JSON_DEPTH: at most 250"):
        Settings.from_mapping({"FALCON_OLLAMA_MAX_JSON_DEPTH": "1000"})


@pytest.fixture
def few_values(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> ProxyThread:
    return start_proxy(fake, max_json_values=1000, max_json_depth=8)


@pytest.mark.parametrize("path", ["/api/chat", "/api/embed", "/api/show", "/v1/chat/completions"])
@pytest.mark.parametrize("item", [b"[]", b'{"a":1}', b'"ab"', b"0.5"])
def test_bodies_of_many_small_values_are_413(few_values: ProxyThread, path: str, item: bytes) -> None:
    """64 MB of ``[[],[],...]`` cost 21-54 s and 1.4-3.5 GB: the values are now counted before parsing."""
    resp = post(few_values, path, b'{"model":"gpt-4o","x":[' + b",".join([item] * 1000) + b"]}")
    assert resp.status_code == 413, resp.text
    assert "request body has too many JSON values (limit 1000 values and keys)" in resp.text


def test_the_value_limit_is_exact(few_values: ProxyThread) -> None:
    def body(zeros: int) -> bytes:  # 1 + '{' ':' ',' ':' '[' + the commas between the zeros
        return b'{"model":"gpt-4o","x":[' + b",".join([b"0"] * zeros) + b"]}"

    assert post(few_values, "/api/show", body(995)).status_code == 200
    assert_error(post(few_values, "/api/show", body(996)), 413, "too many JSON values")


def test_punctuation_inside_strings_is_not_structure(few_values: ProxyThread) -> None:
    """Text full of commas, colons, brackets and escaped quotes is neither values nor nesting."""
    text = '[{"a": [1, 2], "b": {}}, \\" ,:' * 500 + "[" * 100
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "stream": False}
    assert httpx.post(few_values.url + "/api/chat", json=chat).status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"a\\":\\"b","content":"c"}]}',
        b'{"model":"gpt-4o","options":{"seed":1,"x":{"seed":2},"seed":3}}',
        b'{"model":"gpt-4o","messages":[{"role":"user","content":"\\\\","role":"user"}]}',
    ],
)
def test_nested_duplicate_keys_are_found_exactly(few_values: ProxyThread, content: bytes) -> None:
    assert_error(post(few_values, "/api/chat", content), 400, "duplicate key")


def test_default_value_limit(proxy: ProxyThread) -> None:
    """A 2 MB body of a million zeros is within the byte limit, not within the default value limit."""
    zeros = b'{"model":"gpt-4o","x":[' + b",".join([b"0"] * 1_000_000) + b"]}"
    assert_error(post(proxy, "/api/show", zeros), 413, "too many JSON values (limit 1000000 values and keys)")


def test_duplicate_keys_among_many_containers(proxy: ProxyThread) -> None:
    """One duplicate among 20,000 objects is found (keys written vs keys parsed, over the whole body)."""
    many = b"[" + b",".join([b'{"k":[]}'] * 20_000) + b"]"
    assert post(proxy, "/api/show", b'{"model":"gpt-4o","x":' + many + b"}").status_code == 200
    twice = b'{"model":"gpt-4o","x":' + many + b',"model":"o4-mini"}'
    assert_error(post(proxy, "/api/show", twice), 400, "duplicate key 'model'")
