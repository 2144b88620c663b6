"""Worker lifecycle under the real production command: graceful SIGTERM drain, a killed worker replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import orjson

from falcon_ollama.fake_upstream import FakeConfig, FakeUpstreamThread, expected_text
from tests.servers import REPO, GunicornProcess

USER = [{"role": "user", "content": "hi"}]


def gunicorn_env(fake: FakeUpstreamThread, workers: int = 2) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-lifecycle",
            "WEB_CONCURRENCY": str(workers),
            "FALCON_OLLAMA_ENV_FILE": "/nonexistent/no.env",
            "FALCON_OLLAMA_CATALOG": str(REPO / "conf" / "models.toml"),
            "FALCON_OLLAMA_GRACEFUL_TIMEOUT": "30",
        }
    )
    return env


def worker_pids(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


async def stream_chat(url: str) -> tuple[str, bool]:
    """The streamed text and whether the stream ended with done: true (False if it broke)."""
    text = ""
    try:
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream("POST", url + "/api/chat", json={"model": "gpt-4o", "messages": USER}) as resp,
        ):
            async for line in resp.aiter_lines():
                chunk = orjson.loads(line)
                if "error" in chunk:
                    return text, False
                text += chunk["message"]["content"]
                if chunk["done"]:
                    return text, True
    except httpx.HTTPError:
        return text, False
    return text, False


def test_sigterm_drains_in_flight_streams_then_exits_0() -> None:
    with FakeUpstreamThread(FakeConfig(tokens=40, token_delay_ms=50, record=False)) as fake:
        server = GunicornProcess(gunicorn_env(fake)).__enter__()
        assert server.proc is not None

        async def run() -> list[tuple[str, bool]]:
            streams = [asyncio.create_task(stream_chat(server.url)) for _ in range(10)]
            await asyncio.sleep(0.6)  # every stream is under way
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            with socket.socket() as sock:  # listening has stopped
                assert sock.connect_ex(("127.0.0.1", server.port)) != 0
            return list(await asyncio.gather(*streams))

        results = asyncio.run(run())
        assert server.proc.wait(timeout=60) == 0
        server.__exit__()
        assert results == [(expected_text(40), True)] * 10


def test_killed_worker_is_replaced_and_the_other_keeps_serving() -> None:
    with (
        FakeUpstreamThread(FakeConfig(tokens=30, token_delay_ms=40, record=False)) as fake,
        GunicornProcess(gunicorn_env(fake)) as server,
    ):
        assert server.proc is not None
        deadline = time.monotonic() + 20
        while len(worker_pids(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = worker_pids(server.proc.pid)
        assert len(before) == 2
        victim = min(before)

        async def run() -> list[tuple[str, bool]]:
            streams = [asyncio.create_task(stream_chat(server.url)) for _ in range(8)]
            await asyncio.sleep(0.4)
            os.kill(victim, signal.SIGKILL)
            return list(await asyncio.gather(*streams))

        results = asyncio.run(run())
        # Streams on the killed worker break; none is corrupted, and the other worker's complete intact.
        intact = [text for text, done in results if done]
        assert intact and all(text == expected_text(30) for text in intact)
        assert all(expected_text(30).startswith(text) for text, _ in results)
        deadline = time.monotonic() + 20
        while (len(worker_pids(server.proc.pid)) < 2 or victim in worker_pids(server.proc.pid)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        after = worker_pids(server.proc.pid)
        assert len(after) == 2 and victim not in after
        for _ in range(20):  # the replacement serves at once, with the survivor
            with httpx.Client(timeout=10) as client:
                assert client.get(server.url + "/api/tags").status_code == 200
