"""What one tenant limit check costs per request (issue 15): the embedded store against a real Redis.

``Limiter.acquire`` as a request pays it, driven on one event loop: wall time per check (the request waits
that long) and CPU time of this process per check (what the worker spends). Cases, each 2000 checks:

* embedded (SQLite WAL file on /dev/shm, its work in a thread): a limit of 60, full (each check refused),
  and a limit of 10^6 (each check accepted, the window growing to 2000 rows);
* Redis (a local redis-server on loopback, started here; skipped without one): the same two cases, one Lua
  round trip each;
* the loop's own cost of running a coroutine that does nothing, for reference.

Figures printed at the end and kept in the JSON report; docs/performance.md records a run.

    .venv/bin/pytest benchmarks/test_limit_check.py --benchmark-only -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.limit_store import EmbeddedStore, Limiter, RedisStore

TITLE = "Tenant limit check (Limiter.acquire): per check"
ROUNDS = 2000


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def _measure(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    loop: asyncio.AbstractEventLoop,
    label: str,
    check: Callable[[], Awaitable[object]],
) -> None:
    def once() -> None:
        loop.run_until_complete(check())  # type: ignore[arg-type]

    for _ in range(50):  # warm: connections, the script cached in Redis, the SQLite file created
        once()
    cpu = time.process_time()
    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    cpu_us = (time.process_time() - cpu) / ROUNDS * 1e6
    wall_us = benchmark.stats.stats.median * 1e6
    benchmark.extra_info.update({"wall_median_us": wall_us, "cpu_us": cpu_us})
    figures.setdefault(TITLE, []).append(f"{label:<44} wall median {wall_us:8.1f} µs   CPU {cpu_us:8.1f} µs")


def test_loop_reference(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], loop: asyncio.AbstractEventLoop
) -> None:
    async def nothing() -> None:
        return None

    _measure(benchmark, figures, loop, "reference: an empty coroutine", nothing)


@pytest.mark.parametrize(("case", "limit"), [("full, refused", 60), ("accepted", 1_000_000)])
def test_embedded(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    loop: asyncio.AbstractEventLoop,
    case: str,
    limit: int,
) -> None:
    base = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    limiter = Limiter(EmbeddedStore(base / "w.sqlite", timeout=1.0))
    try:
        _measure(
            benchmark, figures, loop, f"embedded SQLite, {case}", lambda: limiter.acquire(f"t{limit}", limit)
        )
    finally:
        loop.run_until_complete(limiter.store.close())
        shutil.rmtree(base)


@pytest.mark.parametrize(("case", "limit"), [("full, refused", 60), ("accepted", 1_000_000)])
def test_redis(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    loop: asyncio.AbstractEventLoop,
    redis_url: str,
    case: str,
    limit: int,
) -> None:
    limiter = Limiter(RedisStore(redis_url, timeout=1.0, max_backoff=1.0))
    try:
        _measure(
            benchmark, figures, loop, f"Redis (loopback), {case}", lambda: limiter.acquire(f"t{limit}", limit)
        )
    finally:
        loop.run_until_complete(limiter.store.close())
