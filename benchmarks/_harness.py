"""Shared pieces of the benchmark suite and the overhead script (not a test module).

* realistic payloads: Ollama requests, OpenAI stream events and completions;
* an in-process driver for the ASGI app with a stub upstream (no sockets: the app's own CPU per request);
* servers as processes: the bundled fake upstream and the proxy under ``gunicorn -c gunicorn.conf.py``;
* a blocking keep-alive HTTP/1.1 client for sequential, low-noise latency measurements;
* CPU time of other processes from ``/proc`` (``schedstat``: nanosecond resolution, all threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
CATALOG = REPO / "conf" / "models.toml"
MODEL = "llama3.2"  # an alias in conf/models.toml
UPSTREAM_MODEL = "gpt-4o-mini"  # what it resolves to
TOKENS = 50

# -- payloads ---------------------------------------------------------------------------------------------

_WORDS = [" The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]
_BASE = {
    "id": "chatcmpl-AZq3bW8pXk1T0fRj9Yc2Lm4NvE7sH",
    "object": "chat.completion.chunk",
    "created": 1732600000,
    "model": "gpt-4o-mini-2024-07-18",
    "service_tier": "default",
    "system_fingerprint": "fp_0705bf87c0",
}


def ollama_chat(stream: bool, *, messages: int = 2) -> dict[str, Any]:
    """A typical /api/chat body: a system prompt, a user turn (and more history when asked), options."""
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(messages - 1):
        role = "user" if i % 2 == 0 else "assistant"
        history.append({"role": role, "content": f"Message {i}: tell me about the quick brown fox."})
    return {
        "model": MODEL,
        "messages": history,
        "stream": stream,
        "options": {"temperature": 0.7, "num_predict": 256},
        "keep_alive": "5m",
    }


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {**_BASE, "choices": [choice], "usage": None}


def stream_events(tokens: int = TOKENS) -> list[bytes]:
    """One OpenAI stream as the upstream frames it (``include_usage``), one ``data: ...\\n\\n`` per event:
    a role chunk, ``tokens`` content chunks, a finish chunk, a usage chunk and ``[DONE]``."""
    bodies: list[object] = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    bodies += [_chunk({"content": _WORDS[i % len(_WORDS)]}) for i in range(tokens)]
    bodies.append(_chunk({}, "stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
    bodies.append({**_BASE, "choices": [], "usage": usage})
    payloads = [orjson.dumps(body) for body in bodies] + [b"[DONE]"]
    return [b"data: " + p + b"\n\n" for p in payloads]


def completion(tokens: int) -> bytes:
    """A non-streamed OpenAI chat completion whose answer has about ``tokens`` tokens (~4 bytes each)."""
    content = "".join(_WORDS[i % len(_WORDS)] for i in range(tokens))
    body = {
        "id": "chatcmpl-AZq3bW8pXk1T0fRj9Yc2Lm4NvE7sH",
        "object": "chat.completion",
        "created": 1732600000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": tokens,
            "total_tokens": 12 + tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0705bf87c0",
    }
    return orjson.dumps(body)


def responses_answer(tokens: int) -> bytes:
    """The Responses API's whole answer (``POST /v1/responses``) for the answer :func:`completion` gives:
    the same text in one ``message`` output item, usage as ``input_tokens`` / ``output_tokens``."""
    content = "".join(_WORDS[i % len(_WORDS)] for i in range(tokens))
    return orjson.dumps({**_response(tokens, "completed"), "output": [_message_item(content)]})


def responses_events(tokens: int = TOKENS) -> list[bytes]:
    """The Responses stream of the same answer as :func:`stream_events`, as OpenAI frames it (``event:`` +
    ``data:`` blocks, ``sequence_number``, no ``[DONE]``): created, in_progress, the message item and its
    part opened, ``tokens`` ``response.output_text.delta`` events, the text, part and item done, completed."""
    words = [_WORDS[i % len(_WORDS)] for i in range(tokens)]
    item = {"id": "msg_bench", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    at = {"output_index": 0, "item_id": "msg_bench"}
    bodies: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(0, "in_progress")},
        {"type": "response.in_progress", "response": _response(0, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **at, "content_index": 0, "part": part},
    ]
    bodies += [
        {"type": "response.output_text.delta", **at, "content_index": 0, "delta": w, "logprobs": []}
        for w in words
    ]
    text = "".join(words)
    bodies += [
        {"type": "response.output_text.done", **at, "content_index": 0, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "content_index": 0, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": _message_item(text)},
        {
            "type": "response.completed",
            "response": {**_response(tokens, "completed"), "output": [_message_item(text)]},
        },
    ]
    framed = []
    for n, body in enumerate(bodies):
        data = orjson.dumps({**body, "sequence_number": n})
        framed.append(b"event: " + body["type"].encode() + b"\ndata: " + data + b"\n\n")
    return framed


def _response(tokens: int, status: str) -> dict[str, Any]:
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 + tokens,
    }
    return {
        "id": "resp_bench",
        "object": "response",
        "created_at": 1732600000,
        "status": status,
        "model": "gpt-4o-mini-2024-07-18",
        "output": [],
        "usage": usage if status == "completed" else None,
    }


def _message_item(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": "msg_bench",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def embeddings_answer(inputs: int, dims: int, encoding: str = "float") -> bytes:
    """An OpenAI /v1/embeddings answer: ``inputs`` float32 vectors of ``dims`` (a little off unit length, so
    that normalization runs), as JSON numbers (``float``) or little-endian base64 (``base64``)."""
    import base64
    import random
    from array import array

    rng = random.Random(inputs * 7919 + dims)
    items = []
    for index in range(inputs):
        vector = array("f", [rng.gauss(0.0, 1.0) for _ in range(dims)])
        scale = 1.01 * sum(x * x for x in vector) ** 0.5
        vector = array("f", [x / scale for x in vector])
        as_text = encoding == "base64"
        embedding: object = base64.b64encode(vector.tobytes()).decode() if as_text else list(vector)
        items.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": inputs * 4, "total_tokens": inputs * 4}
    return orjson.dumps({"object": "list", "data": items, "model": "text-embedding-3-small", "usage": usage})


def settings(base_url: str = "http://127.0.0.1:9/v1", **overrides: Any) -> Any:
    from falcon_ollama.catalog_config import load_catalog_file
    from falcon_ollama.settings import Settings

    base = Settings(
        openai_base_url=base_url,
        openai_base_url_set=True,
        openai_api_key="sk-bench-0123456789",
        catalog=load_catalog_file(CATALOG),
        catalog_path=str(CATALOG),
    )
    return dataclasses.replace(base, **overrides)


def several_backends(count: int) -> Any:
    """``settings()`` with ``count`` backends in the catalog: ``openai`` unprefixed, then ``b2/``, ``b3/``."""
    from falcon_ollama.backends import BackendConfig

    base = settings()
    others = (
        BackendConfig(f"b{n}", f"http://127.0.0.1:{8 + n}/v1", auth="none", prefix=f"b{n}/")
        for n in range(2, count + 1)
    )
    backends = (BackendConfig("openai", base.openai_base_url, base.openai_api_key), *others)
    return dataclasses.replace(base, catalog=dataclasses.replace(base.catalog, backends=backends))


def model_entry() -> Any:
    """The catalog entry ``MODEL`` resolves to (what the chat resource hands the translator)."""
    from falcon_ollama.catalog import ModelEntry

    facts = settings().catalog.facts_for(UPSTREAM_MODEL)
    return ModelEntry(f"{MODEL}:latest", UPSTREAM_MODEL, facts, None, alias_of=UPSTREAM_MODEL)


def upstream_body(stream: bool) -> bytes:
    """The exact upstream body the proxy sends for ``ollama_chat(stream)``: the direct path sends it too."""
    from falcon_ollama.translate.chat_request import ollama_to_openai

    plan = ollama_to_openai("chat", ollama_chat(stream), model_entry(), MODEL)
    return orjson.dumps(plan.body)


# -- in-process ASGI driver -------------------------------------------------------------------------------


class NoopMetric:
    """Stands in for every prometheus metric: ``labels()`` returns itself, updates do nothing."""

    def labels(self, *values: object) -> NoopMetric:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


def noop_metrics(metrics: Any) -> None:
    """Make every metric of a ``Metrics`` instance a no-op (the "without metrics" side of a comparison)."""
    for name, value in list(vars(metrics).items()):
        if hasattr(value, "labels") or hasattr(value, "inc"):
            setattr(metrics, name, NoopMetric())


@contextlib.contextmanager
def multiprocess_metrics() -> Iterator[None]:
    """Metrics created inside use prometheus_client's shared-file values, as under gunicorn."""
    from prometheus_client import values

    saved_class, saved_env = values.ValueClass, os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-prom-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        values.ValueClass = values.MultiProcessValue()
        try:
            yield
        finally:
            values.ValueClass = saved_class
            if saved_env is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_env


