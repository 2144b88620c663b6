"""A hostile OpenAI-compatible upstream for tests: a real aiohttp server on loopback, scripted per test.

Each path (``/v1/models``, ``/v1/chat/completions`` ...) answers with the :class:`Reply` scripted for it:
gzip bombs, bodies of any size written in pieces (generated, never held whole), model lists of any length,
streams whose events echo a key. The server counts, per request, the bytes it managed to write before the
client went away, so a test can assert that the proxy stopped reading.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from tests.servers import free_port

PIECE = 64 * 1024


def gzip_of_zeros(size: int, *, prefix: bytes = b"", fill: bytes = b" ") -> bytes:
    """A gzip stream that inflates to ``prefix`` then ``size`` bytes of ``fill`` (JSON whitespace by
    default): a few KB per MB, built without holding the inflated bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(prefix)]
    block = fill * (1 << 20)
    left = size
    while left > 0:
        piece = block if left >= len(block) else block[:left]
        out.append(compressor.compress(piece))
        left -= len(piece)
    out.append(compressor.flush())
    return b"".join(out)


def model_list(count: int, *, pad: int = 0) -> bytes:
    """An OpenAI ``/models`` body with ``count`` models (``pad`` extra bytes of description each)."""
    description = "x" * pad
    data = [
        {"id": f"model-{i:07d}", "object": "model", "created": 1700000000, "owned_by": "h", "d": description}
        for i in range(count)
    ]
    return orjson.dumps({"object": "list", "data": data})


def chat_answer(content: str = "hello") -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def sse(*events: bytes | dict[str, object]) -> list[bytes]:
    """SSE ``data:`` frames for the given events (dicts are JSON-encoded), one write each."""
    return [b"data: " + (e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n\n" for e in events]


def delta(content: str) -> dict[str, object]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }


@dataclass
class Reply:
    """One scripted answer: a status and headers, then ``body`` (or ``repeat`` bytes of ``filler`` after
    it, written in pieces), or ``chunks`` written one by one (a stream)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    repeat: int = 0
    filler: bytes = b" "
    chunks: list[bytes] | None = None
    at_once: bool = False  # head and body in one write (so a client usually reads them in one go)


@dataclass
class Served:
    """What one request got: its path and how many body bytes were written before the client left."""

    path: str
    written: int = 0
    finished: bool = False


class HostileUpstream:
    """The server, in a thread with its own event loop; ``script(path, reply)`` sets what a path answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.served: list[Served] = []
        self._replies: dict[str, Reply | Callable[[], Reply]] = {
            "/v1/models": Reply(body=model_list(3)),
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-upstream", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, path: str, reply: Reply | Callable[[], Reply]) -> None:
        self._replies[path] = reply

    def requests_to(self, path: str) -> list[Served]:
        return [s for s in self.served if s.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        served = Served(request.path)
        self.served.append(served)
        scripted = self._replies.get(request.path)
        if scripted is None:
            return web.json_response({"error": {"message": "no such path"}}, status=404)
        reply = scripted() if callable(scripted) else scripted
        if reply.at_once:
            served.written, served.finished = len(reply.body), True
            return web.Response(status=reply.status, headers=reply.headers, body=reply.body)
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        if reply.chunks is None and not reply.repeat:
            response.content_length = len(reply.body)
        await response.prepare(request)
        try:
            for piece in self._pieces(reply):
                await response.write(piece)
                served.written += len(piece)
            await response.write_eof()
            served.finished = True
        except (ConnectionError, OSError):
            pass
        return response

    @staticmethod
    def _pieces(reply: Reply) -> Iterator[bytes]:
        if reply.chunks is not None:
            yield from reply.chunks
            return
        for start in range(0, len(reply.body), PIECE):
            yield reply.body[start : start + PIECE]
        block = reply.filler * PIECE
        left = reply.repeat
        while left > 0:
            yield block[:left]
            left -= PIECE

    async def _start(self) -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> HostileUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
