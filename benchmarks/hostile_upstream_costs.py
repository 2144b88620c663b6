"""What a hostile upstream costs one worker (issue 10 items 6-7): peak RSS, longest stall of other requests.

Each scenario starts a fresh worker (``uvicorn --factory falcon_ollama.app:app_from_env``, default settings)
against ``tests/hostile_upstream.py``, runs the attack once while a probe asks ``/api/version`` every 20 ms,
and prints the answer, the time, the worker's peak RSS (VmHWM) and the probe's longest wait. Bounded: one
attack per scenario, loopback only.

    .venv/bin/python benchmarks/hostile_upstream_costs.py [scenario ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.hostile_upstream import HostileUpstream, Reply, gzip_of_zeros, model_list
from tests.servers import free_port

MiB = 1 << 20
CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": False}


PROBE = """
import select, sys, time, httpx
worst = 0.0
with httpx.Client(timeout=600) as client:
    while not select.select([sys.stdin], [], [], 0.02)[0]:
        started = time.perf_counter()
        client.get(sys.argv[1] + "/api/version")
        worst = max(worst, time.perf_counter() - started)
print(worst * 1000)
"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(name: str, script: Callable[[HostileUpstream], None], attack: Callable[[str], str]) -> None:
    with HostileUpstream() as hostile:
        hostile.script("/v1/models", Reply(body=b'{"data": [{"id": "gpt-4o"}]}'))
        script(hostile)
        port = free_port()
        env = {**os.environ, "OPENAI_BASE_URL": hostile.base_url, "OPENAI_API_KEY": "sk-bench-0123456789",
               "FALCON_OLLAMA_LOG_LEVEL": "error", "FALCON_OLLAMA_RETRY_BASE_DELAY": "0.01"}  # fmt: skip
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "falcon_ollama.app:app_from_env",
               "--port", str(port), "--log-level", "error"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(url + "/api/version", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            base_rss = peak_rss_mb(proc.pid)
            # The probe runs in a process of its own: this one also runs the hostile server (GIL).
            prober = subprocess.Popen([sys.executable, "-c", PROBE, url], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(0.5)
            started = time.perf_counter()
            outcome = attack(url)
            elapsed = time.perf_counter() - started
            time.sleep(0.3)
            worst_ms = float(prober.communicate("stop\n", timeout=600)[0])
            sent = sum(s.written for s in hostile.served) / MiB
            peak = peak_rss_mb(proc.pid)
            print(f"{name}: {outcome} | {elapsed:.2f} s | RSS {base_rss:.0f} -> peak {peak:.0f} MB"
                  f" | longest probe wait {worst_ms:.0f} ms | upstream wrote {sent:.1f} MB")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def post(path: str) -> Callable[[str], str]:
    def attack(url: str) -> str:
        resp = httpx.post(url + path, json=BODY, timeout=600)
        return f"{resp.status_code} {resp.text[:110]}"

    return attack


def tags(url: str) -> str:
    resp = httpx.get(url + "/api/tags", timeout=600)
    return f"{resp.status_code} {len(resp.json().get('models', []))} models"


def bomb(hostile: HostileUpstream) -> None:
    body = gzip_of_zeros(2048 * MiB, prefix=b'{"choices": [')
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    hostile.script(CHAT, Reply(body=body, headers=headers))


SCENARIOS: dict[str, tuple[Callable[[HostileUpstream], None], Callable[[str], str]]] = {
    "gzip-2GiB-api": (bomb, post("/api/chat")),
    "gzip-2GiB-v1": (bomb, post(CHAT)),
    "json-600MB": (
        lambda h: h.script(CHAT, Reply(body=b'{"choices": [', repeat=600 * MiB)),
        post("/api/chat"),
    ),
    "error-300MB-x3": (
        lambda h: h.script(CHAT, Reply(status=500, body=b'{"error": "', repeat=300 * MiB)),
        post("/api/chat"),
    ),
    "models-100k": (lambda h: h.script("/v1/models", Reply(body=model_list(100_000))), tags),
    "models-1M": (lambda h: h.script("/v1/models", Reply(body=model_list(1_000_000))), tags),
}


if __name__ == "__main__":
    for scenario in sys.argv[1:] or list(SCENARIOS):
        run(scenario, *SCENARIOS[scenario])
