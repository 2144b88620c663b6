"""The /api/embed path in-process: the upstream answer -> the Ollama answer, and the whole ASGI app.

* the translation alone (``parse_embeddings_response``: parse, check, L2-normalize, serialize) for an answer
  of JSON numbers and of base64 float32, 16 inputs x 768 dimensions (nomic-embed-text) and 100 x 3,072
  (text-embedding-3-large);
* POST /api/embed through the whole app (middleware, resource, translation, metrics, logging), the upstream
  stubbed in memory and answering in the encoding the app asked for: CPU time per request (``process_time``).

Figures per request, per input and per dimension (per float) are printed at the end and kept in the JSON
report; the only assertions are on outputs.
"""

from __future__ import annotations

import math
import statistics
import time

import _harness as h
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from falcon_ollama.translate.embed import parse_embeddings_response

TITLE = "/api/embed (in-process): median per request"
SHAPES = [(16, 768), (100, 3072)]


def _line(label: str, us: float, inputs: int, dims: int) -> str:
    per_float_ns = us * 1000 / (inputs * dims)
    return f"{label:<52} {us:9.1f} µs  {us / inputs:7.2f} µs/input  {per_float_ns:5.1f} ns/float"


@pytest.mark.parametrize("encoding", ["float", "base64"])
@pytest.mark.parametrize(("inputs", "dims"), SHAPES, ids=[f"{n}x{d}" for n, d in SHAPES])
def test_embed_translation(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    inputs: int,
    dims: int,
    encoding: str,
) -> None:
    payload = h.embeddings_answer(inputs, dims, encoding)
    cpu: list[float] = []

    def translate() -> bytes:
        started = time.process_time()
        out = parse_embeddings_response(payload, inputs, normalize=True)[0]
        cpu.append((time.process_time() - started) * 1e6)
        return out

    vectors = orjson.loads(benchmark.pedantic(translate, rounds=60 if inputs <= 16 else 8, warmup_rounds=2))
    assert len(vectors) == inputs and all(len(v) == dims for v in vectors)
    assert all(abs(math.hypot(*v) - 1.0) < 1e-9 for v in vectors[:3])
    us = statistics.median(cpu[2:] or cpu)  # CPU time: what other processes take does not count
    results[f"embed_translate_{inputs}x{dims}_{encoding}"] = us
    benchmark.extra_info.update(us_per_request=round(us, 1), us_per_input=round(us / inputs, 2))
    label = f"translate {inputs} x {dims}, upstream {encoding} ({len(payload) // 1024} KiB)"
    figures.setdefault(TITLE, []).append(_line(label, us, inputs, dims) + " CPU")


@pytest.mark.parametrize(("inputs", "dims"), SHAPES, ids=[f"{n}x{d}" for n, d in SHAPES])
def test_embed_app_in_process(
    benchmark: BenchmarkFixture,
    figures: dict[str, list[str]],
    results: dict[str, float],
    inputs: int,
    dims: int,
) -> None:
    """POST /api/embed through the whole app; the CPU time of each call, median over the rounds."""
    app = h.InProcessApp(embed_dims=dims)
    body = orjson.dumps({"model": "nomic-embed-text", "input": [f"text number {i}" for i in range(inputs)]})
    batch = 10 if inputs <= 16 else 1
    cpu: list[float] = []
    try:
        size = app.run_post("/api/embed", body)  # warm: catalog loaded, answers made, code paths hot

        def some() -> int:
            started = time.process_time()
            sent = app.run_post("/api/embed", body, batch)
            cpu.append((time.process_time() - started) / batch * 1e6)
            return sent

        benchmark.pedantic(some, rounds=30 if inputs <= 16 else 10, warmup_rounds=2)
    finally:
        app.close()
    assert size > inputs * dims * 8  # every float written, ~18 characters each
    us = statistics.median(cpu[2:] or cpu)
    results[f"embed_app_{inputs}x{dims}"] = us
    benchmark.extra_info.update(cpu_us_per_request=round(us, 1), cpu_us_per_input=round(us / inputs, 2))
    label = f"whole app, {inputs} x {dims} ({size // 1024} KiB answer)"
    figures.setdefault(TITLE, []).append(_line(label, us, inputs, dims) + " CPU")
