"""Access control pieces in isolation: origin matching, Host checks, key parsing and verification."""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import socket
from pathlib import Path

import pytest

from falcon_ollama.access import (
    DEFAULT_ORIGINS,
    AccessControl,
    ApiKeys,
    OriginPolicy,
    host_allowed,
    host_of,
    parse_api_keys,
    parse_exempt_paths,
    parse_origins,
    read_api_keys_file,
)
from falcon_ollama.app import access_control
from falcon_ollama.settings import BindAddress, Settings, SettingsError

KEY_A = "inbound-key-AAAAAAAAAAAAAAAA"
KEY_B = "inbound-key-BBBBBBBBBBBBBBBB"


def settings_from(env: dict[str, str], tmp_path: Path) -> Settings:
    return Settings.from_env(env, env_file=os.devnull)


# --- origins -------------------------------------------------------------------------------------------


def test_default_origins_are_ollamas_list_in_order() -> None:
    assert list(DEFAULT_ORIGINS) == [
        "http://localhost",
        "https://localhost",
        "http://localhost:*",
        "https://localhost:*",
        "http://127.0.0.1",
        "https://127.0.0.1",
        "http://127.0.0.1:*",
        "https://127.0.0.1:*",
        "http://0.0.0.0",
        "https://0.0.0.0",
        "http://0.0.0.0:*",
        "https://0.0.0.0:*",
        "app://*",
        "file://*",
        "tauri://*",
        "vscode-webview://*",
        "vscode-file://*",
    ]


@pytest.mark.parametrize(
    ("configured", "origin", "allowed"),
    [
        # Ollama's defaults
        ((), "http://localhost", True),
        ((), "https://localhost", True),
        ((), "http://localhost:3000", True),
        ((), "https://127.0.0.1:8443", True),
        ((), "http://0.0.0.0:8080", True),
        ((), "app://obsidian.md", True),
        ((), "file://", True),
        ((), "tauri://localhost", True),
        ((), "vscode-webview://1a2b3c", True),
        ((), "vscode-file://vscode-app", True),
        ((), "http://example.com", False),
        ((), "https://localhost.evil.com", False),
        ((), "http://127.0.0.1.nip.io", False),
        ((), "http://[::1]:3000", False),  # not in Ollama's list either
        ((), "null", False),
        ((), "chrome-extension://abcdef", False),  # extensions only when configured
        ((), "HTTP://LOCALHOST", False),  # the header is compared as sent, like gin-contrib/cors
        # configured exact entries
        (("https://chat.example.com",), "https://chat.example.com", True),
        (("https://chat.example.com",), "https://chat.example.com:8443", False),
        (("https://chat.example.com",), "http://chat.example.com", False),
        (("chrome-extension://abcdef",), "chrome-extension://abcdef", True),
        # configured wildcards: prefix, suffix, middle
        (("https://*.example.com",), "https://app.example.com", True),
        (("https://*.example.com",), "https://a.b.example.com", True),
        (("https://*.example.com",), "https://example.com", False),
        (("https://*.example.com",), "https://app.example.com.evil.net", False),
        (("http://intranet:*",), "http://intranet:9000", True),
        (("http://intranet:*",), "http://intranet", False),
        (("*.example.com",), "https://x.example.com", True),
        (("http://a*a",), "http://a", False),  # prefix and suffix may not overlap
        (("http://a*a",), "http://aba", True),
        # allow all
        (("*",), "https://anything.example", True),
        (("*",), "null", True),
    ],
)
def test_origin_policy(configured: tuple[str, ...], origin: str, allowed: bool) -> None:
    assert OriginPolicy(configured).allows(origin) is allowed


def test_allow_all_only_with_a_bare_star() -> None:
    assert OriginPolicy(("*",)).allow_all
    assert not OriginPolicy(("https://*.example.com",)).allow_all
    assert not OriginPolicy().allow_all


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://A.example.com", ("https://a.example.com",)),
        (" http://a.test , https://*.b.test ,", ("http://a.test", "https://*.b.test")),
        ("*", ("*",)),
        ("app://*,moz-extension://x", ("app://*", "moz-extension://x")),
    ],
)
def test_parse_origins(value: str, expected: tuple[str, ...]) -> None:
    assert parse_origins(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://*.*.example.com", "only one '\\*'"),
        ("example.com", "must contain '\\*' or start with"),
        ("ftp://files.example.com", "must contain '\\*' or start with"),
    ],
)
def test_bad_origins_are_settings_errors(value: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=rf"^OLLAMA_ORIGINS: .*{message}"):
        settings_from({"OLLAMA_ORIGINS": value}, tmp_path)