@contextlib.contextmanager
def production_logging() -> Iterator[None]:
    """JSON summary lines at INFO, formatted, redacted and written (to /dev/null), as a worker logs them
    (``logs.configure_logging``: the JSON formatter inside the redacting one, with the settings' keys)."""
    from falcon_ollama.logs import JsonFormatter, RedactingFormatter, lean_log_records
    from falcon_ollama.redaction import redactor_for

    lean_log_records()  # as configure_logging does (process-wide, like a worker's)

    logger = logging.getLogger("falcon_ollama")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(RedactingFormatter(JsonFormatter(), redactor_for(settings())))
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            yield
        finally:
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
            logger.handlers = saved[2]


class _StubStream:
    status = 200
    headers: dict[str, str] = {}

    def __init__(self, events: list[bytes]) -> None:
        self._events = events

    async def chunks(self) -> Any:
        for event in self._events:
            yield event

    async def aclose(self) -> None:
        pass


class InProcessApp:
    """The real app (middleware, resources, translation, metrics, logging) with the upstream replaced by a
    stub that answers at once: one request costs only what the app itself spends on it.

    ``backends``: how many backends the catalog declares (1: the implicit one of OPENAI_*; more: the first
    unprefixed, the others under ``b2/``, ``b3/``..., each listing the same models); every one is stubbed.
    ``dialect``: the implicit backend's (``responses``: it answers :func:`responses_answer` and
    :func:`responses_events`, the same text, translated back by the call path)."""

    def __init__(
        self,
        *,
        metrics: bool = True,
        tokens: int = TOKENS,
        embed_dims: int = 768,
        backends: int = 1,
        dialect: str = "chat",
    ) -> None:
        from falcon_ollama.app import create_app
        from falcon_ollama.upstream import UpstreamResponse

        made = several_backends(backends) if backends > 1 else settings(upstream_dialect=dialect)
        self.app = create_app(made)
        upstream: Any = self.app.services.upstream
        responses = dialect == "responses"
        answer = UpstreamResponse(200, {}, responses_answer(tokens) if responses else completion(tokens))
        events = responses_events(tokens) if responses else stream_events(tokens)

        from fake_openai import FakeConfig

        listing = orjson.dumps(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 1721172741, "owned_by": "system"}
                    for name in FakeConfig().models
                ],
            }
        )

        async def list_models() -> tuple[bytes, bool]:
            return listing, True

        embed_answers: dict[bytes, Any] = {}  # by request body: made once, in the encoding asked for

        async def post_json(path: str, body: bytes, **kwargs: Any) -> Any:
            if path != "embeddings":
                return answer
            if body not in embed_answers:
                sent = orjson.loads(body)
                made = embeddings_answer(len(sent["input"]), embed_dims, sent.get("encoding_format", "float"))
                embed_answers[body] = UpstreamResponse(200, {}, made)
            return embed_answers[body]

        async def open_stream(path: str, body: bytes, **kwargs: Any) -> Any:
            return _StubStream(events)

        for stubbed in self.app.services.backends:
            stubbed.list_models = list_models  # type: ignore[method-assign]
            stubbed.post_json = post_json  # type: ignore[method-assign]
            stubbed.open_stream = open_stream  # type: ignore[method-assign]
        if not metrics:
            # Every collaborator holds the same Metrics instance: emptying it turns metrics off everywhere.
            noop_metrics(upstream._metrics)
        self.loop = asyncio.new_event_loop()
        self.bodies = {s: orjson.dumps(ollama_chat(s)) for s in (False, True)}

    def close(self) -> None:
        self.loop.close()

    async def request(self, stream: bool) -> int:
        """One POST /api/chat through the ASGI app; returns the number of body bytes sent."""
        return await self.post("/api/chat", self.bodies[stream])

    async def post(self, path: str, body: bytes) -> int:
        """One POST through the ASGI app; returns the number of body bytes sent."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 11434),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "POST",
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:11434"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        sent = False
        never: asyncio.Future[None] = self.loop.create_future()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never  # the disconnect watcher waits here until it is stopped
            return {"type": "http.disconnect"}

        size = 0
        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal size, status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                size += len(message.get("body", b""))

        await self.app(scope, receive, send)
        if status != 200:
            raise AssertionError(f"status {status}")
        return size

    def run(self, stream: bool, count: int = 1) -> int:
        async def many() -> int:
            total = 0
            for _ in range(count):
                total += await self.request(stream)
            return total

        return self.loop.run_until_complete(many())

    def run_post(self, path: str, body: bytes, count: int = 1) -> int:
        async def many() -> int:
            total = 0
            for _ in range(count):
                total += await self.post(path, body)
            return total

        return self.loop.run_until_complete(many())


def interleaved_cpu(
    benchmark: Any, apps: dict[str, InProcessApp], stream: bool, batch: int = 20
) -> dict[str, float]:
    """Each app's median CPU µs per request: the apps take turns batch by batch (``batch`` requests each,
    after a warm batch) under ``benchmark.pedantic`` (120 rounds non-stream, 40 stream), the first three
    rounds left out. Closes the apps."""
    cpu: dict[str, list[float]] = {name: [] for name in apps}
    try:
        for app in apps.values():
            app.run(stream, batch)  # warm: every list loaded, code paths hot

        def pair() -> int:
            size = 0
            for name, app in apps.items():
                started = time.process_time()
                size += app.run(stream, batch)
                cpu[name].append((time.process_time() - started) / batch * 1e6)
            return size

        size = benchmark.pedantic(pair, rounds=40 if stream else 120, warmup_rounds=3)
        assert size > len(apps) * batch * (TOKENS * 60 if stream else 200)
    finally:
        for app in apps.values():
            app.close()
    return {name: statistics.median(values[3:] or values) for name, values in cpu.items()}


# -- processes --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def start_fake(
    port: int, *, tokens: int = TOKENS, token_delay_ms: float = 0.0, ttfb_ms: float = 0.0
) -> subprocess.Popen[bytes]:
    """The bundled fake upstream in benchmark mode (canned answers, nothing recorded, uvloop)."""
    cmd = [sys.executable, "-m", "fake_openai", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--canned", "--no-record", "--uvloop", "--tokens", str(tokens)]
    cmd += ["--token-delay-ms", str(token_delay_ms), "--ttfb-ms", str(ttfb_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc=proc)
    return proc


def proxy_env(port: int, upstream_port: int, workers: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        OPENAI_API_KEY="sk-bench-0123456789",
        WEB_CONCURRENCY=str(workers),
        FALCON_OLLAMA_CATALOG=str(CATALOG),
        FALCON_OLLAMA_ENV_FILE=os.devnull,
    )
    env.update(extra)
    return env


def start_gunicorn(
    port: int,
    upstream_port: int,
    workers: int,
    log_path: Path,
    *,
    config: str = "gunicorn.conf.py",
    **extra: str,
) -> subprocess.Popen[bytes]:
    """The proxy exactly as production starts it: ``gunicorn -c gunicorn.conf.py`` in the repo.

    Its logs (one JSON line per request) go to ``log_path``, as a container runtime would collect them."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", config],
            cwd=REPO,
            env=proxy_env(port, upstream_port, workers, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, proc=proc)
    deadline = time.monotonic() + 30
    while len(children(proc.pid)) < workers or not _ready(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"gunicorn did not start; see {log_path}")
        time.sleep(0.1)
    return proc


