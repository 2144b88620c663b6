"""Worst-case memory of one worker under the default limits, measured (issue 10 item 14; docs/deployment.md).

One ``gunicorn -c gunicorn.conf.py`` worker (WEB_CONCURRENCY=1, default limits or FALCON_OLLAMA_* from the
environment) against the scripted upstream
of tests/hostile_stream_upstream.py, driven through the most expensive request of each kind the limits allow:

* ``heads``: connections each holding an unfinished head just under FALCON_OLLAMA_MAX_HEADER_BYTES;
* ``streams``: ``/api/generate`` streams whose text stays just under
  FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES, then completes (its ``context`` is built: the worst
  stream, docs/reliability.md);
* ``bodies``: ``/api/chat`` bodies just under FALCON_OLLAMA_MAX_BODY_BYTES holding as many values as
  FALCON_OLLAMA_MAX_JSON_VALUES allows, the rest one string (the worst accepted body, docs/reliability.md);
* ``answers``: non-streamed ``/api/chat`` whose upstream answer is a valid completion just under
  FALCON_OLLAMA_MAX_UPSTREAM_BODY_BYTES (read, translated, sent);
* ``embeds``: ``/api/embed`` at FALCON_OLLAMA_MAX_EMBED_INPUTS inputs, answered with 1,536-dimension vectors.

Each kind runs alone on a fresh worker (its cost per request, ``count`` at once), then all of them at once on
another fresh worker. ``--flood N``: N answers and N bodies at their bounds at once, once with the worker's
memory budget off (FALCON_OLLAMA_WORKER_MEMORY_BUDGET=0) and once on (its default, or the environment's):
the budget refuses (503) what would pass it, so the peak stays near the budget.

Reported: the worker's RSS at rest (after a warm-up), its peak (``VmHWM``), the growth,
the statuses, and any ``WORKER TIMEOUT``. Bounded: the counts given, one round each, loopback only.

    .venv/bin/python benchmarks/worst_case_memory.py [--heads 1000 --streams 4 --bodies 2 --answers 2 \
        --embeds 2] [--only-combined] [--flood 16]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from falcon_ollama.settings import Settings
from tests.hostile_stream_upstream import Answer, HostileStreamUpstream, delta, finish_event
from tests.servers import GunicornProcess

# The limits the worker runs with: the defaults, or FALCON_OLLAMA_* set in this environment (inherited).
DEFAULTS = Settings.from_env(env_file=os.devnull)
DIMENSIONS = 1536
BIG = "big"  # the user message that asks the upstream for the answer at the bound


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


class Upstream:
    """Answers chosen from the request: a stream just under the stream bound, a whole answer just under the
    answer bound, embeddings, or a short answer (to the big bodies)."""

    def __init__(self) -> None:
        piece = "y" * 16_384
        self.stream_pieces = (DEFAULTS.max_stream_accumulated_bytes - 2_000) // len(piece)
        self.stream_piece = delta(piece)
        pad = DEFAULTS.max_upstream_body_bytes - 4_096
        message = {"role": "assistant", "content": "x" * pad}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        self.big = orjson.dumps(
            {"id": "c1", "object": "chat.completion", "model": "gpt-4o", "choices": [choice]}
        )
        short = {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        self.short = orjson.dumps(
            {"id": "c2", "object": "chat.completion", "model": "gpt-4o", "choices": [short]}
        )
        rng = random.Random(1)
        vectors = [
            {"object": "embedding", "index": i, "embedding": [rng.uniform(-1, 1) for _ in range(DIMENSIONS)]}
            for i in range(DEFAULTS.max_embed_inputs)
        ]
        usage = {"prompt_tokens": 1, "total_tokens": 1}
        self.embeddings = orjson.dumps({"object": "list", "data": vectors, "model": "m", "usage": usage})

    async def __call__(self, answer: Answer, body: dict[str, object]) -> None:
        if "input" in body:
            await self._whole(answer, self.embeddings)
        elif body.get("stream"):
            await answer.start()
            for _ in range(self.stream_pieces):
                if answer.closed:
                    return
                await answer.send(self.stream_piece)
            await answer.send(finish_event("stop") + b"data: [DONE]\n\n")
            await answer.end()
        else:
            messages = body.get("messages")
            last = messages[-1] if isinstance(messages, list) and messages else {}
            big = isinstance(last, dict) and last.get("content") == BIG
            await self._whole(answer, self.big if big else self.short)

    @staticmethod
    async def _whole(answer: Answer, data: bytes) -> None:
        await answer.start("application/json")
        for i in range(0, len(data), 1 << 20):
            if answer.closed:
                return
            await answer.send(data[i : i + (1 << 20)])
        await answer.end()


def capped_body(size: int) -> bytes:
    """The worst accepted body (benchmarks/body_cost.py "capped_objects"): values up to the value limit,
    the rest of the size one string."""
    head = (
        b'{"model":"gpt-4o","stream":false,"options":{"num_predict":8},'
        b'"messages":[{"role":"user","content":"hi"}],"x":'
    )
    item = b'{"a":1}'
    count = (DEFAULTS.max_json_values - 100) // 3
    items = b"[" + b",".join([item] * count) + b"]"
    return head + items + b',"pad":"' + b"a" * (size - len(head) - len(items) - 16) + b'"}'


def requests(url: str) -> dict[str, Callable[[httpx.Client], str]]:
    body = capped_body(DEFAULTS.max_body_bytes - 1024)
    embed = orjson.dumps({"model": "text-embedding-3-small", "input": ["a"] * DEFAULTS.max_embed_inputs})

    def post(path: str, content: bytes) -> Callable[[httpx.Client], str]:
        def send(client: httpx.Client) -> str:
            resp = client.post(url + path, content=content, headers={"content-type": "application/json"})
            tail = resp.content.rstrip().rsplit(b"\n", 1)[-1]
            ok = resp.status_code == 200 and b'"error"' not in tail[:200]
            return f"{resp.status_code}{'' if ok else ' ' + tail[:120].decode(errors='replace')}"

        return send

    return {
        "streams": post("/api/generate", orjson.dumps({"model": "gpt-4o", "prompt": "hi"})),
        "bodies": post("/api/chat", body),
        "answers": post(
            "/api/chat",
            orjson.dumps(
                {"model": "gpt-4o", "stream": False, "messages": [{"role": "user", "content": BIG}]}
            ),
        ),
        "embeds": post("/api/embed", embed),
    }


def hold_heads(port: int, count: int) -> list[socket.socket]:
    """Connections each holding an unfinished head just under the header bound (the guard's worst case)."""
    size = DEFAULTS.max_header_bytes - 1_000
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    for sock in socks:
        sock.sendall(b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * size)
    return socks


def scenario(upstream: HostileStreamUpstream, counts: dict[str, int], budget: int | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    if budget is not None:
        env["FALCON_OLLAMA_WORKER_MEMORY_BUDGET"] = str(budget)
    env.update(
        OPENAI_BASE_URL=upstream.base_url,
        OPENAI_API_KEY="sk-worst-case-memory",
        WEB_CONCURRENCY="1",
        FALCON_OLLAMA_ENV_FILE=os.devnull,
        FALCON_OLLAMA_ALLOW_UNLISTED_MODELS="true",
        FALCON_OLLAMA_LOG_LEVEL="warning",
    )
    label = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if budget is not None:
        label += f", budget {budget // 2**20} MiB" if budget else ", budget off"
    with GunicornProcess(env) as server:
        assert server.proc is not None
        (worker,) = (
            int(p)
            for p in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        )
        chosen = requests(server.url)
        with httpx.Client(timeout=300) as client:  # warm-up: one of each kind that has a request
            client.post(
                server.url + "/api/chat",
                json={"model": "gpt-4o", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
            )
        rest = rss_kb(worker, "VmRSS")
        Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM from here
        started = time.monotonic()
        socks = hold_heads(server.port, counts["heads"]) if counts["heads"] else []
        jobs = [(name, chosen[name]) for name in chosen for _ in range(counts[name])]
        statuses: dict[str, list[str]] = {}
        lock = threading.Lock()

        def run(job: tuple[str, Callable[[httpx.Client], str]]) -> None:
            name, send = job
            with httpx.Client(timeout=300) as client:
                try:
                    status = send(client)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
            with lock:
                statuses.setdefault(name, []).append(status)

        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            list(pool.map(run, jobs))
        if socks and not jobs:
            time.sleep(2)  # let the worker read every head
        elapsed = time.monotonic() - started
        peak = rss_kb(worker, "VmHWM")
        for sock in socks:
            sock.close()
    timeouts = server.output.count(b"WORKER TIMEOUT")
    shown = (
        "; ".join(
            f"{k}: {', '.join(f'{s} x{v.count(s)}' for s in sorted(set(v)))}" for k, v in statuses.items()
        )
        or "-"
    )
    print(
        f"| {label} | {rest / 1024:.0f} | {peak / 1024:.0f} | +{(peak - rest) / 1024:.0f} | {elapsed:.1f} s "
        f"| {shown} | {timeouts} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (("heads", 1000), ("streams", 4), ("bodies", 2), ("answers", 2), ("embeds", 2)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--only-combined", action="store_true", help="skip the runs of one kind alone")
    parser.add_argument("--flood", type=int, default=0, help="only N answers + N bodies, budget off then on")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kinds = ("heads", "streams", "bodies", "answers", "embeds")
    counts = {k: int(getattr(args, k)) for k in kinds}
    print(
        f"defaults: header {DEFAULTS.max_header_bytes} B, "
        f"stream kept {DEFAULTS.max_stream_accumulated_bytes} B, "
        f"body {DEFAULTS.max_body_bytes} B / {DEFAULTS.max_json_values} values, upstream answer "
        f"{DEFAULTS.max_upstream_body_bytes} B, embed inputs {DEFAULTS.max_embed_inputs}, "
        f"worker memory budget {DEFAULTS.worker_memory_budget} B"
    )
    print("| load (at once) | RSS at rest MiB | peak MiB | growth MiB | time | statuses | worker timeouts |")
    print("|---|---|---|---|---|---|---|")
    with HostileStreamUpstream() as upstream:
        upstream.script = Upstream()
        if args.flood:
            flood = {k: (args.flood if k in ("answers", "bodies") else 0) for k in kinds}
            scenario(upstream, flood, budget=0)
            scenario(upstream, flood, budget=DEFAULTS.worker_memory_budget)
            return
        if not args.only_combined:
            for kind in kinds:
                if counts[kind]:
                    scenario(upstream, {k: (counts[k] if k == kind else 0) for k in kinds})
        scenario(upstream, counts)


if __name__ == "__main__":
    main()
