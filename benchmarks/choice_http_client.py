"""Decision 1: which HTTP client should talk to the OpenAI-compatible upstream?

Standalone benchmark (not a pytest file)::

    /work/venv/bin/python benchmarks/choice_http_client.py            # full run, ~2.5 min (--time-budget)
    /work/venv/bin/python benchmarks/choice_http_client.py --quick    # c=10/100 main matrix only, ~1 min
    /work/venv/bin/python benchmarks/choice_http_client.py --only httpx,aiohttp --json out.json

How it works
------------
* A canned upstream (raw asyncio Protocol on uvloop) runs in a SEPARATE process.  It
  answers ``POST /v1/chat/completions`` with a fixed ``chat.completion`` JSON, or -- when
  the body has ``"stream": true`` -- a fixed 50-event SSE stream sent with
  ``Transfer-Encoding: chunked``, one ``write()`` per event with a loop yield in between
  (``--burst`` sends the whole stream in one write instead).  The same process also runs
  a TLS listener (self-signed cert made with the ``openssl`` CLI) and a tiny HTTP
  CONNECT proxy, used by the TLS rows and by the HTTPS_PROXY support check.
* Every (client, mode, concurrency) cell runs in its own fresh ``python`` subprocess:
  ONE client/pool is created at start-up and reused; ``concurrency`` asyncio workers
  issue requests in a loop; the warm-up lasts until CPU/request is steady, then the
  measurement switches on (no barrier) for about 0.5 s of requests.  ``/gap<ms>/`` paths
  make the upstream space stream events by that many milliseconds (token pacing).  The subprocess
  reports its own ``time.process_time()`` delta (all threads) over the measured phase,
  wall-clock throughput, per-request latency p50/p99, the upstream's CPU over the same
  window (from /proc, to show when the upstream is the bottleneck) and max RSS.
* All clients do the same useful work: serialise the request body, send it, and turn
  the answer into something the proxy can translate -- a parsed object (SDK parsed
  mode) or ``orjson.loads`` of the body / of every SSE ``data:`` payload (raw modes).
  Then they read ``choices[0].message.content`` / ``choices[0].delta.content``.

Loopback only (127.0.0.1).  Nothing is written outside a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

import orjson

# --------------------------------------------------------------------------------------
# Canned upstream payloads
# --------------------------------------------------------------------------------------

N_EVENTS = 50  # chat.completion.chunk events per stream (plus the final "data: [DONE]")

REQUEST_PAYLOAD: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "Why is the sky blue? Explain in two sentences."},
    ],
    "max_tokens": 128,
    "temperature": 0.7,
}

_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Sunlight is scattered by the molecules of the atmosphere, and blue light "
                "is scattered much more than red because it has a shorter wavelength. "
                "So wherever you look away from the Sun you see scattered blue light.",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 32,
        "completion_tokens": 48,
        "total_tokens": 80,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}

_COMMON_HEADERS = (
    b"Date: Wed, 26 Nov 2026 10:00:00 GMT\r\n"
    b"openai-organization: user-benchmark\r\n"
    b"openai-processing-ms: 120\r\n"
    b"openai-version: 2020-10-01\r\n"
    b"x-request-id: req_5f1c0e7d3b2a4c6e8f9a0b1c2d3e4f50\r\n"
    b"x-ratelimit-limit-requests: 10000\r\n"
    b"x-ratelimit-remaining-requests: 9999\r\n"
    b"x-ratelimit-limit-tokens: 200000\r\n"
    b"x-ratelimit-remaining-tokens: 199950\r\n"
)


def _chunk_event(delta: dict[str, Any], finish: str | None) -> bytes:
    ev = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(ev) + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def build_upstream_bytes() -> tuple[bytes, list[bytes]]:
    body = orjson.dumps(_COMPLETION)
    nonstream = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + _COMMON_HEADERS
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    events = [_chunk_event({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [_chunk_event({"content": f" tok{i}"}, None) for i in range(N_EVENTS - 2)]
    events.append(_chunk_event({}, "stop"))
    assert len(events) == N_EVENTS
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        + _COMMON_HEADERS
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    pieces = [head + _http_chunk(events[0])]
    pieces += [_http_chunk(e) for e in events[1:]]
    pieces.append(_http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return nonstream, pieces


# --------------------------------------------------------------------------------------
# Canned upstream server (runs in its own process)
# --------------------------------------------------------------------------------------

_CL_RE = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_STREAM_RE = re.compile(rb'"stream":\s*true')
_GAP_RE = re.compile(rb"POST /gap(\d+)/")


def _server_main(cert_dir: str | None, burst: bool) -> None:
    """Runs in its own process; prints its ports as one JSON line on stdout."""
    import uvloop

    nonstream, pieces = build_upstream_bytes()
    stream_burst = b"".join(pieces)
    stats: collections.Counter[str] = collections.Counter()
    streaming: set[asyncio.Future[None]] = set()

    class Upstream(asyncio.Protocol):
        def __init__(self, kind: str) -> None:
            self.kind = kind
            self.buf = b""
            self.t: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport  # type: ignore[assignment]
            stats[self.kind + "_conns"] += 1

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            while True:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    break
                m = _CL_RE.search(buf, 0, i + 2)
                end = i + 4 + (int(m.group(1)) if m else 0)
                if len(buf) < end:
                    break
                self.handle(buf[:i], buf[i + 4 : end])
                buf = buf[end:]
            self.buf = buf

        def handle(self, head: bytes, body: bytes) -> None:
            t = self.t
            assert t is not None
            if head.startswith(b"GET /stats"):
                data = json.dumps(stats).encode()
                t.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(data), data)
                )
                t.close()
                return
            stats[self.kind + "_requests"] += 1
            if _STREAM_RE.search(body):
                gap = _GAP_RE.match(head)  # POST /gap<ms>/v1/...: real time between events
                if gap:
                    self.spawn(self.stream(t, int(gap.group(1)) / 1000))
                elif burst:
                    t.write(stream_burst)
                else:
                    self.spawn(self.stream(t, 0))
            else:
                t.write(nonstream)

        @staticmethod
        def spawn(coro: Any) -> None:
            task = asyncio.ensure_future(coro)
            streaming.add(task)  # keep a reference until it finishes
            task.add_done_callback(streaming.discard)

        async def stream(self, t: asyncio.Transport, gap: float) -> None:
            for p in pieces:
                if t.is_closing():
                    return
                t.write(p)
                await asyncio.sleep(gap)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()

    async def connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if parts[0] != b"CONNECT":
            stats["proxy_plain_http"] += 1
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        host, port = parts[1].decode().rsplit(":", 1)
        stats["proxy_connects"] += 1
        r2, w2 = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        plain = await loop.create_server(lambda: Upstream("plain"), "127.0.0.1", 0, backlog=1024)
        ports = {"plain": plain.sockets[0].getsockname()[1], "pid": os.getpid()}
        if cert_dir:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(os.path.join(cert_dir, "cert.pem"), os.path.join(cert_dir, "key.pem"))
            tls = await loop.create_server(lambda: Upstream("tls"), "127.0.0.1", 0, ssl=ctx, backlog=1024)
            proxy = await asyncio.start_server(connect_proxy, "127.0.0.1", 0)
            ports["tls"] = tls.sockets[0].getsockname()[1]
            ports["proxy"] = proxy.sockets[0].getsockname()[1]
        sys.stdout.write(json.dumps(ports) + "\n")
        sys.stdout.flush()
        await asyncio.Event().wait()

    uvloop.run(main())


def server_stats(port: int) -> dict[str, int]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def _system_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores) outside idle/iowait."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


_QUIET_BUDGET = [12.0]  # seconds of waiting allowed over the whole run, so the run stays bounded


def wait_quiet(max_wait: float = 5.0, threshold_cores: float = 0.25) -> float:
    """Wait (bounded) until other processes leave the machine idle; returns the busy cores seen last."""
    start = time.monotonic()
    deadline = start + min(max_wait, _QUIET_BUDGET[0])
    while True:
        b0 = _system_busy_seconds()
        time.sleep(0.1)
        busy = (_system_busy_seconds() - b0) / 0.1
        if busy < threshold_cores or time.monotonic() > deadline:
            _QUIET_BUDGET[0] -= time.monotonic() - start
            return busy


def _proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------
# (f) Minimal hand-written HTTP/1.1 client: asyncio Protocol + httptools, keep-alive pool.
#     A floor, not a product: no timeouts, no retries of stale connections, no proxies.
# --------------------------------------------------------------------------------------


class FloorResponse:
    __slots__ = ("chunks", "done", "error", "headers", "keep_alive", "status", "waiter")

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.done = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.keep_alive = True

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    async def _wait(self) -> None:
        if self.error is None:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        if self.error is not None:
            raise self.error

    async def read(self) -> bytes:
        while not self.done:
            await self._wait()
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    async def iter_chunks(self):  # -> AsyncIterator[bytes]
        while True:
            if self.chunks:
                chunks, self.chunks = self.chunks, []
                for c in chunks:
                    yield c
            elif self.done:
                return
            else:
                await self._wait()


class FloorConnection(asyncio.Protocol):
    def __init__(self, pool: FloorPool) -> None:
        import httptools

        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.parse_error = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.resp: FloorResponse | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.parse_error as exc:
            self._fail(exc)
            self.transport.close()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        self._fail(exc or ConnectionResetError("upstream closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        r = self.resp
        if r is not None and not r.done:
            r.error = exc
            r._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.resp.headers.append((name, value))  # type: ignore[union-attr]

    def on_headers_complete(self) -> None:
        r = self.resp
        r.status = self.parser.get_status_code()  # type: ignore[union-attr]
        r.keep_alive = self.parser.should_keep_alive()  # type: ignore[union-attr]
        r._wake()  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        r = self.resp
        r.chunks.append(body)  # type: ignore[union-attr]
        r._wake()  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        r, self.resp = self.resp, None
        r.done = True  # type: ignore[union-attr]
        r._wake()  # type: ignore[union-attr]
        if r.keep_alive and not self.closed:  # type: ignore[union-attr]
            self.pool._release(self)
        else:
            self.transport.close()  # type: ignore[union-attr]


class FloorPool:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 100,
        ssl_ctx: ssl.SSLContext | None = None,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        self.host, self.port, self.max, self.ssl = host, port, max_connections, ssl_ctx
        self.idle: list[FloorConnection] = []
        self.waiters: collections.deque[asyncio.Future[FloorConnection | None]] = collections.deque()
        self.count = 0
        hdrs = {"Host": f"{host}:{port}", "Accept": "*/*", **(default_headers or {})}
        self.head_tail = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode("latin-1")

    async def _acquire(self) -> FloorConnection:
        loop = asyncio.get_running_loop()
        while True:
            while self.idle:
                c = self.idle.pop()
                if not c.closed:
                    return c
            if self.count < self.max:
                self.count += 1
                try:
                    _, c = await loop.create_connection(
                        lambda: FloorConnection(self), self.host, self.port, ssl=self.ssl
                    )
                except BaseException:
                    self.count -= 1
                    raise
                return c  # type: ignore[return-value]
            fut: asyncio.Future[FloorConnection | None] = loop.create_future()
            self.waiters.append(fut)
            c = await fut
            if c is not None:
                return c

    def _release(self, c: FloorConnection) -> None:
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(c)
                return
        self.idle.append(c)

    def _lost(self, c: FloorConnection) -> None:
        self.count -= 1
        while self.waiters:  # let one waiter open a fresh connection
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    async def request(
        self, method: bytes, path: bytes, body: bytes = b"", headers: bytes = b""
    ) -> FloorResponse:
        c = await self._acquire()
        resp = FloorResponse()
        c.resp = resp
        c.transport.write(  # type: ignore[union-attr]
            b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s"
            % (method, path, self.head_tail, headers, len(body), body)
        )
        while not resp.status:
            await resp._wait()
        return resp

    async def aclose(self) -> None:
        for c in self.idle:
            c.transport.close()  # type: ignore[union-attr]
        self.idle.clear()


# --------------------------------------------------------------------------------------
# SSE splitting shared by every raw-bytes candidate
# --------------------------------------------------------------------------------------


class SSESplitter:
    """Feed bytes, get back the ``data:`` payloads of complete events (LF or CRLF)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buf + data if self.buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        events = buf.split(b"\n\n")
        self.buf = events.pop()
        out = []
        for ev in events:
            if ev.startswith(b"data: ") and b"\n" not in ev:
                out.append(ev[6:])
            else:
                lines = [ln[5:].lstrip(b" ") for ln in ev.split(b"\n") if ln.startswith(b"data:")]
                if lines:
                    out.append(b"\n".join(lines))
        return out


