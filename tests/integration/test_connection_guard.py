"""What a client without a key can make a worker hold is bounded (falcon_ollama/http_guard.py): the header
block's size and count, the time to send a head and a body, the connections per worker, and the open-file
limit. Raw sockets against ``gunicorn -c gunicorn.conf.py`` (and ``falcon-ollama serve``) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from fake_openai import FakeConfig, FakeUpstreamThread, expected_text
from tests.integration.test_gunicorn_lifecycle import gunicorn_env, stream_chat
from tests.servers import REPO, GunicornProcess, free_port

GET_TAGS = b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def read_response(sock: socket.socket, timeout: float = 20) -> tuple[int, bytes]:
    """The status and body of the one response on ``sock`` (read until the server closes)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data[:200]
    return int(head.split()[1]), body


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send ``data`` from a thread: the server may refuse and close long before it is all sent."""

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstreamThread]:
    with FakeUpstreamThread(FakeConfig(tokens=20, token_delay_ms=30, record=False)) as fake:
        yield fake


@contextlib.contextmanager
def gunicorn(upstream: FakeUpstreamThread, **env: str) -> Iterator[GunicornProcess]:
    with GunicornProcess({**gunicorn_env(upstream, workers=1), **env}) as server:
        yield server


def test_huge_header_is_refused_with_431_and_streams_go_on(upstream: FakeUpstreamThread) -> None:
    with gunicorn(upstream) as server:

        async def run() -> tuple[tuple[str, bool], int, bytes]:
            stream = asyncio.create_task(stream_chat(server.url))
            await asyncio.sleep(0.2)
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sender = send_in_background(sock, GET_TAGS + b"X-Big: " + b"a" * 8_000_000 + b"\r\n\r\n")
                status, body = await asyncio.to_thread(read_response, sock)
                sender.join(timeout=10)
            return await stream, status, body

        stream, status, body = asyncio.run(run())
        assert status == 431
        assert orjson.loads(body) == {"error": "request header fields too large (limit 65536 bytes)"}
        assert stream == (expected_text(20), True)
        # A head just under the bound is served.
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(GET_TAGS + b"X-Big: " + b"a" * 60_000 + b"\r\nConnection: close\r\n\r\n")
            assert read_response(sock)[0] == 200


def test_too_many_headers_is_431_in_the_route_dialect(upstream: FakeUpstreamThread) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    with gunicorn(upstream, FALCON_OLLAMA_MAX_HEADER_BYTES="4096") as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(GET_TAGS + many + b"\r\n")
            status, body = read_response(sock)
        assert (status, orjson.loads(body)) == (431, {"error": "too many header fields (limit 100)"})
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
            status, body = read_response(sock)
        assert status == 431
        assert orjson.loads(body)["error"]["message"] == "request header fields too large (limit 4096 bytes)"
        with socket.create_connection(("127.0.0.1", server.port)) as sock:  # 100 are fine
            sock.sendall(GET_TAGS + many[: many.index(b"X-H98:")] + b"Connection: close\r\n\r\n")
            assert read_response(sock)[0] == 200


def test_serve_refuses_a_huge_header_too() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FALCON_OLLAMA_", "OLLAMA_"))}
    env |= {"FALCON_OLLAMA_ENV_FILE": os.devnull, "OLLAMA_HOST": f"127.0.0.1:{port}"}
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
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/tags", timeout=2).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sender = send_in_background(sock, GET_TAGS + b"X-Big: " + b"a" * 2_000_000 + b"\r\n\r\n")
            assert read_response(sock)[0] == 431
            sender.join(timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_silent_and_trickling_clients_are_closed(upstream: FakeUpstreamThread) -> None:
    with gunicorn(
        upstream, FALCON_OLLAMA_REQUEST_HEAD_TIMEOUT="1", FALCON_OLLAMA_REQUEST_BODY_TIMEOUT="2"
    ) as server:
        address = ("127.0.0.1", server.port)
        with (
            socket.create_connection(address) as silent,
            socket.create_connection(address) as head,
            socket.create_connection(address) as body,
            socket.create_connection(address) as chunked,
        ):
            head.sendall(b"GET /api/tags HTTP/1.1\r\nHost: 1")  # ...and the rest never comes
            body.sendall(
                b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            chunked.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            started = time.monotonic()
            while time.monotonic() - started < 4:  # a chunk every 0.2 s: never idle, never done
                with contextlib.suppress(OSError):
                    chunked.sendall(b"1\r\n \r\n")
                time.sleep(0.2)
            silent.settimeout(10)
            assert silent.recv(100) == b""  # closed without a word: nothing was asked
            assert read_response(head) == (408, b'{"error":"request head not received within 1 s"}')
            assert read_response(body) == (408, b'{"error":"request body not received within 2 s"}')
            status, answer = read_response(chunked)
            assert status == 408
            assert orjson.loads(answer)["error"]["message"] == "request body not received within 2 s"
        assert httpx.get(server.url + "/api/tags").status_code == 200


def read_one(sock: socket.socket) -> int:
    """The status of the next response on a keep-alive ``sock`` (its body read by its Content-Length)."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1])


