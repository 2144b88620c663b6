"""Worst-case worker memory for one stream from a hostile upstream (docs/reliability.md, issue 10 item 9).

Each scenario runs against a fresh ``gunicorn -c gunicorn.conf.py`` worker (one worker) and the scripted
upstream of tests/hostile_stream_upstream.py. Reported per scenario: the worker's resident memory before
(after one warm-up request), its peak (``VmHWM``) after, the longest answer to ``GET /api/version`` polled
every 20 ms meanwhile (how long the stream stalled other requests), the wall time, and how the stream
ended. Run it alone, once: ``.venv/bin/python benchmarks/stream_memory.py [--limit BYTES] [--only NAME]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.hostile_stream_upstream import (
    DONE,
    Answer,
    HostileStreamUpstream,
    delta,
    finish_event,
    tool_fragment,
)
from tests.servers import REPO, GunicornProcess

USER = [{"role": "user", "content": "hi"}]
Script = Callable[[Answer, dict[str, object]], Awaitable[None]]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def endless(piece: Callable[[int], bytes], total: int, first: bytes = b"") -> Script:
    """Pieces until ``total`` bytes were offered or the proxy hung up; then a proper end."""

    async def script(answer: Answer, body: dict[str, object]) -> None:
        await answer.start()
        if first:
            await answer.send(first)
        sent = i = 0
        while sent < total:
            if answer.closed:
                return
            data = piece(i)
            await answer.send(data)
            sent += len(data)
            i += 1
        await answer.send(finish_event("tool_calls") + DONE)
        await answer.end()

    return script


def scenarios(limit: int) -> dict[str, tuple[str, Script]]:
    """name -> (route, script). "endless" ones offer 16x the bound; "under" ones stop just below it."""
    big = "x" * 16_384
    text = "y" * 16_384
    under_tools = (limit - 2_000) // (len(big) + 64)
    under_text = (limit - 2_000) // len(text)
    return {
        "tool fragments 16 KiB, endless": (
            "/api/chat",
            endless(lambda i: tool_fragment(big), 16 * limit, tool_fragment('{"a":"', name="f")),
        ),
        "tool fragments 1 char, endless": (
            "/api/chat",
            endless(lambda i: tool_fragment("x"), 16 * limit, tool_fragment('{"a":"', name="f")),
        ),
        "tool arguments just under the bound": (
            "/api/chat",
            endless(
                lambda i: tool_fragment(big if i < under_tools else '"}'),
                under_tools * len(tool_fragment(big)) + 1,
                tool_fragment('{"a":"', name="f"),
            ),
        ),
        "generate text 16 KiB deltas, endless": ("/api/generate", endless(lambda i: delta(text), 16 * limit)),
        "generate text just under the bound": (
            "/api/generate",
            endless(lambda i: delta(text), under_text * len(delta(text))),
        ),
        "one endless event": (
            "/api/chat",
            endless(lambda i: b"z" * 65_536, 16 * limit, b'data: {"choices":[{"delta":{"content":"'),
        ),
    }


def run(name: str, route: str, script: Script, upstream: HostileStreamUpstream, limit: int | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "OPENAI_BASE_URL": upstream.base_url,
            "OPENAI_API_KEY": "sk-stream-memory",
            "WEB_CONCURRENCY": "1",
            "FALCON_OLLAMA_ENV_FILE": os.devnull,
            "FALCON_OLLAMA_IDLE_TIMEOUT": "60",
        }
    )
    if limit is not None:
        env["FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES"] = str(limit)
    with GunicornProcess(env) as server:
        assert server.proc is not None
        (worker,) = (
            int(p)
            for p in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        )
        upstream.script = endless(lambda i: delta("warm"), 100)
        httpx.post(server.url + "/api/chat", json={"model": "gpt-4o", "messages": USER}, timeout=30)
        before = status_kb(worker, "VmRSS")
        stop = threading.Event()
        worst = [0.0]

        def probe() -> None:
            with httpx.Client(timeout=120) as client:
                while not stop.is_set():
                    started = time.monotonic()
                    client.get(server.url + "/api/version")
                    worst[0] = max(worst[0], time.monotonic() - started)
                    time.sleep(0.02)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        upstream.script = script
        body = (
            {"model": "gpt-4o", "messages": USER}
            if route == "/api/chat"
            else {"model": "gpt-4o", "prompt": "hi"}
        )
        started = time.monotonic()
        resp = httpx.post(server.url + route, json=body, timeout=300)
        elapsed = time.monotonic() - started
        stop.set()
        prober.join()
        peak = status_kb(worker, "VmHWM")
        last = orjson.loads(resp.content.splitlines()[-1])
        ending = "done" if last.get("done") else f"error: {str(last.get('error'))[:70]}"
        print(
            f"| {name} | {before / 1024:.0f} MB | {peak / 1024:.0f} MB | +{(peak - before) / 1024:.0f} MB "
            f"| {worst[0] * 1000:.0f} ms | {elapsed:.1f} s | {len(resp.content) / 1e6:.1f} MB | {ending} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES")
    parser.add_argument("--only", default=None, help="run the scenarios whose name contains this")
    args = parser.parse_args()
    from falcon_ollama.settings import Settings

    limit = args.limit or Settings().max_stream_accumulated_bytes
    print(f"bound: {limit} bytes; cwd {REPO}")
    print("| scenario | RSS before | peak | growth | longest /api/version | time | answer | end |")
    print("|---|---|---|---|---|---|---|---|")
    with HostileStreamUpstream() as upstream:
        for name, (route, script) in scenarios(limit).items():
            if args.only and args.only not in name:
                continue
            run(name, route, script, upstream, args.limit)


if __name__ == "__main__":
    main()
