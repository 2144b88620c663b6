"""Live reload of backends (issue 14): SIGHUP to gunicorn's master with streams in flight."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx

from fake_openai import FakeConfig, FakeUpstreamThread, expected_text
from tests.integration.test_gunicorn_lifecycle import (
    all_under_way,
    gunicorn_env,
    stream_chat,
    wait_for_two_workers,
)
from tests.servers import GunicornProcess

STREAMS = 50
TOKENS = 40


def _names(url: str) -> set[str]:
    return {m["name"] for m in httpx.get(url + "/api/tags", timeout=10).json()["models"]}


def test_sighup_adds_a_backend_without_dropping_streams_and_a_broken_file_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "models.toml"
    with (
        FakeUpstreamThread(FakeConfig(tokens=TOKENS, token_delay_ms=50, record=False)) as first,
        FakeUpstreamThread(FakeConfig(models=["qwen3-8b"], record=False)) as second,
    ):
        one = f'[backends.openai]\nbase_url = "{first.base_url}"\n'
        catalog.write_text(one)
        env = {**gunicorn_env(first), "FALCON_OLLAMA_CATALOG": str(catalog)}
        with GunicornProcess(env) as server:
            assert server.proc is not None
            assert "gpt-4o:latest" in _names(server.url)
            assert "local/qwen3-8b:latest" not in _names(server.url)

            async def run() -> list[tuple[str, bool]]:
                under_way: list[int] = []
                streams = [asyncio.create_task(stream_chat(server.url, under_way)) for _ in range(STREAMS)]
                await all_under_way(under_way, STREAMS)
                catalog.write_text(
                    one + f'[backends.local]\nbase_url = "{second.base_url}"\nprefix = "local/"\n'
                )
                assert server.proc is not None
                server.proc.send_signal(signal.SIGHUP)
                return list(await asyncio.gather(*streams))

            assert asyncio.run(run()) == [(expected_text(TOKENS), True)] * STREAMS
            wait_for_two_workers(server.proc.pid)
            for _ in range(10):  # every worker lists the new backend's models
                assert {"local/qwen3-8b:latest", "gpt-4o:latest"} <= _names(server.url)

            catalog.write_text('[backends.broken]\nbase_url = "ftp://nowhere"\n')
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(1)
            assert server.proc.poll() is None, "the master exited on a bad configuration"
            wait_for_two_workers(server.proc.pid)
            for _ in range(10):  # the running configuration keeps serving
                assert {"local/qwen3-8b:latest", "gpt-4o:latest"} <= _names(server.url)
    assert b"backends.broken.base_url must be an http:// or https:// URL" in server.output
    assert b"reload refused: the running configuration is kept" in server.output


def test_a_changed_catalog_file_reloads_by_itself_when_watched(tmp_path: Path) -> None:
    """FALCON_OLLAMA_CONFIG_WATCH_SECONDS: no signal sent; the master sees the file change and reloads."""
    catalog = tmp_path / "models.toml"
    with (
        FakeUpstreamThread(FakeConfig(record=False)) as first,
        FakeUpstreamThread(FakeConfig(models=["qwen3-8b"], record=False)) as second,
    ):
        one = f'[backends.openai]\nbase_url = "{first.base_url}"\n'
        catalog.write_text(one)
        env = {
            **gunicorn_env(first),
            "FALCON_OLLAMA_CATALOG": str(catalog),
            "FALCON_OLLAMA_CONFIG_WATCH_SECONDS": "0.2",
        }
        with GunicornProcess(env) as server:
            assert server.proc is not None
            assert "local/qwen3-8b:latest" not in _names(server.url)
            catalog.write_text(one + f'[backends.local]\nbase_url = "{second.base_url}"\nprefix = "local/"\n')
            deadline = time.monotonic() + 30
            while not all("local/qwen3-8b:latest" in _names(server.url) for _ in range(10)):
                assert time.monotonic() < deadline, "the changed file was never applied by every worker"
                time.sleep(0.2)
            catalog.write_text("[backends.broken]\nbase_url = 1\n")  # refused: the running one is kept
            time.sleep(1.5)
            assert server.proc.poll() is None
            wait_for_two_workers(server.proc.pid)
            for _ in range(10):
                assert {"local/qwen3-8b:latest", "gpt-4o:latest"} <= _names(server.url)
    assert b"configuration file changed" in server.output
    assert b"reload refused: the running configuration is kept" in server.output