def test_a_keep_alive_connection_s_next_head_keeps_its_own_timeout(upstream: FakeUpstreamThread) -> None:
    """The connection's timer is not re-armed per request: after a request whose body came in two reads
    (the timer then set for the longer body timeout), the next head on the same connection is still held
    to the head timeout, and requests between deadlines are untouched."""
    with gunicorn(
        upstream, FALCON_OLLAMA_REQUEST_HEAD_TIMEOUT="1", FALCON_OLLAMA_REQUEST_BODY_TIMEOUT="4"
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            for _ in range(4):  # back-to-back requests across the connection's first deadline: all answered
                sock.sendall(GET_TAGS + b"\r\n")
                assert read_one(sock) == 200
                time.sleep(0.3)
            body = b'{"model": "llama3.2"}'
            sock.sendall(
                b"POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
            )
            time.sleep(1.3)  # the timer fires meanwhile, and is set again for the body's deadline (4 s)
            sock.sendall(body[5:])
            assert read_one(sock) == 200
            sock.sendall(b"GET /api/tags HTTP/1.1\r\nHost: 1")  # ...and the rest never comes
            started = time.monotonic()
            assert read_response(sock) == (408, b'{"error":"request head not received within 1 s"}')
            waited = time.monotonic() - started
        assert waited < 2.0, f"the head timeout (1 s) took {waited:.1f} s"


def test_trickling_clients_do_not_hold_sigterm(upstream: FakeUpstreamThread) -> None:
    """Bodies trickled one byte every 0.5 s, with the default body timeout (60 s) and a 30 s graceful
    timeout: at SIGTERM they get SHUTDOWN_RECEIVE_GRACE (5 s) more, not the graceful timeout."""
    server = GunicornProcess(gunicorn_env(upstream, workers=1)).__enter__()
    assert server.proc is not None
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    stop = threading.Event()

    def trickle() -> None:
        for sock in socks:
            sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
        while not stop.wait(0.5):
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)
        server.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = server.proc.wait(timeout=60)
        held = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for sock in socks:
            sock.close()
        server.__exit__()
    print(f"SIGTERM with 3 trickling clients: exit after {held:.1f} s")
    assert code == 0
    assert held < 20, f"trickling clients held SIGTERM {held:.1f} s (graceful timeout 30 s)"


def _low_soft_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def test_idle_sockets_beyond_the_soft_fd_limit_do_not_starve_requests(upstream: FakeUpstreamThread) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4000:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room above 2,500 sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # ours, for the 2,500
    server = GunicornProcess(gunicorn_env(upstream, workers=1), preexec_fn=_low_soft_nofile).__enter__()
    idle: list[socket.socket] = []
    try:
        assert server.proc is not None
        idle.extend(socket.create_connection(("127.0.0.1", server.port)) for _ in range(2500))
        time.sleep(1)  # every one accepted by now

        async def run() -> list[tuple[str, bool]]:
            return list(await asyncio.gather(*(stream_chat(server.url) for _ in range(20))))

        results = asyncio.run(run())
        assert results == [(expected_text(20), True)] * 20
    finally:
        for sock in idle:
            sock.close()
        server.__exit__()
    assert b"open-file limit raised from 1024 to" in server.output


def test_connections_beyond_the_cap_get_503(upstream: FakeUpstreamThread) -> None:
    with gunicorn(upstream, FALCON_OLLAMA_MAX_CLIENT_CONNECTIONS="20") as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        try:
            time.sleep(0.5)
            with socket.create_connection(("127.0.0.1", server.port)) as extra:
                status, body = read_response(extra)
            assert status == 503
            assert orjson.loads(body) == {
                "error": "too many open connections to this server (limit 20 per worker)"
            }
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.5)
        assert httpx.get(server.url + "/api/tags").status_code == 200
