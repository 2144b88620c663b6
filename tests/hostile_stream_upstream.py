"""A hostile or sloppy streaming upstream on loopback, scripted per test, with control of every TCP write.

The bundled fake upstream writes well-formed streams; the faults here need exact framing (a delta and an
error event in one write, content after ``[DONE]``, a connection held open after it, endless fragments),
so this server speaks raw HTTP/1.1 over asyncio: the request head and body are read, ``GET /v1/models``
is answered with a fixed list, and every ``POST`` is handed to the test's script, which writes the
answer's body as chunked-encoding pieces, one ``write`` (and drain) per piece. It records what it saw:
request paths and bodies, how many pieces it wrote, and whether and when the proxy closed the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from tests.servers import free_port

MODEL = {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "x"}
MODELS = orjson.dumps({"object": "list", "data": [MODEL]})


def delta(content: str, *, finish: str | None = None) -> bytes:
    """One chat.completion.chunk content event, as OpenAI writes it."""
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    event = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [choice]}
    return b"data: " + orjson.dumps(event) + b"\n\n"


def finish_event(reason: str = "stop") -> bytes:
    return delta("", finish=reason)


def tool_fragment(arguments: str, *, index: int = 0, name: str | None = None) -> bytes:
    """One streamed tool-call fragment (the name only in the first, as OpenAI does)."""
    function: dict[str, str] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    call = {"index": index, "id": f"call_{index}", "type": "function", "function": function}
    choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
    return b"data: " + orjson.dumps({"id": "c1", "model": "gpt-4o", "choices": [choice]}) + b"\n\n"


def error_event(message: str) -> bytes:
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "server_error"}}) + b"\n\n"


DONE = b"data: [DONE]\n\n"


class Answer:
    """The script's handle on one answer: write body pieces, end the body, or hold the connection."""

    def __init__(self, writer: asyncio.StreamWriter, record: Exchange) -> None:
        self._writer = writer
        self._record = record

    @property
    def closed(self) -> bool:
        """Whether the proxy has closed this answer's connection."""
        return self._record.closed.is_set()

    async def start(self, content_type: str = "text/event-stream") -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
        await self._write(head.encode())

    async def send(self, piece: bytes) -> None:
        """One chunked-encoding piece in one write: the proxy's read sees these bytes together."""
        await self._write(b"%x\r\n%b\r\n" % (len(piece), piece))
        self._record.pieces += 1

    async def end(self) -> None:
        await self._write(b"0\r\n\r\n")

    async def hold(self, seconds: float) -> None:
        """Keep the connection open without writing; returns early when the proxy closes it."""
        reader_gone = self._record.closed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader_gone.wait(), seconds)

    async def _write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError:
            self._record.mark_closed()  # the proxy reset the connection while we wrote
            raise


Script = Callable[[Answer, dict[str, object]], Awaitable[None]]


@dataclass
class Exchange:
    """One POST the server answered."""

    path: str
    body: dict[str, object]
    pieces: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_at: float | None = None  # time.monotonic() when the proxy closed the connection

    def mark_closed(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        self.closed.set()


class HostileStreamUpstream:
    """The server in a background thread; ``script`` answers every POST (set it before each request)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.script: Script | None = None
        self.exchanges: list[Exchange] = []
        self.connections = 0  # TCP connections accepted: a kept-alive connection serves several requests
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-stream", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> HostileStreamUpstream:
        self._thread.start()
        start = asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def wait_closed(self, exchange: Exchange, timeout: float) -> bool:
        """Whether the proxy closed that exchange's connection within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if exchange.closed_at is not None:
                return True
            time.sleep(0.02)
        return exchange.closed_at is not None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()  # bytes read but not yet parsed (the close watcher may read the next request)
        self.connections += 1
        try:
            while True:
                head = await _read_until(reader, buffer, b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                fields = (line.partition(":") for line in header_lines if line)
                headers = {name.strip().lower(): value.strip() for name, _, value in fields}
                body = await _read_exactly(reader, buffer, int(headers.get("content-length", "0")))
                if method == "GET" and path.endswith("/models"):
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    writer.write(head % len(MODELS) + MODELS)
                    await writer.drain()
                    continue
                exchange = Exchange(path, orjson.loads(body) if body else {})
                self.exchanges.append(exchange)
                watch = asyncio.get_running_loop().create_task(_watch_close(reader, buffer, exchange))
                try:
                    assert self.script is not None, "no script set for this request"
                    await self.script(Answer(writer, exchange), exchange.body)
                finally:
                    watch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watch  # its pending read must be over before the next request is read
                if exchange.closed.is_set():
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()


async def _read_more(reader: asyncio.StreamReader, buffer: bytearray) -> None:
    data = await reader.read(65536)
    if not data:
        raise asyncio.IncompleteReadError(bytes(buffer), None)
    buffer += data


async def _read_until(reader: asyncio.StreamReader, buffer: bytearray, separator: bytes) -> bytes:
    while (end := buffer.find(separator)) < 0:
        await _read_more(reader, buffer)
    head = bytes(buffer[:end])
    del buffer[: end + len(separator)]
    return head


async def _read_exactly(reader: asyncio.StreamReader, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        await _read_more(reader, buffer)
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


async def _watch_close(reader: asyncio.StreamReader, buffer: bytearray, exchange: Exchange) -> None:
    """EOF (or a reset) while the script writes means the proxy closed the connection; bytes read meanwhile
    (the next request on a kept-alive connection) go to the buffer for the request parser."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            buffer += data
    exchange.mark_closed()