# --------------------------------------------------------------------------------------
# Candidates (all run inside the worker subprocess)
# --------------------------------------------------------------------------------------

API_KEY = "sk-benchmark-0000000000000000000000000000000000000000"


class Candidate:
    """nonstream() -> content str; stream() -> number of chunk events seen."""

    async def nonstream(self) -> str: ...
    async def stream(self) -> int: ...
    async def aclose(self) -> None: ...


def make_candidate(name: str, cfg: dict[str, Any]) -> Candidate:
    base = cfg["base_url"]  # e.g. http://127.0.0.1:1234
    url = base + "/v1/chat/completions"
    pool = cfg.get("pool", 200)
    trust_env = cfg.get("trust_env", False)
    ssl_ctx = ssl.create_default_context(cafile=cfg["cafile"]) if cfg.get("cafile") else None
    hdrs = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    ns_body = REQUEST_PAYLOAD
    st_body = {**REQUEST_PAYLOAD, "stream": True}

    if name.startswith("sdk"):
        import openai

        kw: dict[str, Any] = {}
        if name.startswith("sdk_aiohttp"):
            kw = {"verify": ssl_ctx} if ssl_ctx else {}
            http_client = openai.DefaultAioHttpClient(**kw)
        else:
            kw = {"verify": ssl_ctx} if ssl_ctx else {}
            http_client = openai.DefaultAsyncHttpxClient(**kw)
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base + "/v1", http_client=http_client)
        comp = client.chat.completions
        raw = name.endswith("_raw")

        class SDK(Candidate):
            if not raw:

                async def nonstream(self) -> str:
                    r = await comp.create(**ns_body)
                    return r.choices[0].message.content

                async def stream(self) -> int:
                    n = 0
                    s = await comp.create(**st_body)
                    async for chunk in s:
                        _ = chunk.choices[0].delta.content
                        n += 1
                    return n
            else:

                async def nonstream(self) -> str:
                    r = await comp.with_raw_response.create(**ns_body)
                    return orjson.loads(r.content)["choices"][0]["message"]["content"]

                async def stream(self) -> int:
                    n = 0
                    sp = SSESplitter()
                    async with comp.with_streaming_response.create(**st_body) as r:
                        async for data in r.iter_bytes():
                            for payload in sp.feed(data):
                                if payload == b"[DONE]":
                                    continue
                                orjson.loads(payload)["choices"][0]["delta"].get("content")
                                n += 1
                    return n

            async def aclose(self) -> None:
                await client.close()

        return SDK()

    if name in ("httpx", "httpx2"):
        hx = __import__(name)
        client = hx.AsyncClient(
            limits=hx.Limits(max_connections=pool, max_keepalive_connections=pool),
            timeout=hx.Timeout(600.0, connect=5.0),
            trust_env=trust_env,
            verify=ssl_ctx if ssl_ctx else True,
            headers=hdrs,
        )

        class HX(Candidate):
            async def nonstream(self) -> str:
                r = await client.post(url, content=orjson.dumps(ns_body))
                if r.status_code != 200:
                    raise RuntimeError(r.status_code)
                return orjson.loads(r.content)["choices"][0]["message"]["content"]

            async def stream(self) -> int:
                n = 0
                sp = SSESplitter()
                async with client.stream("POST", url, content=orjson.dumps(st_body)) as r:
                    if r.status_code != 200:
                        raise RuntimeError(r.status_code)
                    async for data in r.aiter_bytes():
                        for payload in sp.feed(data):
                            if payload == b"[DONE]":
                                continue
                            orjson.loads(payload)["choices"][0]["delta"].get("content")
                            n += 1
                return n

            async def aclose(self) -> None:
                await client.aclose()

        return HX()

    if name == "aiohttp":
        import urllib.request

        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=600.0)
        session_holder: list[aiohttp.ClientSession] = []
        # "resolve proxy once": what we would do in production instead of trust_env=True
        proxy = None
        if cfg.get("proxy_once"):
            parts = urllib.parse.urlsplit(base)
            if not urllib.request.proxy_bypass(parts.hostname or ""):
                proxy = urllib.request.getproxies().get(parts.scheme)

        def session() -> aiohttp.ClientSession:
            if not session_holder:  # must be created inside the running loop
                session_holder.append(
                    aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(
                            limit=pool, limit_per_host=0, ssl=ssl_ctx if ssl_ctx else True
                        ),
                        timeout=timeout,
                        trust_env=trust_env,
                        headers=hdrs,
                    )
                )
            return session_holder[0]

        class AIO(Candidate):
            async def nonstream(self) -> str:
                async with session().post(url, data=orjson.dumps(ns_body), proxy=proxy) as r:
                    if r.status != 200:
                        raise RuntimeError(r.status)
                    return orjson.loads(await r.read())["choices"][0]["message"]["content"]

            async def stream(self) -> int:
                n = 0
                sp = SSESplitter()
                async with session().post(url, data=orjson.dumps(st_body), proxy=proxy) as r:
                    if r.status != 200:
                        raise RuntimeError(r.status)
                    async for data in r.content.iter_any():
                        for payload in sp.feed(data):
                            if payload == b"[DONE]":
                                continue
                            orjson.loads(payload)["choices"][0]["delta"].get("content")
                            n += 1
                return n

            async def aclose(self) -> None:
                if session_holder:
                    await session_holder[0].close()

        return AIO()

    if name == "floor":
        import urllib.parse

        parts = urllib.parse.urlsplit(url)
        fp = FloorPool(
            parts.hostname or "127.0.0.1",
            parts.port or 80,
            max_connections=pool,
            ssl_ctx=ssl_ctx if parts.scheme == "https" else None,
            default_headers=hdrs,
        )
        path = parts.path.encode()

        class Floor(Candidate):
            async def nonstream(self) -> str:
                r = await fp.request(b"POST", path, orjson.dumps(ns_body))
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(r.status)
                return orjson.loads(body)["choices"][0]["message"]["content"]

            async def stream(self) -> int:
                n = 0
                sp = SSESplitter()
                r = await fp.request(b"POST", path, orjson.dumps(st_body))
                if r.status != 200:
                    raise RuntimeError(r.status)
                async for data in r.iter_chunks():
                    for payload in sp.feed(data):
                        if payload == b"[DONE]":
                            continue
                        orjson.loads(payload)["choices"][0]["delta"].get("content")
                        n += 1
                return n

            async def aclose(self) -> None:
                await fp.aclose()

        return Floor()

    raise SystemExit(f"unknown candidate {name!r}")


