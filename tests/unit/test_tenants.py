"""The tenants file: parsing, key resolution by digest, model patterns, and errors that never show a key."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from falcon_ollama.settings import Settings, SettingsError
from falcon_ollama.tenants import Limits, Tenant, parse_tenants, read_tenants_file

KEY_A = "tenant-key-AAAAAAAAAAAAAAAAAAAA"
KEY_B = "tenant-key-BBBBBBBBBBBBBBBBBBBB"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


GOOD = f"""
[tenants.team-a]
key_sha256 = ["{sha(KEY_A)}"]
models = ["gpt-4o*", "Llama*"]
requests_per_minute = 60
tokens_per_minute = 100000
concurrent_streams = 4

[tenants.team_b]
key_sha256 = ["SHA256:{sha(KEY_B).upper()}"]
"""


def test_keys_resolve_to_their_tenant() -> None:
    tenants = parse_tenants(GOOD)
    a, b = tenants.resolve(KEY_A), tenants.resolve(KEY_B)
    assert a == Tenant("team-a", ("gpt-4o*", "llama*"), Limits(60, 100_000, 4))
    assert b == Tenant("team_b", ("*",), Limits())
    assert tenants.resolve(KEY_A + "x") is None and tenants.resolve("") is None
    assert tenants.names() == ("team-a", "team_b")
    assert sha(KEY_A) not in repr(tenants) and repr(tenants) == "Tenants(2 tenants, 2 keys)"


def test_model_patterns_match_client_names() -> None:
    tenant = Tenant("t", ("gpt-4o*", "llama3.2"))
    assert tenant.may_use("gpt-4o:latest") and tenant.may_use("GPT-4o-mini")
    assert tenant.may_use("llama3.2:latest") and tenant.may_use("llama3.2")
    assert not tenant.may_use("gpt-5:latest") and not tenant.may_use("llama3.2-vision:latest")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants = 1", "no tenant"),
        ("x = 1", "unknown top-level"),
        ("[tenants.a]\nmodels = ['*']", "key_sha256 must be a non-empty list"),
        ("[tenants.a]\nkey_sha256 = ['abc']", "not a 64-digit hex"),
        (f"[tenants.a]\nkey_sha256 = ['{sha(KEY_A)}']\nrpm = 3", "unknown fields ['rpm']"),
        (f"[tenants.a]\nkey_sha256 = ['{sha(KEY_A)}']\nrequests_per_minute = 0", "at least 1"),
        (f"[tenants.a]\nkey_sha256 = ['{sha(KEY_A)}']\nconcurrent_streams = true", "whole number"),
        (f"[tenants.a]\nkey_sha256 = ['{sha(KEY_A)}']\nmodels = []", "models must be"),
        (f"[tenants.'a b']\nkey_sha256 = ['{sha(KEY_A)}']", "metric label"),
        (
            f"[tenants.a]\nkey_sha256 = ['{sha(KEY_A)}']\n[tenants.b]\nkey_sha256 = ['{sha(KEY_A)}']",
            "already",
        ),
        ("[tenants.a", "not valid TOML"),
    ],
)
def test_bad_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_tenants(text)
    assert message in str(info.value)
    assert sha(KEY_A) not in str(info.value)


def test_every_limit_is_accepted_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(GOOD, encoding="utf-8")
    settings = Settings.from_env({"FALCON_OLLAMA_TENANTS_FILE": str(path)}, env_file=os.devnull)
    assert settings.tenants.limited()


def test_the_setting_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    no_limits = "\n".join(
        line for line in GOOD.splitlines() if not line.endswith(("_minute = 60", "= 100000", "= 4"))
    )
    path.write_text(no_limits, encoding="utf-8")
    settings = Settings.from_env({"FALCON_OLLAMA_TENANTS_FILE": str(path)}, env_file=os.devnull)
    assert settings.tenants == read_tenants_file(str(path))
    assert settings.tenants.resolve(KEY_B) is not None
    with pytest.raises(SettingsError, match="FALCON_OLLAMA_TENANTS_FILE"):
        Settings.from_env({"FALCON_OLLAMA_TENANTS_FILE": str(tmp_path / "missing")}, env_file=os.devnull)
