"""[backends.<name>] in the catalog file (falcon_ollama/backends.py) and the implicit default backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from falcon_ollama.backends import DEFAULT_BACKEND, Link
from falcon_ollama.breaker import Breaker
from falcon_ollama.catalog_config import parse_catalog
from falcon_ollama.settings import Settings
from falcon_ollama.upstreams import Upstreams

ENV = {"AZ_KEY": "azure-secret-key-123456789"}


def _parse(backends: dict[str, Any], **more: Any) -> Any:
    return parse_catalog({"backends": backends, **more}, source="t", environ=ENV)


def test_no_backends_table_is_one_default_backend_from_openai_settings() -> None:
    s = Settings(openai_api_key="sk-one-key-1234567890", openai_base_url="http://x:1/v1", openai_project="p")
    (only,) = s.backends
    assert (only.name, only.base_url, only.api_key, only.implicit) == (
        DEFAULT_BACKEND,
        "http://x:1/v1",
        s.openai_api_key,
        True,
    )
    assert only.auth_headers() == {"openai-project": "p", "authorization": "Bearer sk-one-key-1234567890"}


def test_a_backend_reads_its_key_from_a_variable_or_a_file_and_never_shows_it(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("file-secret-key-0987654321\n")
    config = parse_catalog(
        {
            "backends": {
                "azure": {"base_url": "https://a/openai/v1", "api_key_env": "AZ_KEY", "auth": "api-key"},
                "local": {
                    "base_url": "http://l/v1",
                    "api_key_file": "k",
                    "prefix": "local/",
                    "max_retries": 0,
                },
            }
        },
        environ=ENV,
        base_dir=tmp_path,
    )
    azure, local = config.backends
    assert azure.auth_headers() == {"api-key": ENV["AZ_KEY"]}
    assert local.auth_headers() == {"authorization": "Bearer file-secret-key-0987654321"}
    assert local.overrides() == {"max_retries": 0}
    assert ENV["AZ_KEY"] not in repr(config) and "file-secret" not in repr(config)
    assert Settings(catalog=config).backends == config.backends and not Settings(catalog=config).offline


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"base_url": "http://a/v1", "api_key": "sk-inline"}, "never write a key"),
        ({"base_url": "http://a/v1", "api_key_env": "UNSET_VAR"}, "UNSET_VAR is not set"),
        ({"base_url": "http://a/v1", "api_key_env": "AZ_KEY", "api_key_file": "f"}, "not both"),
        ({"base_url": "ftp://a"}, "base_url"),
        ({"base_url": "http://a/v1", "auth": "basic"}, "auth"),
        ({"base_url": "http://a/v1", "dialect": "completions"}, "dialect"),
        ({"base_url": "http://a/v1", "headers": {"Authorization": "x"}}, "would carry a key"),
        ({"base_url": "http://a/v1", "models": []}, "models"),
        ({"base_url": "http://a/v1", "idle_timeout": 0}, "idle_timeout"),
        ({"base_url": "http://a/v1", "colour": "red"}, "unknown key"),
    ],
)
def test_bad_backend_tables_are_refused_naming_the_key(table: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        _parse({"b": table})


def test_two_backends_serving_one_name_is_an_error_naming_both() -> None:
    with pytest.raises(ValueError, match="backends a and b both use the prefix"):
        _parse(
            {
                "a": {"base_url": "http://a/v1", "prefix": "x/"},
                "b": {"base_url": "http://b/v1", "prefix": "x/"},
            }
        )
    with pytest.raises(ValueError, match="'m1' is served by backends a and b without a prefix"):
        _parse(
            {
                "a": {"base_url": "http://a/v1", "models": ["m1"]},
                "b": {"base_url": "http://b/v1", "models": ["m1"]},
            }
        )


def test_each_backend_gets_its_own_upstream_with_its_dialect_and_settings() -> None:
    config = _parse(
        {
            "a": {"base_url": "http://a/v1", "dialect": "responses", "max_connections": 3},
            "b": {"base_url": "http://b/v1", "prefix": "b/"},
        }
    )
    pool = Upstreams(Settings(catalog=config, max_connections=50))
    a, b = pool
    assert (a.name, a.dialect, a.base_url, a._settings.max_connections) == (
        "a",
        "responses",
        "http://a/v1",
        3,
    )
    assert (b.name, b.dialect, b._settings.max_connections) == ("b", "chat", 50)
    assert pool.first is a and set(pool.breakers) == {"a", "b"}


def test_aliases_may_be_a_fallback_chain() -> None:
    config = _parse({"x": {"base_url": "http://a/v1"}}, aliases={"q": ["x/m1", "m2"], "p": "x/m3"})
    assert config.targets("q") == ("x/m1", "m2") and config.targets("p") == ("x/m3",)
    assert config.aliases == {"q": "x/m1", "p": "x/m3"}
    with pytest.raises(ValueError, match=r"aliases\.z"):
        _parse({}, aliases={"z": []})
    assert Link("x", "m1").backend == "x"


def test_breaker_opens_after_failures_then_half_opens_for_one_probe() -> None:
    now = [0.0]
    breaker = Breaker(2, 10.0, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
