"""Real servers on loopback for the tests: our app under uvicorn in a thread, and gunicorn as a process."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import uvicorn

from falcon_ollama.app import FalconOllamaApp, create_app
from falcon_ollama.http_guard import guarded_protocol
from falcon_ollama.open_files import connection_bounds
from falcon_ollama.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ProxyThread:
    """Our app served by a real uvicorn server on 127.0.0.1 in a background thread, with the guarded
    protocol both start paths use (``guarded=False``: uvicorn's own, as under another ASGI server)."""

    def __init__(self, settings: Settings, *, guarded: bool = True) -> None:
        self.app: FalconOllamaApp = create_app(settings)
        self.port = free_port()
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)  # this process's, not raised as a worker does
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            log_level="warning",
            access_log=False,
            http=guarded_protocol(connection_bounds(settings, soft)) if guarded else "auto",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("proxy did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)


class GunicornProcess:
    """``gunicorn -c gunicorn.conf.py`` exactly as production runs it, in a subprocess."""

    def __init__(
        self, env: Mapping[str, str], port: int | None = None, preexec_fn: Callable[[], None] | None = None
    ) -> None:
        self.preexec_fn = preexec_fn  # run in the child before exec (e.g. a lowered resource limit)
        self.port = port or free_port()
        self.env = {**os.environ, **env, "OLLAMA_HOST": f"127.0.0.1:{self.port}"}
        self.env.setdefault("WEB_CONCURRENCY", "2")
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GunicornProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else b""
                raise RuntimeError(f"gunicorn exited early ({self.proc.returncode}):\n{out.decode()}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("gunicorn did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.output = self.proc.stdout.read()


class RedisServer:
    """A real ``redis-server`` on a free loopback port, no persistence; ``stop``/``start`` for outages."""

    def __init__(self, executable: str, password: str | None = None) -> None:
        self.executable = executable
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited early ({self.proc.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Kill the server outright (an outage, not a shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None
