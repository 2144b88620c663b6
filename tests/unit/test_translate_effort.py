"""Reasoning effort per family: `think` -> a value the family accepts (OpenAI reference)."""

from __future__ import annotations

import pytest

from falcon_ollama.translate.effort import effort_for


@pytest.mark.parametrize(
    ("model", "think", "effort"),
    [
        # gpt-5 (and -mini, -nano): minimal..high, reasons by default
        ("gpt-5", False, "minimal"),
        ("gpt-5-mini", True, None),
        ("gpt-5-nano", "low", "low"),
        ("gpt-5", "max", "high"),
        ("openai/gpt-5", False, "minimal"),
        # gpt-5.1: none..high, does not reason unless asked; 'minimal' would be a 400
        ("gpt-5.1", False, "none"),
        ("gpt-5.1", True, "medium"),
        ("gpt-5.1", "high", "high"),
        ("gpt-5.1", "max", "high"),
        ("gpt-5.1-mini", False, "none"),
        # gpt-5.2 and later: none..xhigh
        ("gpt-5.2", False, "none"),
        ("gpt-5.2", True, "medium"),
        ("gpt-5.2", "max", "xhigh"),
        ("gpt-5.4-mini", "max", "xhigh"),
        # gpt-5-pro: high only
        ("gpt-5-pro", "low", "high"),
        ("gpt-5-pro", False, None),
        # codex: low..high, no off switch
        ("gpt-5-codex", False, None),
        ("gpt-5.1-codex", "max", "high"),
        ("gpt-5.1-codex-max", "max", "xhigh"),
        # gpt-5-chat is not a reasoning model
        ("gpt-5-chat-latest", "high", None),
        # o-series: low..high, cannot switch off; o1-mini takes no effort
        ("o3", False, None),
        ("o4-mini", "max", "high"),
        ("o3-mini", True, None),
        ("o1-mini", "high", None),
        # gpt-oss
        ("gpt-oss-120b", "low", "low"),
        # a reasoning model of an unknown family: the values every family takes
        ("my-reasoner", "max", "high"),
        ("my-reasoner", False, None),
        # unset: never send anything
        ("gpt-5.1", None, None),
    ],
)
def test_effort_for(model: str, think: bool | str | None, effort: str | None) -> None:
    assert effort_for(model, think) == effort
