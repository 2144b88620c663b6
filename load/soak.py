"""Soak test: hold N concurrent streaming chats through ``gunicorn -c gunicorn.conf.py`` for a while.

Starts the bundled fake upstream (paced tokens) and the proxy exactly as production runs it, keeps
``--streams`` streams going (each one reconnects when it ends), checks every answer is intact, and samples
each worker's resident memory and open file descriptors every ``--sample`` seconds. It fails (exit 1)
on any error, or if RSS or the descriptor count of a worker grew between the first and the last sample
window by more than ``--tolerance`` (default 5%). Loopback only, bounded in time.

    python load/soak.py --minutes 10 --streams 100          # the README's run
    python load/soak.py --minutes 1 --streams 100 --json reports/soak.json   # CI
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.1)


def worker_pids(master: int) -> list[int]:
    return sorted(int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Tally:
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    tokens: int = 0


async def one_stream_loop(
    session: aiohttp.ClientSession, url: str, tokens: int, expected: str, stop_at: float, tally: Tally
) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "soak"}]}
    while time.monotonic() < stop_at:
        text = ""
        done = False
        try:
            async with session.post(url + "/api/chat", json=body) as resp:
                if resp.status != 200:
                    tally.errors.append(f"HTTP {resp.status}: {(await resp.text())[:200]}")
                    continue
                async for line in resp.content:
                    chunk = orjson.loads(line)
                    if "error" in chunk:
                        tally.errors.append(f"stream error: {chunk['error']}")
                        break
                    text += chunk["message"]["content"]
                    done = chunk["done"]
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if not done or text != expected:
            tally.errors.append(f"incomplete stream ({len(text)} of {len(expected)} characters)")
        else:
            tally.completed += 1
            tally.tokens += tokens


async def sampler(
    master: int, every: float, stop_at: float, samples: list[dict[int, tuple[float, int]]]
) -> None:
    while time.monotonic() < stop_at:
        await asyncio.sleep(every)
        samples.append({pid: (rss_mb(pid), open_fds(pid)) for pid in worker_pids(master)})


async def drive(
    args: argparse.Namespace, url: str, master: int, expected: str
) -> tuple[Tally, list[dict[int, tuple[float, int]]]]:
    tally = Tally()
    samples: list[dict[int, tuple[float, int]]] = []
    stop_at = time.monotonic() + args.minutes * 60
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loops = [
            one_stream_loop(session, url, args.tokens, expected, stop_at, tally) for _ in range(args.streams)
        ]
        await asyncio.gather(sampler(master, args.sample, stop_at, samples), *loops)
    return tally, samples


def window(
    samples: list[dict[int, tuple[float, int]]], first: bool, size: int
) -> dict[int, tuple[float, float]]:
    chosen = samples[:size] if first else samples[-size:]
    pids = set.intersection(*(set(s) for s in chosen)) if chosen else set()
    return {
        pid: (statistics.median(s[pid][0] for s in chosen), statistics.median(s[pid][1] for s in chosen))
        for pid in pids
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--token-delay-ms", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed growth, first vs last window")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()

    upstream_port, proxy_port = free_port(), free_port()
    fake_args = ["--host", "127.0.0.1", "--port", str(upstream_port), "--tokens", str(args.tokens)]
    fake_args += ["--token-delay-ms", str(args.token_delay_ms), "--no-record"]
    fake = subprocess.Popen([sys.executable, "-m", "fake_openai", *fake_args], cwd=REPO)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FALCON_OLLAMA_"))}
    env.update(
        {
            "OLLAMA_HOST": f"127.0.0.1:{proxy_port}",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
            "OPENAI_API_KEY": "sk-soak",
            "WEB_CONCURRENCY": str(args.workers),
            "FALCON_OLLAMA_CATALOG": str(REPO / "conf" / "models.toml"),
            "FALCON_OLLAMA_ENV_FILE": os.devnull,
            "FALCON_OLLAMA_LOG_LEVEL": "warning",
        }
    )
    proxy = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=REPO, env=env)
    url = f"http://127.0.0.1:{proxy_port}"
    try:
        wait_http(f"http://127.0.0.1:{upstream_port}/v1/models")
        wait_http(url + "/api/tags")
        expected = "".join(f"w{i} " for i in range(args.tokens))
        started = time.monotonic()
        tally, samples = asyncio.run(drive(args, url, proxy.pid, expected))
        elapsed = time.monotonic() - started
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=60)
        fake.terminate()
        fake.wait(timeout=10)

    settled = samples[len(samples) // 4 :]  # the first quarter is warm-up (allocator, caches, pools)
    size = max(1, min(3, len(settled) // 3))
    first, last = window(settled, True, size), window(settled, False, size)
    growth_ok = True
    print(f"\nsoak: {args.streams} streams x {args.minutes:g} min, {args.workers} workers, "
          f"{args.tokens} tokens at {args.token_delay_ms:g} ms")  # fmt: skip
    rate = tally.completed / elapsed
    print(f"completed streams: {tally.completed}  ({rate:.1f}/s), errors: {len(tally.errors)}")
    print(f"{'worker':>8} {'RSS first':>10} {'RSS last':>9} {'FDs first':>10} {'FDs last':>9}")
    workers = []
    for pid in sorted(set(first) & set(last)):
        (rss0, fd0), (rss1, fd1) = first[pid], last[pid]
        print(f"{pid:>8} {rss0:>9.1f}M {rss1:>8.1f}M {fd0:>10.0f} {fd1:>9.0f}")
        workers.append(
            {"pid": pid, "rss_first_mb": rss0, "rss_last_mb": rss1, "fds_first": fd0, "fds_last": fd1}
        )
        if rss1 > rss0 * (1 + args.tolerance) or fd1 > fd0 * (1 + args.tolerance) + 2:
            growth_ok = False
    for error in tally.errors[:10]:
        print("error:", error)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_bytes(
            orjson.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "streams": args.streams,
                    "minutes": args.minutes,
                    "completed": tally.completed,
                    "errors": len(tally.errors),
                    "workers": workers,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    ok = not tally.errors and growth_ok and tally.completed > 0 and bool(workers)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