# --------------------------------------------------------------------------------------
# Worker subprocess
# --------------------------------------------------------------------------------------


class _Run:
    """Workers run continuously; a monitor switches from warm-up to measurement without a barrier."""

    def __init__(self, fn, concurrency: int, expect_events: bool) -> None:
        self.fn, self.conc, self.expect_events = fn, concurrency, expect_events
        self.measuring = False
        self.quota = 0  # measured requests still to issue
        self.completed = 0
        self.lat: list[float] = []

    async def worker(self) -> None:
        perf = time.perf_counter
        while True:
            measured = self.measuring
            if measured:
                if self.quota <= 0:
                    return
                self.quota -= 1
            t0 = perf()
            res = await self.fn()
            if measured:
                self.lat.append(perf() - t0)
            if self.expect_events and res != N_EVENTS:
                raise RuntimeError(f"got {res} events, expected {N_EVENTS}")
            self.completed += 1


async def _worker_main(cfg: dict[str, Any]) -> dict[str, Any]:
    cand = make_candidate(cfg["candidate"], cfg)
    if cfg.get("check_only"):
        try:
            for _ in range(3):
                txt = await cand.nonstream()
                assert txt.startswith("Sunlight")
            n = await cand.stream()
            assert n == N_EVENTS
            return {"ok": True}
        except Exception as exc:  # report, don't crash
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
        finally:
            await cand.aclose()
    stream = cfg["mode"] == "stream"
    conc = cfg["concurrency"]
    run = _Run(cand.stream if stream else cand.nonstream, conc, stream)
    tasks = asyncio.gather(*(run.worker() for _ in range(conc)))

    # Warm-up until steady: at least min_warm requests done (every pooled connection opened) and
    # two consecutive 0.25 s windows within 15 % CPU/request of each other; capped at 5 s.
    min_warm = max(int(1.5 * conc), 30 if stream else 100)
    t_start = time.perf_counter()
    prev = None
    window = 0.25
    rate = 1.0
    while True:
        d0, c0 = run.completed, time.process_time()
        await asyncio.sleep(window)
        done = run.completed - d0
        if tasks.done():
            tasks.result()  # surface worker errors
        if done == 0:
            continue
        rate = done / window
        cur = (time.process_time() - c0) / done
        elapsed = time.perf_counter() - t_start
        if (
            run.completed >= min_warm
            and prev is not None
            and abs(cur - prev) <= 0.15 * prev
            and elapsed >= cfg.get("min_warm_s", 0.0)
        ):
            break
        if elapsed > max(5.0, cfg.get("min_warm_s", 0.0)):
            break
        prev = cur
    warm_s = time.perf_counter() - t_start
    lo, hi = (max(3 * conc, 60), 4000) if stream else (max(5 * conc, 300), 40000)
    lo = cfg.get("min_requests", lo)
    n = min(hi, max(lo, int(rate * cfg["target_s"])))

    spid = cfg.get("server_pid")
    s0 = _proc_cpu_seconds(spid) if spid else 0.0
    b0 = _system_busy_seconds()
    done0 = run.completed
    c0, t0 = time.process_time(), time.perf_counter()
    run.quota = n
    run.measuring = True
    await tasks
    c1, t1 = time.process_time(), time.perf_counter()
    b1 = _system_busy_seconds()
    s1 = _proc_cpu_seconds(spid) if spid else 0.0
    await cand.aclose()
    # requests completed inside the window: the n measured ones plus warm-up requests in flight at the switch
    finished = run.completed - done0
    lat = sorted(run.lat)
    wall, cpu = t1 - t0, c1 - c0
    return {
        "requests": n,
        "warmup_s": warm_s,
        "wall_s": wall,
        "rps": finished / wall,
        "cpu_s": cpu,
        "cpu_us_req": cpu / finished * 1e6,
        "cpu_us_event": cpu / (finished * N_EVENTS) * 1e6 if stream else None,
        "client_core_pct": cpu / wall * 100,
        "server_core_pct": (s1 - s0) / wall * 100,
        # everything else on the machine (other processes, unattributed softirq) during the window
        "other_core_pct": max(0.0, (b1 - b0) - (c1 - c0) - (s1 - s0)) / wall * 100,
        "p50_ms": lat[len(lat) // 2] * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def worker_entry(cfg: dict[str, Any]) -> None:
    if cfg.get("loop", "uvloop") == "uvloop":
        import uvloop

        res = uvloop.run(_worker_main(cfg))
    else:
        res = asyncio.run(_worker_main(cfg))
    print("RESULT " + json.dumps(res))


# --------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------

ALL_CANDIDATES = ["sdk", "sdk_raw", "sdk_aiohttp", "httpx", "httpx2", "aiohttp", "floor"]
LABELS = {
    "sdk": "a. openai SDK, parsed (httpx2)",
    "sdk_raw": "b. openai SDK, raw response (httpx2)",
    "sdk_aiohttp": "c. openai SDK, parsed, DefaultAioHttpClient",
    "sdk_aiohttp_raw": "c'. openai SDK, raw, DefaultAioHttpClient",
    "httpx": "d. httpx.AsyncClient 0.28",
    "httpx2": "d'. httpx2.AsyncClient (SDK's stack)",
    "aiohttp": "e. aiohttp.ClientSession",
    "floor": "f. hand-written httptools floor",
}


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower()
        not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir")
    }
    env.update(extra or {})
    return env


def run_cell(cfg: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or _clean_env(),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker failed for {cfg}:\n{proc.stderr[-3000:]}")


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)


def versions() -> dict[str, str]:
    out = {}
    for d in [
        "openai",
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "aiohttp",
        "httptools",
        "uvloop",
        "orjson",
        "pydantic",
    ]:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"nproc={os.cpu_count()}, CPU={model}, Python {platform.python_version()} ({platform.platform()})"


def make_cert(d: str) -> bool:
    if not shutil.which("openssl"):
        return False
    r = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            os.path.join(d, "key.pem"),
            "-out",
            os.path.join(d, "cert.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        capture_output=True,
    )
    return r.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--server", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="main matrix at c=10/100 only, shorter cells")
    ap.add_argument(
        "--time-budget", type=float, default=150.0, help="seconds per repeat; cells after it are skipped"
    )
    ap.add_argument("--only", help="comma-separated candidates: " + ",".join(ALL_CANDIDATES))
    ap.add_argument("--burst", action="store_true", help="upstream sends each stream in one write")
    ap.add_argument("--no-extras", action="store_true", help="skip default-loop/trust_env/TLS/proxy rows")
    ap.add_argument("--repeat", type=int, default=1, help="run every cell N times, keep the lowest CPU/req")
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args()
    if args.worker:
        worker_entry(json.loads(args.worker))
        return
    if args.server:
        scfg = json.loads(args.server)
        _server_main(scfg["cert_dir"], scfg["burst"])
        return

    _QUIET_BUDGET[0] *= args.repeat
    target_s = 0.2 if args.quick else 0.5  # measured seconds per cell (request count sized from warm-up)
    cands = args.only.split(",") if args.only else ALL_CANDIDATES
    started = time.perf_counter()
    print(machine())
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(
        f"upstream: {'burst (one write per stream)' if args.burst else 'paced (one write per SSE event)'}; "
        f"{N_EVENTS} events/stream\n"
    )

    tmp = tempfile.mkdtemp(prefix="choice_http_client_")
    have_tls = make_cert(tmp)
    srv_cfg = {"cert_dir": tmp if have_tls else None, "burst": args.burst}
    srv = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--server", json.dumps(srv_cfg)],
        stdout=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )
    try:
        ports = json.loads(srv.stdout.readline())  # type: ignore[union-attr]
    except ValueError:
        srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit("canned upstream failed to start") from None
    base = f"http://127.0.0.1:{ports['plain']}"
    results: list[dict[str, Any]] = []

    hdr = (
        f"{'client':62} {'mode':9} {'conc':>4} {'n':>6} {'req/s':>8} {'CPU us/req':>10} {'us/event':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'cli %':>5} {'srv %':>5} {'oth %':>5} {'conns':>5} {'RSS MB':>6}"
    )

    def cell(
        label: str, cand: str, mode: str, conc: int, env: dict[str, str] | None = None, **extra: Any
    ) -> dict[str, Any] | None:
        if time.perf_counter() - started > args.time_budget * args.repeat:
            print(f"{label:62} {mode:9} {conc:>4}  skipped: --time-budget reached", flush=True)
            return None
        cfg = {
            "candidate": cand,
            "mode": mode,
            "concurrency": conc,
            "target_s": target_s,
            "base_url": base,
            "server_pid": ports["pid"],
            **extra,
        }
        key = "tls" if cfg["base_url"].startswith("https") else "plain"
        runs = []
        for _ in range(args.repeat):
            wait_quiet()
            before = server_stats(ports["plain"]).get(f"{key}_conns", 0)
            r = run_cell(cfg, env)
            # minus the /stats connection itself when counting plain connections
            r["conns"] = server_stats(ports["plain"]).get(f"{key}_conns", 0) - before - (key == "plain")
            runs.append(r)
        r = min(runs, key=lambda x: x["cpu_us_req"])  # least-disturbed repeat
        r["repeats"] = len(runs)
        r.update(
            label=label,
            candidate=cand,
            mode=mode,
            concurrency=conc,
            loop=extra.get("loop", "uvloop"),
            extra={k: v for k, v in extra.items() if k != "cafile"},
        )
        results.append(r)
        print(
            f"{label:62} {mode:9} {conc:>4} {r['requests']:>6} {r['rps']:>8,.0f} {r['cpu_us_req']:>10,.1f} "
            f"{_fmt(r['cpu_us_event']):>8} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['client_core_pct']:>5.0f} {r['server_core_pct']:>5.0f} {r['other_core_pct']:>5.0f} "
            f"{r['conns']:>5} {r['maxrss_mb']:>6.0f}",
            flush=True,
        )
        return r

    try:
        print("== main matrix (uvloop, plain HTTP, pool sized 200, trust_env off) ==")
        print(hdr)
        for mode in ("nonstream", "stream"):
            for cand in cands:
                for conc in (10, 100) if args.quick else (1, 10, 100):
                    cell(LABELS[cand], cand, mode, conc)

        if not (args.no_extras or args.quick):
            print("\n== extras ==")
            print(hdr)
            # default asyncio loop vs uvloop for the library candidates we would actually pick
            for cand in [c for c in ("aiohttp", "httpx") if c in cands]:
                for mode in ("nonstream", "stream"):
                    cell(LABELS[cand] + " [asyncio loop]", cand, mode, 10, loop="asyncio")
            # pool contention: 100 concurrent requests through a pool of 20 connections
            for cand in [c for c in ("httpx", "httpx2", "aiohttp", "floor") if c in cands]:
                cell(LABELS[cand] + " [pool=20]", cand, "nonstream", 100, pool=20)
            # httpx 0.28 at concurrency 100 after a long (>= 4 s) warm-up: closer to its steady state
            if "httpx" in cands:
                cell(LABELS["httpx"] + " [warm-up >= 4 s]", "httpx", "nonstream", 100, min_warm_s=4.0)
            # trust_env=True with a corporate-style HTTPS_PROXY in the environment
            proxy_env = _clean_env({"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "localhost"})
            for cand in [c for c in ("httpx", "httpx2", "aiohttp") if c in cands]:
                cell(
                    LABELS[cand] + " [trust_env=True, HTTPS_PROXY set]",
                    cand,
                    "nonstream",
                    10,
                    env=proxy_env,
                    trust_env=True,
                )
            if "aiohttp" in cands:
                cell(
                    LABELS["aiohttp"] + " [proxy resolved once]",
                    "aiohttp",
                    "nonstream",
                    10,
                    env=proxy_env,
                    proxy_once=True,
                )
            if "sdk_aiohttp" in cands:
                for mode in ("nonstream", "stream"):
                    cell(LABELS["sdk_aiohttp_raw"], "sdk_aiohttp_raw", mode, 10)
            # token pacing like a real model: 100 concurrent streams, 10 ms between events
            # (10,000 events/s into one client process); every event arrives on its own
            gap_base = base + "/gap10"
            for cand in [c for c in ("sdk", "httpx2", "aiohttp", "floor") if c in cands]:
                cell(
                    LABELS[cand] + " [10 ms/event]", cand, "stream", 100, base_url=gap_base, min_requests=200
                )
            if have_tls:
                tls_base = f"https://127.0.0.1:{ports['tls']}"
                cafile = os.path.join(tmp, "cert.pem")
                for cand in [c for c in ("aiohttp", "floor") if c in cands]:
                    cell(
                        LABELS[cand] + " [10 ms/event, TLS]",
                        cand,
                        "stream",
                        100,
                        base_url=tls_base + "/gap10",
                        cafile=cafile,
                        min_requests=200,
                    )
                for cand in [c for c in ("sdk", "httpx", "aiohttp", "floor") if c in cands]:
                    for mode in ("nonstream", "stream"):
                        cell(LABELS[cand] + " [TLS]", cand, mode, 10, base_url=tls_base, cafile=cafile)

                print("\n== HTTPS_PROXY support: https upstream via a loopback CONNECT proxy ==")
                penv = _clean_env({"HTTPS_PROXY": f"http://127.0.0.1:{ports['proxy']}"})
                checks = [
                    ("sdk", {}),
                    ("sdk_aiohttp", {}),
                    ("httpx", {"trust_env": True}),
                    ("httpx2", {"trust_env": True}),
                    ("aiohttp", {"trust_env": False}),
                    ("aiohttp", {"trust_env": True}),
                    ("aiohttp", {"proxy_once": True}),
                ]
                for cand, extra in checks:
                    if cand not in cands and not (cand == "sdk_aiohttp" and "sdk" in cands):
                        continue
                    if time.perf_counter() - started > args.time_budget * args.repeat:
                        print("  proxy checks skipped: --time-budget reached")
                        break
                    wait_quiet(2.0)
                    before = server_stats(ports["plain"]).get("proxy_connects", 0)
                    r = run_cell(
                        {
                            "candidate": cand,
                            "check_only": True,
                            "base_url": tls_base,
                            "cafile": cafile,
                            **extra,
                        },
                        penv,
                    )
                    used = server_stats(ports["plain"]).get("proxy_connects", 0) - before
                    desc = f"{LABELS[cand]} {extra or '(defaults)'}"
                    ok = "ok" if r["ok"] else r["error"]
                    print(f"  {desc:75} -> {ok}; CONNECTs through proxy: {used}")
                    results.append(
                        {"proxy_check": desc, "ok": r["ok"], "error": r.get("error"), "connects": used}
                    )
                print(f"  {LABELS['floor']:75} -> not supported (no proxy code)")
    finally:
        srv.terminate()
        srv.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)

    # summary: does the pool degrade from 10 to 100 concurrent requests?
    print("\n== concurrency 100 vs 10 (non-stream, uvloop) ==")
    for cand in cands:
        r10 = next(
            (
                r
                for r in results
                if r.get("candidate") == cand
                and r.get("mode") == "nonstream"
                and r.get("concurrency") == 10
                and not r["extra"]
            ),
            None,
        )
        r100 = next(
            (
                r
                for r in results
                if r.get("candidate") == cand
                and r.get("mode") == "nonstream"
                and r.get("concurrency") == 100
                and not r["extra"]
            ),
            None,
        )
        if r10 and r100:
            print(
                f"  {LABELS[cand]:46} req/s x{r100['rps'] / r10['rps']:.2f}   "
                f"CPU/req x{r100['cpu_us_req'] / r10['cpu_us_req']:.2f}"
            )
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": machine(), "versions": versions(), "burst": args.burst, "results": results},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
