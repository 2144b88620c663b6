"""Small helpers for ``gunicorn.conf.py``, kept in the package so they are typed and tested."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time


def default_workers(web_concurrency: str | None) -> int:
    """``WEB_CONCURRENCY`` if set (a positive integer), else one async worker per CPU core."""
    if web_concurrency:
        try:
            value = int(web_concurrency)
        except ValueError:
            value = 0
        if value <= 0:
            from falcon_ollama.cli import EXIT_CONFIG_ERROR

            print(
                f"falcon-ollama: configuration error: WEB_CONCURRENCY: expected a positive integer, "
                f"got {web_concurrency!r}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(EXIT_CONFIG_ERROR)
        return value
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def free_loopback_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until something accepts connections on host:port (or raise TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)


def prepare_metrics_dir(configured: str | None) -> str:
    """The Prometheus multiprocess directory: the configured one emptied, or a new private one."""
    if not configured:
        return tempfile.mkdtemp(prefix="falcon-ollama-metrics-")
    os.makedirs(configured, exist_ok=True)
    for name in os.listdir(configured):
        path = os.path.join(configured, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    return configured


def int_setting(name: str, default: int, minimum: int = 0) -> int:
    """An integer gunicorn setting from the environment, or one configuration-error line and exit 2."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        from falcon_ollama.cli import EXIT_CONFIG_ERROR

        print(
            f"falcon-ollama: configuration error: {name}: expected an integer >= {minimum}, got {raw!r}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(EXIT_CONFIG_ERROR)
    return value