# --- Host header ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost:11434", "localhost"),
        ("localhost", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:11434", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("example.com:", "example.com"),
        ("", ""),
        ("[::1", "[::1"),
        ("[::1]x", "[::1]x"),
    ],
)
def test_host_of(header: str, host: str) -> None:
    assert host_of(header) == host


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("", True),
        ("localhost", True),
        ("LOCALHOST:11434", True),
        ("127.0.0.1:11434", True),
        ("127.8.9.10", True),
        ("[::1]:11434", True),
        ("[::1]", True),
        ("::1", True),
        ("0.0.0.0:11434", True),
        ("[::]:11434", True),
        ("10.1.2.3:11434", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("192.168.1.20:8080", True),
        ("[fd00::1]:11434", True),
        ("[::ffff:127.0.0.1]:11434", True),
        ("app.localhost:3000", True),
        ("printer.local", True),
        ("host.docker.internal:11434", True),
        ("ollama.internal", True),
        ("evil.example", False),
        ("evil.example:11434", False),
        ("localhost.evil.example", False),
        ("localhost.", False),  # as Ollama: no trailing-dot normalisation
        ("8.8.8.8", False),
        ("172.32.0.1", False),
        ("169.254.169.254", False),  # link-local (cloud metadata) is not Go's IsPrivate
        ("100.64.0.1", False),  # carrier-grade NAT, not Go's IsPrivate
        ("[2001:db8::1]:11434", False),
        ("[fe80::1]", False),
        ("127.0.0.1.nip.io", False),
        ("internal", False),
        ("notlocal", False),
    ],
)
def test_host_allowed(header: str, allowed: bool) -> None:
    assert host_allowed(header, "build-box-7") is allowed


def test_machine_hostname_is_allowed_case_insensitively() -> None:
    assert host_allowed("Build-Box-7:11434", "build-box-7")
    assert not host_allowed("build-box-8", "build-box-7")
    # AccessControl lower-cases the real hostname once
    control = AccessControl(api_keys=ApiKeys(), origins=OriginPolicy(), check_host=True)
    assert control._hostname == socket.gethostname().lower()


@pytest.mark.parametrize(
    ("bind", "check_host", "active"),
    [
        (BindAddress("127.0.0.1", 11434), True, True),
        (BindAddress("::1", 11434), True, True),
        (BindAddress("localhost", 11434), True, True),
        (BindAddress("127.0.0.1", 11434), False, False),
        (BindAddress("0.0.0.0", 11434), True, False),
        (BindAddress("", 11434), True, False),
        (BindAddress("192.168.1.5", 11434), True, False),
    ],
)
def test_host_check_only_when_bound_to_loopback(bind: BindAddress, check_host: bool, active: bool) -> None:
    settings = Settings(bind=bind, check_host=check_host)
    assert access_control(settings)._check_host is active


# --- keys ----------------------------------------------------------------------------------------------


def test_api_keys_verify_and_never_show_a_key() -> None:
    keys = ApiKeys([KEY_A, KEY_B, KEY_A])
    assert len(keys) == 2 and keys
    assert keys.verify(KEY_A) and keys.verify(KEY_B)
    assert not keys.verify("inbound-key-CCCCCCCCCCCCCCCC")
    assert not keys.verify(KEY_A[:-1])
    assert not keys.verify(KEY_A + "A")
    assert not keys.verify("")
    for text in (repr(keys), str(keys), repr(Settings(api_keys=keys))):
        assert KEY_A not in text and KEY_B not in text
    assert repr(keys) == "ApiKeys(2 configured)"
    assert not ApiKeys() and not ApiKeys().verify("")


def test_api_keys_hold_only_digests() -> None:
    keys = ApiKeys([KEY_A])
    stored = b"".join(keys._digests)
    assert KEY_A.encode() not in stored and len(stored) == 32


def test_api_keys_equality_and_addition() -> None:
    assert ApiKeys([KEY_A, KEY_B]) == ApiKeys([KEY_B]) + ApiKeys([KEY_A])
    assert len(ApiKeys([KEY_A]) + ApiKeys([KEY_A])) == 1
    assert ApiKeys([KEY_A]) != ApiKeys([KEY_B])
    assert hash(ApiKeys([KEY_A, KEY_B])) == hash(ApiKeys([KEY_B, KEY_A]))
    assert Settings() == Settings()  # the default factory compares equal


