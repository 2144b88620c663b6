"""Small helpers for ``gunicorn.conf.py``, kept in the package so they are typed and tested.

gunicorn executes ``gunicorn.conf.py`` again in the master on every SIGHUP, in a fresh namespace. What must
outlive that (the validated settings the workers are forked with, the offline fake upstream's process, the
metrics directory) is kept here, in a module the master imported once.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from falcon_ollama.settings import Settings, SettingsError

_settings: Settings | None = None  # the master's current, validated settings; workers inherit it by fork
_fake_upstream: subprocess.Popen[bytes] | None = None
_metrics_dir: str | None = None
_metrics_dir_private = False  # made by prepare_metrics_dir (none configured): removed at the master's exit


def master_settings() -> Settings:
    """The settings for this (re)load of gunicorn.conf.py, validated.

    At start a bad value is the usual one line and exit 2. On a reload (SIGHUP) exiting would kill the
    master and orphan its workers: the error is written to the log instead, and the running settings are
    kept, so the workers gunicorn starts for the reload serve exactly what was served before.
    """
    global _settings
    if _settings is None:
        from falcon_ollama.cli import load_settings_or_exit

        _settings = load_settings_or_exit()
        return _settings
    try:
        _settings = Settings.from_env()
    except SettingsError as exc:
        print(
            f"falcon-ollama: configuration error: {exc} (reload refused: the running configuration is kept)",
            file=sys.stderr,
            flush=True,
        )
    return _settings


def current_settings() -> Settings:
    """In a worker: the settings the master validated (read from the environment when not under our conf)."""
    return _settings if _settings is not None else Settings.from_env()


def use_upstream(base_url: str) -> None:
    """Point the current settings (and so every worker forked from now on) at ``base_url``."""
    global _settings
    import dataclasses

    os.environ["OPENAI_BASE_URL"] = base_url  # a reload reads it again
    if _settings is not None:
        _settings = dataclasses.replace(_settings, openai_base_url=base_url, openai_base_url_set=True)


def start_fake_upstream() -> str:
    """Start the bundled fake upstream on loopback, once per master; its base URL."""
    global _fake_upstream
    port = free_loopback_port()
    _fake_upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "falcon_ollama",
            "fake-upstream",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--token-delay-ms",
            "20",
        ],
        stdout=subprocess.DEVNULL,  # its "listening on" line would repeat the banner, in another format
        stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port, timeout=15.0)
    return f"http://127.0.0.1:{port}/v1"


def stop_fake_upstream() -> None:
    """Stop the fake upstream started by this master, if any (whichever load of the conf started it)."""
    global _fake_upstream
    process, _fake_upstream = _fake_upstream, None
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def metrics_dir(configured: str | None) -> str:
    """The Prometheus multiprocess directory, prepared once per master: a reload must not empty the files
    the running workers still write to."""
    global _metrics_dir, _metrics_dir_private
    if _metrics_dir is None:
        try:
            _metrics_dir = prepare_metrics_dir(configured)
            _metrics_dir_private = not configured
        except OSError as exc:
            from falcon_ollama.cli import EXIT_CONFIG_ERROR

            reason = exc.strerror or str(exc)
            print(
                "falcon-ollama: configuration error: PROMETHEUS_MULTIPROC_DIR: "
                f"cannot prepare {configured!r}: {reason}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(EXIT_CONFIG_ERROR) from None
    return _metrics_dir


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


def remove_private_metrics_dir() -> None:
    """At the master's exit: remove the metrics directory it made for itself (none was configured); a
    configured one stays for the operator's tools. A master killed with SIGKILL leaves it behind."""
    if _metrics_dir is not None and _metrics_dir_private:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


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


# The files a reload re-reads, named by the variables that point at them (FALCON_OLLAMA_CONFIG_WATCH_SECONDS).
WATCHED_VARIABLES = ("FALCON_OLLAMA_CATALOG", "FALCON_OLLAMA_TENANTS_FILE", "FALCON_OLLAMA_API_KEYS_FILE")
_watcher: threading.Thread | None = None

FileState = tuple[int, int, int] | None  # (inode, size, mtime in ns) or None when the file is absent


def watched_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The configuration files of this environment that exist as variables (resolved, ``~`` expanded)."""
    env = os.environ if environ is None else environ
    return [Path(env[name]).expanduser() for name in WATCHED_VARIABLES if env.get(name)]


def file_states(paths: list[Path]) -> dict[Path, FileState]:
    """What a change looks like: the file replaced (a Kubernetes ConfigMap swaps a symlink), resized or
    rewritten. ``stat`` follows symlinks, so a swapped link target counts."""
    states: dict[Path, FileState] = {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            states[path] = None
        else:
            states[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return states


def start_config_watcher(period: float, on_change: Callable[[list[Path]], None]) -> None:
    """In the gunicorn master: every ``period`` seconds, compare the watched files with what they were;
    on a change call ``on_change`` with the changed paths (it sends the master SIGHUP, whose reload keeps
    the running configuration when the new one is bad). One thread per master, started once."""
    global _watcher
    if period <= 0 or _watcher is not None:
        return

    def run() -> None:
        before = file_states(watched_files())
        while True:
            time.sleep(period)
            now = file_states(watched_files())
            changed = [path for path in now.keys() | before.keys() if now.get(path) != before.get(path)]
            before = now
            if changed:
                on_change(sorted(changed))

    _watcher = threading.Thread(target=run, name="falcon-ollama-config-watch", daemon=True)
    _watcher.start()


# Linux >= 5.14: when a listening socket of a SO_REUSEPORT group closes, the connections queued on it move
# to another socket of the group instead of being reset (sysctl net.ipv4.tcp_migrate_req).
MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def worker_listeners(mode: str, migrate_req: Path = MIGRATE_REQ) -> bool:
    """Whether each worker listens on a SO_REUSEPORT socket of its own (FALCON_OLLAMA_REUSEPORT; gunicorn's
    ``reuse_port``, with which each worker opens its own socket after the fork).

    Why: with the one listening socket gunicorn shares, a burst of new connections goes to whichever worker
    wakes first, and uvloop accepts the whole backlog at once (93 / 7 of 100 connections was measured): one
    worker saturates while the other idles. Per-worker sockets let the kernel spread them. The cost: a
    worker that exits (recycling, reload) drops what is queued on its socket, unless the kernel migrates it;
    so ``auto`` turns them on only where it does."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    try:
        return migrate_req.read_text().strip() == "1"
    except OSError:
        return False
