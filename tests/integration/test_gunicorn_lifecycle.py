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

from fake_openai import FakeConfig, FakeUpstreamThread, expected_text
from tests.servers import REPO, GunicornProcess

USER = [{"role": "user", "content": "hi"}]


def gunicorn_env(fake: FakeUpstreamThread, workers: int = 2) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-lifecycle",
            "WEB_CONCURRENCY": str(workers),
            "FALCON_OLLAMA_ENV_FILE": os.devnull,
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


def wait_for_two_workers(master: int, without: int | None = None) -> set[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = worker_pids(master)
        if len(pids) == 2 and without not in pids:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not get back to 2 workers: {worker_pids(master)}")


def test_killed_worker_is_replaced_and_the_other_keeps_serving() -> None:
    """The kernel may hand every connection to one worker (one shared listening socket); the scenario is
    repeated until streams were seen on both the killed worker (cut) and the survivor (intact)."""
    with (
        FakeUpstreamThread(FakeConfig(tokens=30, token_delay_ms=40, record=False)) as fake,
        GunicornProcess(gunicorn_env(fake)) as server,
    ):
        assert server.proc is not None
        master = server.proc.pid
        seen_both = False
        for _attempt in range(4):
            victim = min(wait_for_two_workers(master))

            async def run(victim: int = victim) -> list[tuple[str, bool]]:
                streams = []
                for _ in range(12):  # spaced out, so both workers tend to accept some
                    streams.append(asyncio.create_task(stream_chat(server.url)))
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)
                os.kill(victim, signal.SIGKILL)
                return list(await asyncio.gather(*streams))

            results = asyncio.run(run())
            # Never a corrupted answer: each stream is complete and right, or a cut prefix of the right one.
            assert all(expected_text(30).startswith(text) for text, _ in results)
            assert all(text == expected_text(30) for text, done in results if done)
            after = wait_for_two_workers(master, without=victim)
            assert victim not in after
            for _ in range(20):  # the replacement serves at once, with the survivor
                with httpx.Client(timeout=10) as client:
                    assert client.get(server.url + "/api/tags").status_code == 200
            if any(done for _, done in results) and not all(done for _, done in results):
                seen_both = True
                break
        assert seen_both, "never saw streams on both workers: the survivor's streams were not observed"


def hup_during_streams(server: GunicornProcess, tokens: int) -> list[tuple[str, bool]]:
    """SIGHUP to the master while 8 streams are under way; their results."""

    async def run() -> list[tuple[str, bool]]:
        streams = [asyncio.create_task(stream_chat(server.url)) for _ in range(8)]
        await asyncio.sleep(0.6)  # every stream is under way
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        return list(await asyncio.gather(*streams))

    return asyncio.run(run())


def reported_version(url: str) -> str:
    version: str = httpx.get(url + "/api/version", timeout=10).json()["version"]
    return version


def test_sighup_with_a_bad_configuration_keeps_the_master_and_the_running_configuration(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "falcon.env"
    env_file.write_text("FALCON_OLLAMA_REPORTED_VERSION=0.40.1\n")
    with FakeUpstreamThread(FakeConfig(tokens=40, token_delay_ms=50, record=False)) as fake:
        env = {**gunicorn_env(fake), "FALCON_OLLAMA_ENV_FILE": str(env_file)}
        with GunicornProcess(env) as server:
            assert server.proc is not None
            assert reported_version(server.url) == "0.40.1"
            env_file.write_text("FALCON_OLLAMA_CONNECT_TIMEOUT=-3\n")
            assert hup_during_streams(server, 40) == [(expected_text(40), True)] * 8
            time.sleep(1)
            assert server.proc.poll() is None, "the master exited on a bad configuration"
            wait_for_two_workers(server.proc.pid)
            for _ in range(10):  # every worker serves the configuration that was running
                assert reported_version(server.url) == "0.40.1"
            # A good configuration is applied, with streams in flight intact.
            env_file.write_text("FALCON_OLLAMA_REPORTED_VERSION=0.41.0\n")
            assert hup_during_streams(server, 40) == [(expected_text(40), True)] * 8
            wait_for_two_workers(server.proc.pid)
            assert {reported_version(server.url) for _ in range(10)} == {"0.41.0"}
    assert server.proc.returncode == 0
    assert b"FALCON_OLLAMA_CONNECT_TIMEOUT" in server.output
    assert b"reload refused: the running configuration is kept" in server.output


def children(pid: int) -> set[int]:
    return worker_pids(pid)


def test_offline_demo_reloads_never_orphan_the_fake_upstream(tmp_path: Path) -> None:
    env_file = tmp_path / "falcon.env"
    env_file.write_text("FALCON_OLLAMA_REPORTED_VERSION=0.40.1\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_", "PROMETHEUS_"))
    }
    env |= {"FALCON_OLLAMA_ENV_FILE": str(env_file), "WEB_CONCURRENCY": "1"}
    with GunicornProcess(env) as server:
        assert server.proc is not None
        master = server.proc.pid
        (fake,) = [
            pid for pid in children(master) if b"fake-upstream" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        for content in ("FALCON_OLLAMA_MAX_QUEUE=-1\n", "FALCON_OLLAMA_REPORTED_VERSION=0.41.0\n"):
            env_file.write_text(content)
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(2)
            assert server.proc.poll() is None, "the master exited on reload"
            assert httpx.get(server.url + "/api/tags", timeout=10).status_code == 200
        assert reported_version(server.url) == "0.41.0"
    assert server.proc.returncode == 0
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{fake}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{fake}"), "the fake upstream outlived the master"


def test_the_private_metrics_directory_goes_with_the_master(tmp_path: Path) -> None:
    """No PROMETHEUS_MULTIPROC_DIR: the master makes its own (in TMPDIR) and removes it when it exits."""
    with FakeUpstreamThread(FakeConfig(record=False)) as fake:
        env = gunicorn_env(fake, workers=1) | {"TMPDIR": str(tmp_path)}
        with GunicornProcess(env) as server:
            assert httpx.get(server.url + "/metrics", timeout=10).status_code == 200
            made = list(tmp_path.glob("falcon-ollama-metrics-*"))
            assert len(made) == 1 and any(made[0].iterdir())  # the worker writes its samples there
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(timeout=30) == 0
    assert not list(tmp_path.glob("falcon-ollama-metrics-*"))
