"""Both ways to start (gunicorn, falcon-ollama serve), the offline demo, and configuration errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import ollama
import pytest

from fake_openai import FakeUpstreamThread, expected_text
from tests.servers import REPO, GunicornProcess, free_port

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_")) and k != "WEB_CONCURRENCY"
}
NO_ENV_FILE = {"FALCON_OLLAMA_ENV_FILE": os.devnull}


def test_gunicorn_serves_the_app_against_an_upstream(fake: FakeUpstreamThread) -> None:
    env = {
        **CLEAN_ENV,
        **NO_ENV_FILE,
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-gunicorn-test",
        "FALCON_OLLAMA_CATALOG": str(REPO / "conf" / "models.toml"),
    }
    with GunicornProcess(env) as server:
        client = ollama.Client(host=server.url)
        names = {m.model for m in client.list().models}
        assert "llama3.2:latest" in names and "gpt-4o:latest" in names
        assert client.show("llama3.2").capabilities == ["completion", "tools", "vision"]
        assert client.ps().models == []
        parts = list(client.chat("llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True))
        assert "".join(p.message.content for p in parts) == expected_text(8)
        assert parts[-1].done and parts[-1].done_reason == "stop"
        assert client.generate("gpt-4o", "hi").response == expected_text(8)
    assert server.proc is not None and server.proc.returncode == 0


@pytest.mark.parametrize("catalog", [None, "", "shipped"])
def test_gunicorn_from_the_checkout_serves_the_shipped_catalog(
    fake: FakeUpstreamThread, catalog: str | None
) -> None:
    """The README's llama3.2 examples answer from ``gunicorn -c gunicorn.conf.py`` with no catalog set, as
    they do through run_local.sh and the image (issue 12, item 8)."""
    env = {**CLEAN_ENV, **NO_ENV_FILE, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-x"}
    if catalog is not None:
        env["FALCON_OLLAMA_CATALOG"] = catalog
    with GunicornProcess({**env, "WEB_CONCURRENCY": "1"}) as server:
        client = ollama.Client(host=server.url)
        assert client.show("llama3.2").capabilities == ["completion", "tools", "vision"]
        assert client.chat("llama3.2", messages=[{"role": "user", "content": "hi"}]).model == "llama3.2"


def test_gunicorn_with_the_catalog_turned_off_has_no_aliases(fake: FakeUpstreamThread) -> None:
    env = {**CLEAN_ENV, **NO_ENV_FILE, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-x"}
    with GunicornProcess({**env, "WEB_CONCURRENCY": "1", "FALCON_OLLAMA_CATALOG": "none"}) as server:
        client = ollama.Client(host=server.url)
        assert "gpt-4o:latest" in {m.model for m in client.list().models}
        with pytest.raises(ollama.ResponseError) as missing:
            client.show("llama3.2")
        assert missing.value.status_code == 404


def test_gunicorn_offline_demo_uses_the_bundled_fake() -> None:
    with GunicornProcess({**CLEAN_ENV, **NO_ENV_FILE, "WEB_CONCURRENCY": "1"}) as server:
        names = {m.model for m in ollama.Client(host=server.url).list().models}
        assert "gpt-4o-mini:latest" in names
    assert b"OFFLINE DEMO" in server.output


def test_serve_offline_prints_banner_and_answers() -> None:
    port = free_port()
    env = {**CLEAN_ENV, **NO_ENV_FILE, "OLLAMA_HOST": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "falcon_ollama", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/tags", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        show = ollama.Client(host=f"http://127.0.0.1:{port}").show("gpt-4o")
        assert "completion" in (show.capabilities or [])
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert b"OFFLINE DEMO" in out
    assert b"BUNDLED FAKE UPSTREAM" in out


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OLLAMA_HOST", "127.0.0.1:notaport"),
        ("FALCON_OLLAMA_CONNECT_TIMEOUT", "-3"),
        ("OPENAI_BASE_URL", "nope"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "gunicorn"])
def test_bad_configuration_is_one_line_and_exit_2(command: str, variable: str, value: str) -> None:
    argv = (
        [sys.executable, "-m", "falcon_ollama", "serve"]
        if command == "serve"
        else [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    )
    env = {**CLEAN_ENV, **NO_ENV_FILE, variable: value}
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=60)
    assert result.returncode == 2
    output = (result.stderr + result.stdout).decode()
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"falcon-ollama: configuration error: {variable}: ")
    assert "Traceback" not in output


def test_bad_web_concurrency_is_one_line() -> None:
    # A non-number makes gunicorn itself fail while importing its own config (before ours runs); a number
    # gunicorn accepts but that makes no sense is ours to refuse.
    env = {**CLEAN_ENV, **NO_ENV_FILE, "WEB_CONCURRENCY": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"WEB_CONCURRENCY" in result.stdout + result.stderr
    assert b"Traceback" not in result.stdout + result.stderr


def test_version_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "falcon_ollama", "--version"], capture_output=True, timeout=30, check=True
    )
    assert result.stdout.decode().startswith("falcon-ollama ")
