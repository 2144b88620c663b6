"""Every setting the code reads is documented in .env.example and the README's table."""

from __future__ import annotations

import re

from tests.servers import REPO


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in [REPO / "gunicorn.conf.py", *(REPO / "falcon_ollama").glob("*.py")]:
        text = path.read_text()
        names |= set(re.findall(r'r\.get\(\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'environ\.get\(\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'env\.get\(\s*"([A-Z][A-Z0-9_]+)"', text))
    return names


def test_code_reads_the_expected_settings() -> None:
    names = variables_read_by_the_code()
    assert {"OLLAMA_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL", "WEB_CONCURRENCY"} <= names
    assert len(names) >= 20


def test_every_setting_is_in_env_example() -> None:
    example = (REPO / ".env.example").read_text()
    missing = sorted(n for n in variables_read_by_the_code() if f"{n}=" not in example)
    assert not missing, f"not documented in .env.example: {missing}"


def test_every_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = sorted(n for n in variables_read_by_the_code() if n not in readme)
    assert not missing, f"not documented in README.md: {missing}"
