"""Many realistic streams at once: time to first chunk (TTFC) through the proxy, nginx and direct.

Issue 16's goal: with 2 workers on 2 cores, 1,000 streams whose upstream answers after 50 ms and then sends a
token every 10 ms hold TTFC p99 within 100 ms of direct, with no errors. This starts the bundled fake
upstream with that pacing, nginx as a plain keep-alive hop in front of it (the floor of any proxy), and the
proxy as production runs it (``gunicorn -c gunicorn.conf.py``), then sends the streams with
``benchmarks/ttfc_driver.mjs`` (node: a Python client would saturate before the servers) to each target in
turn, several rounds alternating, and prints TTFC and total times, errors, and the hop's CPU per stream.

    python benchmarks/ttfc_streams.py --streams 1000 --rounds 2     # ~2 min; needs node, nginx
    python benchmarks/ttfc_streams.py --streams 1000 --ramp-ms 1000  # arrivals spread over a second

direct and nginx are sent OpenAI chat completion requests (``stream: true``); the proxy the same
conversation as an Ollama ``/api/chat``. Everything runs on the same machine, so on 2 cores the load
generator and the fake upstream take part of the CPU the proxy would have.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _harness as h
import orjson
from overhead import start_nginx

DRIVER = Path(__file__).resolve().parent / "ttfc_driver.mjs"


def openai_body(tokens: int) -> bytes:
    chat = h.ollama_chat(True)
    return orjson.dumps(
        {"model": h.UPSTREAM_MODEL, "messages": chat["messages"], "stream": True, "max_tokens": tokens}
    )


def drive(url: str, body: bytes, streams: int, ramp_ms: float, hop: list[int]) -> dict[str, Any]:
    before = h.cpu_ns(hop)
    out = subprocess.run(
        ["node", str(DRIVER), url, body.decode(), str(streams), str(ramp_ms)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    result["hop_cpu_ms_per_stream"] = (h.cpu_ns(hop) - before) / 1e6 / streams if hop else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--ttfb-ms", type=float, default=50.0)
    parser.add_argument("--token-ms", type=float, default=10.0)
    parser.add_argument("--ramp-ms", type=float, default=0.0, help="spread the starts over this long")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    parser.add_argument(
        "--gunicorn-config", default=None, help="another gunicorn configuration file than gunicorn.conf.py"
    )
    args = parser.parse_args()
    if shutil.which("node") is None:
        sys.exit("node is not installed")

    fake_port, nginx_port, proxy_port = h.free_port(), h.free_port(), h.free_port()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[dict[str, Any]]] = {"direct": [], "nginx": [], "proxy": []}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        try:
            procs.append(
                h.start_fake(
                    fake_port, tokens=args.tokens, token_delay_ms=args.token_ms, ttfb_ms=args.ttfb_ms
                )
            )
            nginx = start_nginx(directory, nginx_port, fake_port, args.workers)
            procs.append(nginx)
            proxy = h.start_gunicorn(
                proxy_port,
                fake_port,
                args.workers,
                directory / "proxy.log",
                config=args.gunicorn_config or "gunicorn.conf.py",
                FALCON_OLLAMA_MAX_REQUESTS="0",
            )
            procs.append(proxy)
            openai = openai_body(args.tokens)
            ollama = orjson.dumps(h.ollama_chat(True))
            targets = {
                "direct": (f"http://127.0.0.1:{fake_port}/v1/chat/completions", openai, []),
                "nginx": (
                    f"http://127.0.0.1:{nginx_port}/v1/chat/completions",
                    openai,
                    h.children(nginx.pid),
                ),
                "proxy": (f"http://127.0.0.1:{proxy_port}/api/chat", ollama, h.children(proxy.pid)),
            }
            for url, body, _ in targets.values():  # warm-up: connections, caches, the model list
                drive(url, body, 20, 0, [])
            for _ in range(args.rounds):
                for name, (url, body, hop) in targets.items():
                    results[name].append(drive(url, body, args.streams, args.ramp_ms, hop))
                    time.sleep(1)
        finally:
            for proc in reversed(procs):
                h.stop(proc)
    report = {"args": vars(args) | {"json": str(args.json)}, "machine": h.machine(), "results": results}
    print(
        f"{args.streams} streams ({args.ttfb_ms:g} ms to the first byte, {args.tokens} tokens "
        f"{args.token_ms:g} ms apart), starts spread over {args.ramp_ms:g} ms; {args.workers} workers"
    )
    print("| target | round | TTFC p50 | p90 | p99 | max | total p99 ms | errors | hop CPU ms/stream |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        for i, r in enumerate(runs, 1):
            t, total = r["ttfc_ms"] or {}, r["total_ms"] or {}
            print(
                f"| {name} | {i} | {t.get('p50')} | {t.get('p90')} | {t.get('p99')} | {t.get('max')} | "
                f"{total.get('p99')} | {r['errors']} | {r['hop_cpu_ms_per_stream']:.3f} |"
            )
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
