"""The embedded requests-per-minute window: exact across processes, sliding, raising when its store fails."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from falcon_ollama.ratelimit import RequestWindow, retry_after_header


def _worker(path: str, tenant: str, attempts: int, results: multiprocessing.Queue[int]) -> None:
    window = RequestWindow(Path(path))
    results.put(sum(window.acquire(tenant, 60) is None for _ in range(attempts)))
    window.close()


def test_four_processes_share_one_limit(tmp_path: Path) -> None:
    path = str(tmp_path / "w.sqlite")
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, "team", 40, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    accepted = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert sum(accepted) == 60, accepted  # 160 attempts, one limit of 60 across every process
    assert RequestWindow(Path(path)).acquire("other", 60) is None  # tenants are counted apart


def test_the_window_slides(tmp_path: Path) -> None:
    now = [1000.0]
    window = RequestWindow(tmp_path / "w.sqlite", clock=lambda: now[0])
    assert window.acquire("t", 2) is None
    now[0] += 30
    assert window.acquire("t", 2) is None
    wait = window.acquire("t", 2)
    assert wait == 30.0 and retry_after_header(wait) == "30"  # the first request leaves the window in 30 s
    now[0] += 30.5
    assert window.acquire("t", 2) is None
    assert window.acquire("t", 2) is not None


def test_a_broken_store_raises_for_the_limiter_to_decide(tmp_path: Path) -> None:
    window = RequestWindow(tmp_path / "missing-dir" / "w.sqlite")
    for _ in range(2):  # each call tries a new connection
        with pytest.raises(sqlite3.Error):
            window.acquire("t", 1)
