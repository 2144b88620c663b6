"""The /api/ps record: keep-alive windows, unload, ordering, forever."""

from __future__ import annotations

import math

from falcon_ollama.catalog_config import CatalogConfig, ModelEntry
from falcon_ollama.running import RunningModels
from falcon_ollama.translate.models import ps_entry


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def entry(name: str) -> ModelEntry:
    return ModelEntry(f"{name}:latest", name, CatalogConfig().facts_for(name), None)


def test_window_expiry_unload_and_order() -> None:
    clock = Clock()
    running = RunningModels(clock)
    running.touch(entry("gpt-4o"), 300)
    running.touch(entry("gpt-4o-mini"), 600)
    running.touch(entry("o3"), math.inf)
    assert [e.upstream_id for e, _ in running.active()] == ["o3", "gpt-4o-mini", "gpt-4o"]
    clock.now += 301
    assert [e.upstream_id for e, _ in running.active()] == ["o3", "gpt-4o-mini"]
    running.touch(entry("gpt-4o-mini"), 0)  # keep_alive 0 unloads
    running.touch(entry("o3"), 0)
    assert running.active() == []


def test_forever_prints_like_go_max_duration() -> None:
    clock = Clock()
    running = RunningModels(clock)
    running.touch(entry("gpt-4o"), math.inf)
    ((e, until),) = running.active()
    assert ps_entry(e, until)["expires_at"].startswith("2316-")
