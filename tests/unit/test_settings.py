"""Settings: OLLAMA_HOST parsing like Ollama, validation with one clear line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcon_ollama.resources.responses import forwards
from falcon_ollama.settings import BindAddress, Settings, SettingsError, parse_ollama_host, read_env_file


def empty_env(tmp_path: Path) -> Path:
    path = tmp_path / "empty.env"
    path.touch()
    return path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, BindAddress("127.0.0.1", 11434)),
        ("", BindAddress("127.0.0.1", 11434)),
        ("0.0.0.0", BindAddress("0.0.0.0", 11434)),
        ("0.0.0.0:8080", BindAddress("0.0.0.0", 8080)),
        (":9999", BindAddress("", 9999)),
        ("example.com", BindAddress("example.com", 11434)),
        ("http://10.0.0.5", BindAddress("10.0.0.5", 80)),
        ("https://10.0.0.5", BindAddress("10.0.0.5", 443)),
        ("http://10.0.0.5:1234/some/path", BindAddress("10.0.0.5", 1234)),
        ("[::1]:11435", BindAddress("::1", 11435)),
        ("[::]", BindAddress("::", 11434)),
        ("::1", BindAddress("::1", 11434)),
        ("  127.0.0.1:5000  ", BindAddress("127.0.0.1", 5000)),
    ],
)
def test_ollama_host_is_parsed_like_ollama(value: str | None, expected: BindAddress) -> None:
    assert parse_ollama_host(value) == expected


@pytest.mark.parametrize("value", ["127.0.0.1:abc", "127.0.0.1:0", "127.0.0.1:70000", "ftp://x", "[::1"])
def test_bad_ollama_host_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^OLLAMA_HOST: "):
        parse_ollama_host(value)


def test_bind_strings_for_servers() -> None:
    assert BindAddress("", 9999).gunicorn_bind == "0.0.0.0:9999"
    assert BindAddress("::1", 80).gunicorn_bind == "[::1]:80"
    assert BindAddress("127.0.0.1", 1).is_loopback
    assert BindAddress("localhost", 1).is_loopback
    assert not BindAddress("", 1).is_loopback
    assert not BindAddress("0.0.0.0", 1).is_loopback


def test_defaults_without_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here: the default file is optional
    s = Settings.from_env({})
    assert s.openai_base_url == "https://api.openai.com/v1"
    assert s.offline
    assert s.bind == BindAddress("127.0.0.1", 11434)
    assert s.catalog.aliases["llama3.2"] == "gpt-4o-mini"  # the shipped catalog, on every start path


def test_key_or_base_url_leaves_offline_mode(tmp_path: Path) -> None:
    none = empty_env(tmp_path)
    assert not Settings.from_env({"OPENAI_API_KEY": "sk-x"}, env_file=none).offline
    local = Settings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/"}, env_file=none)
    assert not local.offline
    assert local.openai_base_url == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENAI_BASE_URL", "api.openai.com"),
        ("FALCON_OLLAMA_CONNECT_TIMEOUT", "-1"),
        ("FALCON_OLLAMA_CONNECT_TIMEOUT", "soon"),
        ("FALCON_OLLAMA_MAX_CONNECTIONS", "0"),
        ("FALCON_OLLAMA_ALLOW_UNLISTED_MODELS", "maybe"),
        ("FALCON_OLLAMA_REPORTED_VERSION", "latest"),
        ("FALCON_OLLAMA_LOG_LEVEL", "loud"),
        ("FALCON_OLLAMA_RESPONSES_MODE", "maybe"),
        ("OLLAMA_KEEP_ALIVE", "5 minutes"),
        ("FALCON_OLLAMA_MODELS_TTL", "nan"),
        ("FALCON_OLLAMA_CATALOG", "/nonexistent/models.toml"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value}, env_file=empty_env(tmp_path))
    assert str(info.value).startswith(f"{name}: ")
    assert "\n" not in str(info.value)


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\n"
        "export OPENAI_API_KEY='sk-from-file'\n"
        'OPENAI_BASE_URL="http://127.0.0.1:9/v1"\n'
        "FALCON_OLLAMA_LOG_LEVEL=debug # trailing comment\n"
        "\n"
        "OLLAMA_KEEP_ALIVE=10m\n"
    )
    s = Settings.from_env({"FALCON_OLLAMA_LOG_LEVEL": "warning"}, env_file=env)
    assert s.openai_api_key == "sk-from-file"
    assert s.openai_base_url == "http://127.0.0.1:9/v1"
    assert s.log_level == "warning"
    assert s.keep_alive_default == 600.0


def test_malformed_env_file_line_is_reported(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GOOD=1\nthis is not a setting\n")
    with pytest.raises(SettingsError, match=r":2: expected KEY=VALUE"):
        read_env_file(env)


def test_redacted_never_shows_the_key(tmp_path: Path) -> None:
    s = Settings.from_env({"OPENAI_API_KEY": "sk-secret-value-123"}, env_file=empty_env(tmp_path))
    text = repr(s.redacted())
    assert "sk-secret-value-123" not in text
    assert "(set)" in text


def test_catalog_file_is_loaded(tmp_path: Path) -> None:
    cat = tmp_path / "models.toml"
    cat.write_text('[aliases]\n"llama3.2" = "gpt-4o-mini"\n')
    s = Settings.from_env({"FALCON_OLLAMA_CATALOG": str(cat)}, env_file=empty_env(tmp_path))
    assert s.catalog.aliases == {"llama3.2": "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('KEY="quoted value" # a comment', "quoted value"),
        ("KEY='single' #c", "single"),
        ("KEY=bare # comment", "bare"),
        ("KEY=with#hash", "with#hash"),
        ('KEY="has # inside"', "has # inside"),
    ],
)
def test_env_file_values(tmp_path: Path, line: str, value: str) -> None:
    env = tmp_path / ".env"
    env.write_text(line + "\n")
    assert read_env_file(env) == {"KEY": value}


@pytest.mark.parametrize(("content", "message"), [(b'KEY="open\n', "unterminated quote"),
                                                  (b'KEY="a" b\n', "after the closing quote"),
                                                  (b"KEY=\xff\xfe\n", "not UTF-8")])  # fmt: skip
def test_env_file_errors(tmp_path: Path, content: bytes, message: str) -> None:
    env = tmp_path / ".env"
    env.write_bytes(content)
    with pytest.raises(SettingsError, match=message):
        read_env_file(env)


def test_named_env_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"FALCON_OLLAMA_ENV_FILE: .*no such file"):
        Settings.from_env({}, env_file=tmp_path / "missing.env")
    with pytest.raises(SettingsError, match="no such file"):
        Settings.from_env({"FALCON_OLLAMA_ENV_FILE": str(tmp_path / "missing.env")})


@pytest.mark.parametrize(
    ("mode", "base_url", "forwarded"),
    [
        ("auto", "https://api.openai.com/v1", True),
        ("auto", "https://API.OpenAI.com:443/v1", True),
        ("auto", "http://127.0.0.1:8080/v1", False),
        ("auto", "https://openrouter.ai/api/v1", False),
        ("forward", "http://127.0.0.1:8080/v1", True),
        ("translate", "https://api.openai.com/v1", False),
    ],
)
def test_responses_mode(mode: str, base_url: str, forwarded: bool, tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"FALCON_OLLAMA_RESPONSES_MODE": mode.upper(), "OPENAI_BASE_URL": base_url},
        env_file=empty_env(tmp_path),
    )
    assert settings.responses_mode == mode
    assert forwards(settings.responses_mode, settings.openai_base_url) is forwarded
