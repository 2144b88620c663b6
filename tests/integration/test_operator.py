"""What an operator meets on both start paths: one log format, a port already taken, `check | head`, the
retry log line and the idle in-flight gauge (issue 17)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread
from falcon_ollama.errors import OllamaError
from falcon_ollama.settings import Settings
from falcon_ollama.upstream import RetryPolicy, Upstream
from tests.conftest import proxy_settings
from tests.servers import REPO, ProxyThread, free_port

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_", "PROMETHEUS_")) and k != "WEB_CONCURRENCY"
}
BASE_ENV = {**CLEAN_ENV, "FALCON_OLLAMA_ENV_FILE": os.devnull, "WEB_CONCURRENCY": "1"}
SERVE = [sys.executable, "-m", "falcon_ollama", "serve"]
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]


def run_until_serving(argv: list[str], env: dict[str, str], port: int) -> bytes:
    """Start the command, make one request through it, stop it with SIGTERM; everything it wrote."""
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/tags", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < deadline, "did not start"
            time.sleep(0.1)
        chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": False}
        assert httpx.post(f"http://127.0.0.1:{port}/api/chat", json=chat, timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
    return out


@pytest.mark.parametrize("command", ["serve", "gunicorn"])
def test_json_log_format_means_every_line_is_json(command: str) -> None:
    port = free_port()
    env = {**BASE_ENV, "OLLAMA_HOST": f"127.0.0.1:{port}", "FALCON_OLLAMA_LOG_FORMAT": "json"}
    out = run_until_serving(SERVE if command == "serve" else GUNICORN, env, port)
    lines = [line for line in out.decode().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n{out.decode()}")
    loggers = {r["logger"] for r in records}
    assert "uvicorn.error" in loggers  # uvicorn's own "Started server process" line
    if command == "gunicorn":
        assert "gunicorn.error" in loggers  # the master's "Starting gunicorn", "Booting worker"
    assert any(r["logger"] == "falcon_ollama.request" for r in records)
    banner = [r for r in records if "OFFLINE DEMO" in r["message"]]
    assert len(banner) == 1 and banner[0]["level"] == "warning"
    assert banner[0]["fake_upstream"] in banner[0]["message"]
    assert sum("fake OpenAI upstream listening" in line for line in lines) <= 1


@pytest.mark.parametrize("command", ["serve", "gunicorn"])
def test_text_log_format_prints_the_banner_once(command: str) -> None:
    port = free_port()
    env = {**BASE_ENV, "OLLAMA_HOST": f"127.0.0.1:{port}", "FALCON_OLLAMA_LOG_FORMAT": "text"}
    text = run_until_serving(SERVE if command == "serve" else GUNICORN, env, port).decode()
    assert text.count("OFFLINE DEMO mode") == 1, text
    assert text.count("fake OpenAI upstream listening") <= 1, text
    assert "INFO:     " not in text  # uvicorn's own default format


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "gunicorn"])
def test_a_taken_port_names_ollama_host(command: str, taken_port: int) -> None:
    env = {**BASE_ENV, "OLLAMA_HOST": f"127.0.0.1:{taken_port}"}
    started = time.monotonic()
    result = subprocess.run(
        SERVE if command == "serve" else GUNICORN, cwd=REPO, env=env, capture_output=True, timeout=60
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output
    expected = (
        f"falcon-ollama: cannot listen on 127.0.0.1:{taken_port}: address already in use; "
        "OLLAMA_HOST sets the address (host:port)"
    )
    assert expected in result.stderr.decode().splitlines()
    assert "Traceback" not in output and "Can't connect" not in output
    assert time.monotonic() - started < 20  # not gunicorn's five retries, one second apart, then the same end


def test_check_into_a_closed_pipe_has_no_traceback() -> None:
    # `falcon-ollama check | head -1`, deterministically: the reading end is closed before check writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "falcon_ollama", "check"],
            cwd=REPO,
            env=BASE_ENV,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.stderr == b"", result.stderr.decode()
    assert result.returncode == 1


def test_check_piped_into_head() -> None:
    result = subprocess.run(
        f"{sys.executable} -m falcon_ollama check | head -1",
        shell=True,
        cwd=REPO,
        env=BASE_ENV,
        capture_output=True,
        timeout=60,
    )
    assert result.stdout.decode().startswith("note: no OPENAI_API_KEY")
    assert b"Traceback" not in result.stderr and b"BrokenPipeError" not in result.stderr


def in_flight(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    values = [
        line.split()[-1] for line in text.splitlines() if line.startswith("falcon_ollama_in_flight_requests")
    ]
    assert len(values) == 1, text
    return float(values[0])


def test_in_flight_gauge_reads_zero_when_idle(proxy: ProxyThread) -> None:
    assert in_flight(proxy.url) == 0
    httpx.get(proxy.url + "/api/tags")
    assert in_flight(proxy.url) == 0


def test_in_flight_gauge_counts_a_running_stream() -> None:
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with (
        FakeUpstreamThread(FakeConfig(token_delay_ms=200.0)) as fake,
        ProxyThread(proxy_settings(fake)) as slow,
        httpx.stream("POST", slow.url + "/api/chat", json=chat, timeout=30) as response,
    ):
        lines = response.iter_lines()  # kept: a dropped generator would close the stream
        next(lines)
        assert in_flight(slow.url) == 1
        response.close()
        deadline = time.monotonic() + 10
        while in_flight(slow.url) != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_retry_line_says_what_failed_once(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1", openai_base_url_set=True, retry_base_delay=0.0
    )

    async def run() -> None:
        upstream = Upstream(settings, retry=RetryPolicy(max_retries=1, base_delay=0.0))
        await upstream.start()
        try:
            with pytest.raises(OllamaError):
                await upstream.list_models()
        finally:
            await upstream.close()

    with caplog.at_level(logging.INFO, logger="falcon_ollama.upstream"):
        asyncio.run(run())
    retries = [r.getMessage() for r in caplog.records if "; retry 1 in " in r.getMessage()]
    assert len(retries) == 1
    assert retries[0].startswith("could not connect to the upstream: ")
