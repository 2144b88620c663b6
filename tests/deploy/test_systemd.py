"""The VM recipe (deploy/systemd, deploy/logrotate): the unit parses, carries the settings the docs promise,
and its ExecStart, run from the checkout the way systemd would, serves, reloads on HUP, rotates its log file
and stops with exit 0 on its KillSignal (issue 17)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fake_openai import FakeUpstreamThread
from falcon_ollama.settings import BY_NAME, read_env_file
from tests.servers import REPO, free_port

UNIT = REPO / "deploy" / "systemd" / "falcon-ollama.service"
LOGROTATE = REPO / "deploy" / "logrotate" / "falcon-ollama"
PREFIX = "/opt/falcon-ollama"


def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """``[Section]`` -> its ``Key=Value`` lines in order (keys such as Environment= repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key, value))
    return sections


def service() -> dict[str, str]:
    """The [Service] section, last value wins, except Environment which is joined."""
    values: dict[str, str] = {}
    for key, value in unit_entries(UNIT.read_text())["Service"]:
        values[key] = f"{values[key]} {value}" if key == "Environment" and key in values else value
    return values


def gunicorn_conf_default(name: str) -> int:
    default: int = BY_NAME[name].default  # the declared default gunicorn.conf.py uses
    return default


def test_the_unit_has_the_recipe() -> None:
    s = service()
    assert s["Restart"] == "on-failure"
    assert s["RestartPreventExitStatus"] == "2"  # a configuration error: restarting cannot fix it
    assert s["KillSignal"] == "SIGTERM" and s["KillMode"] == "mixed"
    graceful = gunicorn_conf_default("FALCON_OLLAMA_GRACEFUL_TIMEOUT")
    assert int(s["TimeoutStopSec"]) >= graceful + 10, "systemd would SIGKILL draining streams"
    assert int(s["LimitNOFILE"]) >= 65536
    assert s["EnvironmentFile"].startswith("/etc/falcon-ollama/")
    assert s["User"] not in ("root", "0") and s["Group"] not in ("root", "0")
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit_entries(UNIT.read_text())["Install"] == [("WantedBy", "multi-user.target")]


def test_the_environment_file_template_is_env_example() -> None:
    # deployment.md installs .env.example as the EnvironmentFile: systemd reads KEY=VALUE lines and comments
    # only (no "export "), which is also all our .env reader accepts from it.
    text = (REPO / ".env.example").read_text()
    assert not re.search(r"^\s*export ", text, re.MULTILINE)
    assert read_env_file(REPO / ".env.example") == {}  # every line a comment: the defaults apply


def install_root(tmp_path: Path) -> Path:
    """/opt/falcon-ollama as deployment.md lays it out, made of links into this checkout and its venv."""
    root = tmp_path / "opt"
    root.mkdir()
    (root / "venv").symlink_to(Path(sys.prefix))
    (root / "gunicorn.conf.py").symlink_to(REPO / "gunicorn.conf.py")
    (root / "conf").symlink_to(REPO / "conf")
    return root