def _ready(port: int) -> bool:
    try:
        with RawClient(port) as client:
            status, _ = client.request(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cpu_ns(pids: list[int]) -> int:
    """CPU time (user + system, every thread) of ``pids`` so far, in nanoseconds."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total


def rss_kb(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, in KiB."""
    rss = hwm = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} x {model}, Linux {os.uname().release}, Python {sys.version.split()[0]}"


# -- a blocking keep-alive client --------------------------------------------------------------------------


def post(path: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    )


class RawClient:
    """One keep-alive HTTP/1.1 connection; just enough parsing for Content-Length and chunked answers.

    It costs a few microseconds per request, the same on every path, so a difference of two paths measured
    with it is the difference of the servers."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.last_size = 0  # bytes of the last answer, head included

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _more(self) -> None:
        data = self._sock.recv(262144)
        if not data:
            raise ConnectionError("connection closed by the server")
        self._buf += data

    def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request, read the whole answer: (status, body bytes as sent, chunk framing included)."""
        self._sock.sendall(raw)
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            self._more()
        head = self._buf[:end].lower()
        status = int(head[9:12])
        start = end + 4
        marker = b"content-length:"
        at = head.find(marker)
        if at >= 0:
            line_end = head.find(b"\r\n", at)
            length = int(head[at + len(marker) : line_end if line_end >= 0 else len(head)])
            while len(self._buf) < start + length:
                self._more()
            body, self._buf = self._buf[start : start + length], self._buf[start + length :]
            self.last_size = start + length
            return status, body
        # chunked: the answer ends with the zero-size chunk
        while (stop_at := self._buf.find(b"\r\n0\r\n\r\n", start - 2)) < 0:
            self._more()
        body, self._buf = self._buf[start : stop_at + 7], self._buf[stop_at + 7 :]
        self.last_size = stop_at + 7
        return status, body
