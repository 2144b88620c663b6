"""What one hostile (or just large) request body costs the proxy: CPU seconds, peak RSS, and the longest
pause it causes in another client's stream. Issue 10, items 2 and 3; figures in docs/reliability.md.

Runs the bundled fake upstream and the proxy (one uvicorn process, so the figures are one worker's) on
loopback ports, then for each body: resets the proxy's peak-RSS counter (``/proc/PID/clear_refs``), starts a
streamed ``/api/chat`` (one event every 10 ms from the fake), sends the body, and reads the proxy's CPU time
and ``VmHWM``. Bounded: one request per body, a timeout per request. Linux only.

    .venv/bin/python benchmarks/body_cost.py [--mb 64] [--only lists,embed_fanout]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
# A long stream (one event every 10 ms) to watch, and OpenAI-sized embeddings.
FAKE_OPTIONS = ["--tokens", "100000", "--token-delay-ms", "10", "--embedding-dim", "1536", "--no-record"]
QUIET = ["--log-level", "warning", "--no-access-log"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, int]]:
    fake_port, port = free_port(), free_port()
    py = sys.executable
    fake = subprocess.Popen(
        [py, "-m", "fake_openai", "--port", str(fake_port), *FAKE_OPTIONS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "FALCON_OLLAMA_ALLOW_UNLISTED_MODELS": "true",
        "FALCON_OLLAMA_LOG_LEVEL": "warning",
    }
    proxy = subprocess.Popen(
        [py, "-m", "uvicorn", "--factory", "falcon_ollama.app:app_from_env", "--port", str(port), *QUIET],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(f"http://127.0.0.1:{fake_port}/v1/models")
        wait_up(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}", proxy.pid
    finally:
        for process in (proxy, fake):
            process.terminate()
            process.wait(timeout=30)


class StreamWatch:
    """A streamed chat on another connection, read by another process (so that building and sending the
    big body here cannot delay it); records the longest gap between two chunks."""

    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("fork")
        self._stop = context.Event()
        self._started = context.Event()
        self._gap = context.Value("d", 0.0)
        self._process = context.Process(target=_watch, args=(url, self._started, self._stop, self._gap))

    @property
    def max_gap(self) -> float:
        return float(self._gap.value)

    def __enter__(self) -> StreamWatch:
        self._process.start()
        self._started.wait(30)
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)
        self._stop.set()
        self._process.join(30)


def _watch(url: str, started: Any, stop: Any, gap: Any) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", url + "/api/chat", json=body, timeout=300) as resp:
        last = time.monotonic()
        for _ in resp.iter_raw():
            now = time.monotonic()
            if started.is_set():
                gap.value = max(gap.value, now - last)
            else:
                started.set()
            last = now
            if stop.is_set():
                return


def _list_of(item: bytes, size: int) -> bytes:
    count = max(1, size // (len(item) + 1))
    return b"[" + b",".join([item] * count) + b"]"


def _capped(head: bytes, item: bytes, values_each: int, size: int) -> bytes:
    items = _list_of(item, (999_900 // values_each) * (len(item) + 1))
    return head + items + b',"pad":"' + b"a" * (size - len(head) - len(items) - 16) + b'"}'


def bodies(size: int) -> dict[str, tuple[str, Callable[[], bytes]]]:
    size -= 1024  # just under the body limit (the head is ~110 bytes)
    head = (
        b'{"model":"gpt-4o","stream":false,"options":{"num_predict":8},'
        b'"messages":[{"role":"user","content":"hi"}],"x":'
    )
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(size // 3 * 3 // 4 - 64)).decode()
    return {
        "lists": ("/api/chat", lambda: head + _list_of(b"[]", size) + b"}"),
        "objects": ("/api/chat", lambda: head + _list_of(b'{"a":1}', size) + b"}"),
        "strings": ("/api/chat", lambda: head + _list_of(b'"ab"', size) + b"}"),
        "numbers": ("/api/chat", lambda: head + _list_of(b"0.5", size) + b"}"),
        "dup_keys": ("/api/chat", lambda: head + _list_of(b'{"a":1,"a":2}', size) + b"}"),
        "escapes": ("/api/chat", lambda: head + b'"' + b'\\"' * (size // 2) + b'"}'),
        "v1_lists": ("/v1/chat/completions", lambda: head + _list_of(b"[]", size) + b"}"),
        "images_3": (
            "/api/chat",
            lambda: orjson.dumps(
                {
                    "model": "gpt-4o",
                    "stream": False,
                    "options": {"num_predict": 8},
                    "messages": [{"role": "user", "content": "describe", "images": [image] * 3}],
                }
            ),
        ),
        # The most a body within the default value limit (1,000,000) can hold, the rest of it one string.
        "capped_lists": ("/api/chat", lambda: _capped(head, b"[]", 2, size)),
        "capped_objects": ("/api/chat", lambda: _capped(head, b'{"a":1}', 3, size)),
        "embed_2048": (
            "/api/embed",
            lambda: orjson.dumps({"model": "text-embedding-3-small", "input": ["a"] * 2048}),
        ),
        "embed_fanout": (
            "/api/embed",
            lambda: orjson.dumps({"model": "text-embedding-3-small", "input": ["a"] * 20_000}),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=64, help="size of the hostile bodies (default 64 MiB)")
    parser.add_argument("--only", default="", help="comma-separated body names")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    chosen = bodies(args.mb * 1024 * 1024)
    names = [n for n in args.only.split(",") if n] or list(chosen)
    print(f"{'body':<13} {'MiB':>6} {'status':>6} {'cpu s':>6} {'peak MiB':>9} {'stall s':>8}  answer")
    with servers() as (url, pid):
        base = rss_mb(pid, "VmRSS")
        print(f"(proxy RSS at rest: {base:.0f} MiB)")
        for name in names:
            path, build = chosen[name]
            body = build()
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            with StreamWatch(url) as watch:
                before = cpu_seconds(pid)
                try:
                    resp = httpx.post(
                        url + path,
                        content=body,
                        headers={"content-type": "application/json"},
                        timeout=args.timeout,
                    )
                    status, answer = str(resp.status_code), resp.content
                except httpx.HTTPError as exc:
                    status, answer = "fail", type(exc).__name__.encode()
                cpu = cpu_seconds(pid) - before
            peak = rss_mb(pid, "VmHWM")
            shown = answer[:70].decode(errors="replace") if len(answer) < 10_000 else f"{len(answer)} bytes"
            size = len(body) / 2**20
            print(f"{name:<13} {size:6.1f} {status:>6} {cpu:6.2f} {peak:9.0f} {watch.max_gap:8.2f}  {shown}")
            del body, answer


if __name__ == "__main__":
    main()