def installed(text: str, root: Path) -> str:
    return text.replace(PREFIX, str(root))


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    if not (Path(sys.prefix) / "bin" / "gunicorn").exists():
        pytest.skip("no gunicorn script in this environment's bin/")
    unit = tmp_path / "falcon-ollama.service"
    unit.write_text(installed(UNIT.read_text(), install_root(tmp_path)))
    result = subprocess.run([binary, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for unknown keys or bad values; it says so on stderr.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_exec_start_is_the_command_ci_runs() -> None:
    argv = shlex.split(service()["ExecStart"])
    assert argv == [f"{PREFIX}/venv/bin/gunicorn", "-c", f"{PREFIX}/gunicorn.conf.py"]
    # tests/servers.GunicornProcess (every gunicorn test) and the image run the same: gunicorn -c the file.
    servers = (REPO / "tests" / "servers.py").read_text()
    assert '[sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]' in servers
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["gunicorn", "-c", "/app/gunicorn.conf.py"]' in dockerfile


def wait_for(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            assert proc.poll() is None, "the service exited"
            assert time.monotonic() < deadline, f"nothing answered {url}"
            time.sleep(0.1)


def worker_pids(master: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_the_unit_serves_reloads_rotates_and_stops(tmp_path: Path, fake: FakeUpstreamThread) -> None:
    if not (Path(sys.prefix) / "bin" / "gunicorn").exists():
        pytest.skip("no gunicorn script in this environment's bin/")
    root = install_root(tmp_path)
    s = {k: installed(v, root) for k, v in service().items()}
    runtime, logs = tmp_path / "run", tmp_path / "log"  # RuntimeDirectory=, LogsDirectory=
    runtime.mkdir()
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_"))}
    env.update(read_env_file(REPO / ".env.example"))  # EnvironmentFile=
    env.update(dict(item.split("=", 1) for item in shlex.split(s["Environment"])))
    env["PROMETHEUS_MULTIPROC_DIR"] = env["PROMETHEUS_MULTIPROC_DIR"].replace(
        "/run/falcon-ollama", str(runtime)
    )
    port = free_port()
    log_file = logs / "falcon-ollama.log"
    env.update(
        {
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "FALCON_OLLAMA_ENV_FILE": os.devnull,
            "FALCON_OLLAMA_LOG_FILE": str(log_file),
            "OPENAI_BASE_URL": fake.base_url,  # the master's only children are then its workers
        }
    )
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        shlex.split(s["ExecStart"]),
        cwd=s["WorkingDirectory"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(url + "/health", proc).status_code == 200
        assert wait_for(url + "/api/tags", proc).status_code == 200
        assert "llama3.2:latest" in wait_for(url + "/api/tags", proc).text  # the catalog from Environment=

        # systemctl reload: ExecReload with $MAINPID; gunicorn replaces its workers and keeps serving.
        before = worker_pids(proc.pid)
        reload = shlex.split(s["ExecReload"].replace("$MAINPID", str(proc.pid)))
        subprocess.run(reload, check=True, timeout=10)
        deadline = time.monotonic() + 30
        while not (worker_pids(proc.pid) - before) or (before & worker_pids(proc.pid)):
            assert proc.poll() is None and time.monotonic() < deadline, "HUP did not replace the workers"
            time.sleep(0.1)
        assert wait_for(url + "/api/tags", proc).status_code == 200

        if shutil.which("logrotate"):
            rotate_and_check(tmp_path, log_file, url)
    finally:
        proc.send_signal(getattr(signal, service()["KillSignal"]))
        proc.wait(timeout=int(service()["TimeoutStopSec"]))
    assert proc.returncode == 0


def rotate_and_check(tmp_path: Path, log_file: Path, url: str) -> None:
    """logrotate with our config (paths moved, no su: the test is not that user): nothing is lost, the live
    file keeps receiving lines without a restart or a signal (copytruncate on an O_APPEND file)."""
    httpx.get(url + "/api/version")
    time.sleep(0.3)
    assert "/api/version" in log_file.read_text()
    config = tmp_path / "logrotate.conf"
    text = LOGROTATE.read_text().replace("/var/log/falcon-ollama/falcon-ollama.log", str(log_file))
    config.write_text("\n".join(line for line in text.splitlines() if not line.strip().startswith("su ")))
    result = subprocess.run(
        ["logrotate", "-f", "-s", str(tmp_path / "logrotate.state"), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rotated = log_file.with_name(log_file.name + ".1")
    assert "/api/version" in rotated.read_text()
    httpx.get(url + "/api/ps")
    time.sleep(0.3)
    live = log_file.read_bytes()
    assert b"/api/ps" in live and b"/api/version" not in live
    assert not live.startswith(b"\0"), "the writer kept its offset: copytruncate needs append mode"
