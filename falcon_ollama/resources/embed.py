"""``POST /api/embed`` and ``POST /api/embeddings`` (legacy).

Large inputs are split into batches within the upstream's caps and sent concurrently (bounded), then put
back in input order; one failed batch fails the request (the others are cancelled). The number of inputs
is capped (each is a vector in the answer), and each batch's vectors are serialized as soon as they are
checked, so the floats of one batch at most are alive at a time and the answer is sent from those bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import falcon
import falcon.asgi
import orjson

from falcon_ollama.catalog import Catalog, ModelEntry
from falcon_ollama.durations import DurationError, parse_keep_alive
from falcon_ollama.errors import OllamaError, ProxyError, embed_model_not_found, model_not_found
from falcon_ollama.limits import Limits
from falcon_ollama.ollama_types import EmbeddingsResponse, EmbedResponse
from falcon_ollama.requestlog import RequestInfo, info_of, note_model
from falcon_ollama.resources.common import model_field, read_json_object, read_model_body, send_json
from falcon_ollama.resources.upstream_call import ClientDisconnected, Session, UpstreamCall
from falcon_ollama.running import RunningModels
from falcon_ollama.translate.embed import (
    Batch,
    embeddings_request,
    is_encoding_refusal,
    make_batches,
    parse_dimensions,
    parse_embed_input,
    parse_embeddings_response,
    parse_truncate,
    truncate_inputs,
)
from falcon_ollama.upstream import UpstreamError, UpstreamResponse
from falcon_ollama.wire import JSON_CONTENT_TYPE

CONTEXT_EXCEEDED = "the input length exceeds the context length"


@dataclass(frozen=True, slots=True)
class EmbedDeps:
    catalog: Catalog
    running: RunningModels
    call: UpstreamCall
    limits: Limits
    keep_alive_default: float
    batch_size: int
    batch_tokens: int
    concurrency: int
    # Upstream models that refused base64 answers: asked for numbers from then on (both routes share it).
    numbers_only: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Job:
    """One embeddings request's upstream call: what every batch of it shares."""

    session: Session
    entry: ModelEntry
    requested: str  # the model name as the client sent it
    dimensions: int | None
    truncate: bool


class _Embedder:
    def __init__(self, deps: EmbedDeps) -> None:
        self._deps = deps

    def _keep_alive(self, raw: object) -> float:
        if raw is None:
            return self._deps.keep_alive_default
        try:
            return parse_keep_alive(raw)
        except DurationError as exc:
            raise OllamaError(400, str(exc)) from None

    async def _post_embeddings(self, job: _Job, inputs: list[str]) -> UpstreamResponse:
        """Ask for base64 float32 (a quarter of the bytes, nothing to parse); an upstream that refuses it is
        asked again for numbers, and from then on for that model."""
        session, upstream_id, requested = job.session, job.entry.upstream_id, job.requested
        if upstream_id not in self._deps.numbers_only:
            body = embeddings_request(upstream_id, inputs, "base64")
            try:
                return await session.post("embeddings", body, model=requested)
            except UpstreamError as exc:
                if not is_encoding_refusal(exc.status, exc.message):
                    raise
            self._deps.numbers_only.add(upstream_id)
        body = embeddings_request(upstream_id, inputs, "float")
        return await session.post("embeddings", body, model=requested)

    async def _embed_batch(
        self, job: _Job, inputs: list[str], *, normalize: bool
    ) -> tuple[bytes, int | None]:
        """The vectors as one JSON array (serialized once, by ``parse_embeddings_response``), the tokens."""
        try:
            answer = await self._post_embeddings(job, inputs)
        except UpstreamError as exc:
            if exc.kind != "context_length":
                raise
            if not job.truncate:
                raise OllamaError(400, CONTEXT_EXCEEDED) from None
            # Our character-based cut was not enough for this text: cut at one character per token.
            shorter = truncate_inputs(inputs, job.entry.facts.context_length, 1)
            answer = await self._post_embeddings(job, shorter)
        return parse_embeddings_response(
            answer.body, len(inputs), normalize=normalize, dimensions=job.dimensions
        )

    async def _embed_all(self, job: _Job, inputs: list[str]) -> tuple[list[bytes], int]:
        """Each batch's normalized vectors as a JSON array (bytes, in input order) and the token count."""
        batches = make_batches(inputs, self._deps.batch_size, self._deps.batch_tokens)
        limit = asyncio.Semaphore(self._deps.concurrency)

        async def run(batch: Batch) -> tuple[bytes, int | None]:
            async with limit:
                return await self._embed_batch(job, batch.inputs, normalize=True)

        if len(batches) == 1:
            part, tokens = await run(batches[0])
            return [part], tokens if tokens is not None else _estimate_tokens(inputs)
        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the other batches
                tasks = [group.create_task(run(batch)) for batch in batches]
        except* (OllamaError, ProxyError) as failed:
            raise failed.exceptions[0] from None
        results = [task.result() for task in tasks]
        del tasks
        counted = [tokens for _, tokens in results]
        total = sum(t for t in counted if t is not None)
        if any(t is None for t in counted):
            total = _estimate_tokens(inputs)
        return [part for part, _ in results], total


