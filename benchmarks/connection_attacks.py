"""Cost of the client-connection attacks of issue 10 (items 1 and 4) against ``gunicorn -c gunicorn.conf.py``.

One worker, the bundled fake upstream; while a stream runs (a token every 10 ms), one attack at a time:
a huge header block, 2,000 headers, idle sockets. Reported: how long the attacker waits for the server's
answer (or close), the worker's CPU time spent, and the longest gap between two tokens of the concurrent
stream (the event-loop stall another client sees). Run once, not in a loop:

    .venv/bin/python benchmarks/connection_attacks.py [--header-mb 80]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_openai import FakeConfig, FakeUpstreamThread
from tests.integration.test_gunicorn_lifecycle import gunicorn_env, worker_pids
from tests.servers import GunicornProcess


def cpu_seconds(pid: int) -> float:
    """The process's CPU time; NaN once it is gone (a worker killed by gunicorn's heartbeat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stream_gaps(url: str) -> float:
    """The longest gap between two lines of a streamed answer, in seconds."""
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "options": {"num_predict": 1500},
    }
    last = time.monotonic()
    worst = 0.0
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("POST", url + "/api/chat", json=body) as r,
    ):
        async for _ in r.aiter_lines():
            now = time.monotonic()
            worst = max(worst, now - last)
            last = now
    return worst


def attack(port: int, payload: bytes) -> tuple[float, bytes]:
    """Send ``payload`` (from a thread: the server may close early); seconds until answer/close, status."""
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(payload)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sock.settimeout(300)
    first = b""
    with contextlib.suppress(OSError):
        first = sock.recv(64)
    elapsed = time.monotonic() - started
    sock.close()
    sender.join(timeout=30)
    return elapsed, first.split(b"\r\n", 1)[0]


def measure(server: GunicornProcess, name: str, payload: bytes | None) -> None:
    assert server.proc is not None
    time.sleep(1)  # a replaced worker is up
    (worker,) = worker_pids(server.proc.pid)

    async def run() -> tuple[float, tuple[float, bytes]]:
        stream = asyncio.create_task(stream_gaps(server.url))
        await asyncio.sleep(0.5)
        hit = await asyncio.to_thread(attack, server.port, payload) if payload is not None else (0.0, b"-")
        return await stream, hit

    cpu = cpu_seconds(worker)
    gap, (elapsed, status) = asyncio.run(run())
    cpu = cpu_seconds(worker) - cpu
    print(
        f"{name}: answered {status.decode() or '(closed)'} after {elapsed:.2f} s; worker CPU {cpu:.2f} s "
        f"(with the 15 s stream); longest stream gap {gap * 1000:.0f} ms"
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def held_heads(server: GunicornProcess, count: int, size: int) -> None:
    """``count`` connections each holding an unfinished head of ``size`` bytes: the worker's RSS growth."""
    assert server.proc is not None
    (worker,) = worker_pids(server.proc.pid)
    before = rss_mb(worker)
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(count)]
    for sock in socks:
        sock.sendall(b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * size)
    time.sleep(2)
    grown = rss_mb(worker) - before
    for sock in socks:
        sock.close()
    print(
        f"{count} connections holding a {size}-byte unfinished head: worker RSS +{grown:.0f} MB "
        f"({grown * 1024 / count:.0f} KiB each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--header-mb", type=int, default=80)
    parser.add_argument("--held-heads", type=int, default=1000, help="connections holding a near-full head")
    args = parser.parse_args()
    head = b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with (
        FakeUpstreamThread(FakeConfig(tokens=1500, token_delay_ms=10, record=False)) as fake,
        GunicornProcess(gunicorn_env(fake, workers=1)) as server,
    ):
        measure(server, "no attack", None)
        measure(
            server, f"{args.header_mb} MB header", head + b"X: " + b"a" * (args.header_mb << 20) + b"\r\n\r\n"
        )
        many = b"".join(b"X-%d: v\r\n" % i for i in range(2000))
        measure(server, "2,000 headers", head + many + b"\r\n")
        held_heads(server, args.held_heads, 65000)
    print("worker timeouts:", server.output.count(b"WORKER TIMEOUT"))


if __name__ == "__main__":
    main()