def test_verify_compares_against_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the number of comparisons does not depend on which key (if any) matched."""
    keys = ApiKeys([KEY_A, KEY_B, "inbound-key-CCCCCCCCCCCCCCCC"])
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(len(a) + len(b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # access.py looks it up per call
    for token in (KEY_A, KEY_B, "wrong", "x" * 500):
        calls.clear()
        keys.verify(token)
        assert calls == [64, 64, 64]  # every key, always fixed-length digests


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (KEY_A, 1),
        (f"{KEY_A},{KEY_B}", 2),
        (f" {KEY_A} , {KEY_B} ,", 2),
        (f"{KEY_A},{KEY_A}", 1),
        ("sk-proj-abc_DEF.ghi~jkl+mno/pqr==", 1),
    ],
)
def test_parse_api_keys(value: str, count: int) -> None:
    assert len(parse_api_keys(value)) == count


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("short-key", "entry 1 is not a valid key"),
        (f"{KEY_A},has space in-it-AAAAAAAA", "entry 2 is not a valid key"),
        (f'{KEY_A},key-with-a-quote-"AAAAAAA', "entry 2 is not a valid key"),
        (",", "no keys"),
    ],
)
def test_bad_keys_are_settings_errors_without_the_key(value: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=rf"^FALCON_OLLAMA_API_KEYS: {message}") as info:
        settings_from({"FALCON_OLLAMA_API_KEYS": value}, tmp_path)
    for part in value.split(","):
        if part.strip():
            assert part.strip() not in str(info.value)


def test_keys_file_with_comments_and_the_variable_combined(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n\n{KEY_B}   # ci\n  # retired: nothing\ninbound-key-CCCCCCCCCCCCCCCC\n")
    s = settings_from({"FALCON_OLLAMA_API_KEYS": KEY_A, "FALCON_OLLAMA_API_KEYS_FILE": str(path)}, tmp_path)
    assert len(s.api_keys) == 3
    assert all(s.api_keys.verify(k) for k in (KEY_A, KEY_B, "inbound-key-CCCCCCCCCCCCCCCC"))
    only_file = settings_from({"FALCON_OLLAMA_API_KEYS_FILE": str(path)}, tmp_path)
    assert len(only_file.api_keys) == 2 and not only_file.api_keys.verify(KEY_A)


def test_keys_file_is_read_once_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(KEY_A + "\n")
    s = settings_from({"FALCON_OLLAMA_API_KEYS_FILE": str(path)}, tmp_path)
    path.write_text(KEY_B + "\n")
    assert s.api_keys.verify(KEY_A) and not s.api_keys.verify(KEY_B)


def test_unreadable_keys_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^FALCON_OLLAMA_API_KEYS_FILE: cannot read .*missing"):
        settings_from({"FALCON_OLLAMA_API_KEYS_FILE": str(tmp_path / "missing")}, tmp_path)
    with pytest.raises(SettingsError, match=r"^FALCON_OLLAMA_API_KEYS_FILE: cannot read"):
        settings_from({"FALCON_OLLAMA_API_KEYS_FILE": str(tmp_path)}, tmp_path)  # a directory
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked"
        locked.write_text(KEY_A)
        locked.chmod(0)
        with pytest.raises(SettingsError, match=r"^FALCON_OLLAMA_API_KEYS_FILE: cannot read"):
            settings_from({"FALCON_OLLAMA_API_KEYS_FILE": str(locked)}, tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no keys in"),
        ("# only a comment\n\n", "no keys in"),
        (f"{KEY_A}\nshort\n", "line 2 of .* is not a valid key"),
        (f"{KEY_A}\ntwo words-AAAAAAAAAAAAAAAA\n", "line 2 of .* is not a valid key"),
    ],
)
def test_bad_keys_file_is_a_settings_error(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(SettingsError, match=rf"^FALCON_OLLAMA_API_KEYS_FILE: {message}") as info:
        settings_from({"FALCON_OLLAMA_API_KEYS_FILE": str(path)}, tmp_path)
    assert KEY_A not in str(info.value)


def test_read_api_keys_file_rejects_binary(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_api_keys_file(str(path))


def test_keys_never_in_redacted_settings(tmp_path: Path) -> None:
    s = settings_from({"FALCON_OLLAMA_API_KEYS": f"{KEY_A},{KEY_B}"}, tmp_path)
    dumped = [repr(s), repr(s.redacted()), json.dumps(s.redacted(), default=str)]
    dumped.append(repr(dataclasses.asdict(s)))
    for text in dumped:
        assert KEY_A not in text and KEY_B not in text
    assert "ApiKeys(2 configured)" in dumped[1]


# --- other settings ------------------------------------------------------------------------------------


def test_access_defaults(tmp_path: Path) -> None:
    s = settings_from({}, tmp_path)
    assert not s.api_keys
    assert s.auth_exempt_paths == frozenset({"/", "/health", "/ready"})
    assert s.ollama_origins == ()
    assert s.check_host is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/health", {"/health"}),
        ("/, /health/ ,/metrics,", {"/", "/health", "/metrics"}),
        ("/api/version,/api/tags", {"/api/version", "/api/tags"}),
    ],
)
def test_parse_exempt_paths(value: str, expected: set[str]) -> None:
    assert parse_exempt_paths(value) == frozenset(expected)


def test_bad_exempt_path_and_check_host_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^FALCON_OLLAMA_AUTH_EXEMPT_PATHS: 'health'"):
        settings_from({"FALCON_OLLAMA_AUTH_EXEMPT_PATHS": "/,health"}, tmp_path)
    with pytest.raises(SettingsError, match=r"^FALCON_OLLAMA_CHECK_HOST: expected true or false"):
        settings_from({"FALCON_OLLAMA_CHECK_HOST": "maybe"}, tmp_path)
    assert settings_from({"FALCON_OLLAMA_CHECK_HOST": "false"}, tmp_path).check_host is False