async def _resolve(catalog: Catalog, name: str) -> ModelEntry:
    """The catalog's entry, or Ollama's embed wording for an unknown model (``try pulling it first``)."""
    try:
        return await catalog.resolve(name)
    except OllamaError as exc:
        if exc.status == 404:
            raise embed_model_not_found(name) from None
        raise


def _estimate_tokens(inputs: list[str]) -> int:
    return sum(len(text) + 3 for text in inputs) // 4


class EmbedResource(_Embedder):
    """``POST /api/embed``: one L2-normalized vector per input, in input order."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        started = time.monotonic_ns()
        body = await read_json_object(req, self._deps.limits)
        name = model_field(body)
        if not name:
            raise model_not_found(name)
        inputs = parse_embed_input(body.get("input"))
        limits = self._deps.limits
        if len(inputs) > limits.max_embed_inputs:
            limit = limits.max_embed_inputs
            raise OllamaError(
                413, f"too many inputs (limit {limit} per request): send them in several requests"
            )
        if sum(len(text) for text in inputs) > limits.max_text_chars:
            raise OllamaError(413, f"'input' is too long (limit {limits.max_text_chars} characters in all)")
        truncate = parse_truncate(body.get("truncate"))
        dimensions = parse_dimensions(body.get("dimensions"))
        keep_alive = self._keep_alive(body.get("keep_alive"))
        entry = await _resolve(self._deps.catalog, name)
        note_model(req, entry)
        self._deps.running.touch(entry, keep_alive)
        if not inputs:
            empty: EmbedResponse = {"model": name, "embeddings": []}
            send_json(resp, empty)
            return
        if truncate:
            inputs = truncate_inputs(inputs, entry.facts.context_length, 3)
        try:
            async with self._deps.call.session(req) as session:
                job = _Job(session, entry, name, dimensions, truncate)
                parts, tokens = await self._embed_all(job, inputs)
        except ClientDisconnected:
            resp.status = 499
            return
        head = b'{"model":' + orjson.dumps(name) + b',"embeddings":'
        tail = b',"total_duration":%d,"prompt_eval_count":%d}' % (time.monotonic_ns() - started, tokens)
        resp.status = falcon.HTTP_200
        resp.content_type = JSON_CONTENT_TYPE
        # The parts' arrays joined into one: each loses its brackets but for the first's "[" and the
        # last's "]", and gains a comma between two.
        resp.content_length = len(head) + len(tail) + sum(len(part) for part in parts) - len(parts) + 1
        resp.stream = _answer(head, parts, tail, info_of(req))


async def _answer(
    head: bytes, parts: list[bytes], tail: bytes, info: RequestInfo | None
) -> AsyncIterator[bytes]:
    """``head``, the batches' arrays joined into one, ``tail``; each part is dropped once sent. As with the
    relay's streams, the summary line and the metrics are written after the last byte.

    One batch (the common case) is its own array: sent as it is, not copied."""
    try:
        if len(parts) == 1:
            yield head
            yield parts.pop()
            yield tail
        else:
            yield head + b"["
            for index, part in enumerate(parts):
                parts[index] = b""
                yield (b"," if index else b"") + part[1:-1]
                del part
            yield b"]" + tail
    finally:
        if info is not None:
            info.finish()


class EmbeddingsResource(_Embedder):
    """``POST /api/embeddings`` (legacy, ``ollama.Client.embeddings``): one prompt, one raw vector."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body, name = await read_model_body(req, self._deps.limits)
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise OllamaError(400, "invalid value for 'prompt': expected a string")
        keep_alive = self._keep_alive(body.get("keep_alive"))
        entry = await _resolve(self._deps.catalog, name)
        note_model(req, entry)
        self._deps.running.touch(entry, keep_alive)
        if not prompt:
            empty: EmbeddingsResponse = {"embedding": []}
            send_json(resp, empty)
            return
        text = truncate_inputs([prompt], entry.facts.context_length, 3)
        try:
            async with self._deps.call.session(req) as session:
                job = _Job(session, entry, name, None, True)
                vectors, _ = await self._embed_batch(job, text, normalize=False)
        except ClientDisconnected:
            resp.status = 499
            return
        resp.status = falcon.HTTP_200
        resp.content_type = JSON_CONTENT_TYPE
        resp.data = b'{"embedding":' + vectors[1:-1] + b"}"  # the one vector of the array, as serialized
