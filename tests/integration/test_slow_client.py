"""A client that stops reading does not make the worker buffer an unbounded answer (docs/reliability.md)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import orjson

from fake_openai import FakeConfig, FakeUpstreamThread, expected_text
from tests.integration.test_gunicorn_lifecycle import gunicorn_env, worker_pids
from tests.servers import GunicornProcess

RSS_BOUND_MB = 60  # growth allowed while a huge answer goes unread (the answer itself is ~400 MB of NDJSON)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_stalled_reader_keeps_memory_bounded_and_others_unaffected() -> None:
    with (
        FakeUpstreamThread(FakeConfig(tokens=3_000_000, record=False)) as fake,
        GunicornProcess(gunicorn_env(fake, workers=1)) as server,
    ):
        assert server.proc is not None
        (worker,) = worker_pids(server.proc.pid)
        assert httpx.get(server.url + "/api/tags").status_code == 200
        baseline = rss_mb(worker)
        body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "long"}]})
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )  # ...and never read
        peak = baseline
        for _ in range(20):
            time.sleep(0.15)
            peak = max(peak, rss_mb(worker))
        fake_small = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        # Another client's stream on the same worker is unaffected.
        resp = httpx.post(
            server.url + "/api/chat", json={**fake_small, "options": {"num_predict": 8}}, timeout=30
        )
        lines = [orjson.loads(line) for line in resp.content.splitlines()]
        assert "".join(c["message"]["content"] for c in lines) == expected_text(8)
        for _ in range(10):
            time.sleep(0.15)
            peak = max(peak, rss_mb(worker))
        stalled.close()
        print(f"worker RSS baseline {baseline:.1f} MB, peak {peak:.1f} MB")
        assert peak - baseline < RSS_BOUND_MB, f"worker RSS grew {peak - baseline:.1f} MB"
        assert os.path.exists(f"/proc/{worker}")
