"""The gunicorn variables come from the same table, environment and ``.env`` as every other setting: a
``.env`` line for WEB_CONCURRENCY or PROMETHEUS_MULTIPROC_DIR takes effect under the real production command,
and a bad value there is one line and exit 2 (issue 11: gunicorn.conf.py read them from os.environ only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_openai import FakeUpstreamThread
from tests.integration.test_gunicorn_lifecycle import gunicorn_env, worker_pids
from tests.servers import REPO, GunicornProcess, free_port


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread() as fake:
        yield fake


def env_from_file(fake: FakeUpstreamThread, env_file: Path) -> dict[str, str]:
    """The test environment without WEB_CONCURRENCY, so that only ``env_file`` can set it."""
    env = gunicorn_env(fake)
    del env["WEB_CONCURRENCY"]
    env["FALCON_OLLAMA_ENV_FILE"] = str(env_file)
    return env


def test_env_file_sets_workers_and_metrics_dir(upstream: FakeUpstreamThread, tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    workers = cpus + 1  # not what the default (one per CPU) would give
    metrics = tmp_path / "metrics"
    env_file = tmp_path / "falcon.env"
    env_file.write_text(f"WEB_CONCURRENCY={workers}\nPROMETHEUS_MULTIPROC_DIR={metrics}\n")
    server = GunicornProcess(env_from_file(upstream, env_file))
    server.env.pop("WEB_CONCURRENCY")  # GunicornProcess defaults it to 2
    with server:
        assert server.proc is not None
        deadline = time.monotonic() + 30
        while len(worker_pids(server.proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # gunicorn would have started more by now if it meant to
        assert len(worker_pids(server.proc.pid)) == workers
        assert httpx.get(server.url + "/api/tags", timeout=10).status_code == 200
        assert any(metrics.glob("*.db")), "the workers do not write their samples to the .env directory"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("WEB_CONCURRENCY=0", "WEB_CONCURRENCY: expected a positive integer, got '0'"),
        ("WEB_CONCURRENCY=auto", "WEB_CONCURRENCY: expected a positive integer, got 'auto'"),
        ("FALCON_OLLAMA_KEEPALIVE=75s", "FALCON_OLLAMA_KEEPALIVE: expected an integer >= 1, got '75s'"),
        ("PROMETHEUS_MULTIPROC_DIR={file}/metrics", "PROMETHEUS_MULTIPROC_DIR: cannot create the directory"),
        (
            "PROMETHEUS_MULTIPROC_DIR={file}",
            "PROMETHEUS_MULTIPROC_DIR: '{file}' exists and is not a dir",
        ),
    ],
)
def test_bad_env_file_value_is_one_line_and_exit_2(
    upstream: FakeUpstreamThread, tmp_path: Path, line: str, error: str
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    env_file = tmp_path / "falcon.env"
    env_file.write_text(line.format(file=in_the_way) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=REPO,
        env={**env_from_file(upstream, env_file), "OLLAMA_HOST": f"127.0.0.1:{free_port()}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a gunicorn that did start is stopped with its workers
    )
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"gunicorn started with {line!r} in its .env file")
    stderr = err.decode()
    assert proc.returncode == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith(f"falcon-ollama: configuration error: {error.format(file=in_the_way)}"), stderr


def test_serve_keeps_idle_connections_for_the_declared_keepalive(tmp_path: Path) -> None:
    # `serve` had a hard-coded 75 s for uvicorn's keep-alive; FALCON_OLLAMA_KEEPALIVE was gunicorn's only.
    port = free_port()
    env_file = tmp_path / "falcon.env"
    env_file.write_text("FALCON_OLLAMA_KEEPALIVE=1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_"))}
    env |= {"FALCON_OLLAMA_ENV_FILE": str(env_file), "OLLAMA_HOST": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "falcon_ollama", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(10)
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.endswith(b"Ollama is running"):
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply
            started = time.monotonic()
            assert sock.recv(65536) == b"", "the idle connection was not closed"  # within the 10 s timeout
            assert time.monotonic() - started < 5, (
                "closed after the 30 s head timeout, not the 1 s keep-alive"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
