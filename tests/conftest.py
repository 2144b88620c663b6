"""Shared fixtures: a fake OpenAI upstream and our proxy, both real HTTP servers on loopback."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fake_openai import FakeConfig, FakeUpstreamThread
from falcon_ollama.catalog_config import load_catalog_file
from falcon_ollama.settings import Settings
from tests.servers import REPO, ProxyThread, RedisServer

EXAMPLE_CATALOG = REPO / "conf" / "models.toml"


@pytest.fixture
def fake() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig()) as upstream:
        yield upstream


# The tenants' usage ledger of test proxies: never the user's own (~/.local/state/falcon-ollama).
TEST_LEDGER = str(Path(tempfile.gettempdir()) / f"falcon-ollama-tests-{os.getpid()}" / "ledger.sqlite")


def proxy_settings(fake: FakeUpstreamThread, **overrides: object) -> Settings:
    base = Settings(
        openai_base_url=fake.base_url,
        openai_base_url_set=True,
        openai_api_key="sk-test-proxy-key-1234567890",
        models_ttl=300.0,
        ledger_path=TEST_LEDGER,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def start_proxy() -> Iterator[Callable[..., ProxyThread]]:
    """Start our app (uvicorn thread) with Settings built from the fake upstream plus overrides."""
    started: list[ProxyThread] = []

    def _start(fake: FakeUpstreamThread, *, guarded: bool = True, **overrides: object) -> ProxyThread:
        proxy = ProxyThread(proxy_settings(fake, **overrides), guarded=guarded).__enter__()
        started.append(proxy)
        return proxy

    yield _start
    for proxy in reversed(started):
        proxy.__exit__()


@pytest.fixture
def proxy(fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]) -> ProxyThread:
    """The proxy with the example catalog (aliases such as llama3.2 -> gpt-4o-mini)."""
    return start_proxy(fake, catalog=load_catalog_file(EXAMPLE_CATALOG), catalog_path=str(EXAMPLE_CATALOG))


def catalog_path() -> Path:
    return EXAMPLE_CATALOG


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port. Skipped where it is not installed, except under CI
    (scripts/setup_dev.sh installs it there), where its absence fails the test."""
    executable = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/setup_dev.sh installs it when CI is set)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(executable, password="redis-test-password-1234").start()
    yield server
    server.stop()
