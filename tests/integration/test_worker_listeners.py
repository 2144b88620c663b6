"""FALCON_OLLAMA_REUSEPORT through ``gunicorn -c gunicorn.conf.py``: a listening socket per worker, and new
connections spread over the workers by the kernel instead of one worker taking a whole burst."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread
from falcon_ollama.gunicorn_support import worker_listeners
from tests.servers import GunicornProcess


@pytest.mark.parametrize(
    ("mode", "migrate", "expected"),
    [
        ("on", "0", True),
        ("off", "1", False),
        ("auto", "1", True),
        ("auto", "0", False),
        ("auto", None, False),  # a kernel without the sysctl (before 5.14), or no /proc
    ],
)
def test_the_mode_and_the_kernel_decide(
    tmp_path: Path, mode: str, migrate: str | None, expected: bool
) -> None:
    path = tmp_path / "tcp_migrate_req"
    if migrate is not None:
        path.write_text(migrate + "\n")
    assert worker_listeners(mode, path) is expected


def _inodes(pid: int) -> set[str]:
    """The socket inodes a process holds."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def _sockets(port: int) -> list[tuple[str, str]]:
    """(state, inode) of every IPv4 TCP socket whose local port is ``port``."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(f":{port:04X}"):
            rows.append((parts[3], parts[9]))
    return rows


def _workers(master: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig()) as fake:
        yield fake


def _serve(upstream: FakeUpstreamThread, mode: str) -> GunicornProcess:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        OPENAI_BASE_URL=upstream.base_url,
        OPENAI_API_KEY="sk-listeners",
        WEB_CONCURRENCY="2",
        FALCON_OLLAMA_ENV_FILE=os.devnull,
        FALCON_OLLAMA_REUSEPORT=mode,
    )
    return GunicornProcess(env)


def test_on_gives_each_worker_its_own_listening_socket_and_spreads_a_burst(
    upstream: FakeUpstreamThread,
) -> None:
    with _serve(upstream, "on") as server:
        assert server.proc is not None
        deadline = time.monotonic() + 15  # gunicorn answers once one worker is up: wait for the second
        while True:
            workers = _workers(server.proc.pid)
            listening = {inode for state, inode in _sockets(server.port) if state == "0A"}
            if (len(workers) == 2 and len(listening) == 2) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(workers) == 2
        owned = [_inodes(pid) & listening for pid in workers]
        assert len(listening) == 2 and all(len(mine) == 1 for mine in owned) and owned[0] != owned[1]
        # A burst of 60 connections held open: the kernel hashes each to one worker's socket, so both get
        # some (all on one worker has a chance of 2 in 2**60).
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(60)]
        try:
            deadline = time.monotonic() + 5
            while True:
                accepted = {inode for state, inode in _sockets(server.port) if state == "01"}
                per_worker = [len(_inodes(pid) & accepted) for pid in workers]
                if sum(per_worker) >= 60 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert sum(per_worker) == 60 and min(per_worker) > 0, per_worker
        finally:
            for client in clients:
                client.close()
        assert httpx.get(server.url + "/api/version").status_code == 200
    assert b"a listening socket per worker" in server.output


def test_off_keeps_the_one_shared_socket(upstream: FakeUpstreamThread) -> None:
    with _serve(upstream, "off") as server:
        assert server.proc is not None
        deadline = time.monotonic() + 15
        while len(_workers(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        listening = {inode for state, inode in _sockets(server.port) if state == "0A"}
        assert len(listening) == 1
        assert all(listening <= _inodes(pid) for pid in _workers(server.proc.pid))
        assert httpx.get(server.url + "/api/version").status_code == 200
