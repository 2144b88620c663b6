"""The tenants file reloads with the rest of the configuration on SIGHUP (gunicorn): a key added works, a
stream in flight ends intact, and a broken file keeps the tenants that were running."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import orjson

from fake_openai import FakeConfig, FakeUpstreamThread
from tests.integration.test_gunicorn_lifecycle import gunicorn_env, wait_for_two_workers
from tests.integration.test_tenants import ALL_KEY, MINI_KEY, USER, sha
from tests.servers import GunicornProcess

NEW_KEY = "tenant-new-key-EEEEEEEEEEEEEEEEEE"


async def keyed_stream(url: str, key: str) -> tuple[int, bool]:
    """The status and whether the stream ended with done: true."""
    body = {"model": "gpt-4o-mini", "messages": USER}
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", url + "/api/chat", json=body, headers=headers) as resp,
    ):
        done = False
        async for line in resp.aiter_lines():
            chunk = orjson.loads(line)
            if "error" in chunk:
                return resp.status_code, False
            done = bool(chunk.get("done"))
        return resp.status_code, done


def tags_status(url: str, key: str) -> int:
    return httpx.get(url + "/api/tags", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code


def every_worker_answers(url: str, key: str, status: int) -> bool:
    """Fresh connections land on either worker: twenty in a row give ``status``."""
    return all(tags_status(url, key) == status for _ in range(20))


def test_sighup_reloads_the_tenants_file_with_streams_intact(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    one = f'[tenants.minis]\nkey_sha256 = ["{sha(MINI_KEY)}"]\nconcurrent_streams = 4\n'
    path.write_text(one)
    with FakeUpstreamThread(FakeConfig(tokens=40, token_delay_ms=50, record=False)) as fake:
        env = {
            **gunicorn_env(fake),
            "FALCON_OLLAMA_TENANTS_FILE": str(path),
            "FALCON_OLLAMA_LEDGER_PATH": str(tmp_path / "ledger.sqlite"),
        }
        with GunicornProcess(env) as server:
            assert server.proc is not None
            master = server.proc.pid
            assert tags_status(server.url, NEW_KEY) == 401

            async def reload_during_streams() -> list[tuple[int, bool]]:
                streams = [asyncio.create_task(keyed_stream(server.url, MINI_KEY)) for _ in range(3)]
                await asyncio.sleep(0.6)  # under way (40 tokens x 50 ms)
                path.write_text(one + f'[tenants.new]\nkey_sha256 = ["{sha(NEW_KEY)}"]\n')
                assert server.proc is not None
                server.proc.send_signal(signal.SIGHUP)
                return list(await asyncio.gather(*streams))

            assert asyncio.run(reload_during_streams()) == [(200, True)] * 3
            wait_for_two_workers(master)
            deadline = time.monotonic() + 20
            while not every_worker_answers(server.url, NEW_KEY, 200):
                assert time.monotonic() < deadline, "the new key was never accepted by every worker"
                time.sleep(0.2)
            assert every_worker_answers(server.url, MINI_KEY, 200)

            # A broken file: the reload is refused, the running tenants stay (the new key too).
            path.write_text("[tenants.broken\n")
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(2)
            assert server.proc.poll() is None, "the master exited on a broken tenants file"
            wait_for_two_workers(master)
            assert every_worker_answers(server.url, NEW_KEY, 200)
            assert every_worker_answers(server.url, MINI_KEY, 200)
            assert tags_status(server.url, ALL_KEY) == 401
    assert b"reload refused: the running configuration is kept" in server.output
    assert b"FALCON_OLLAMA_TENANTS_FILE" in server.output
