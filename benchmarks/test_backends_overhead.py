"""Per-request overhead of several backends (issue 14): the whole app in-process, one backend against three.

Two in-process apps (benchmarks/_harness.py: the real middleware, resources, translation, metrics and logging,
with every backend's Upstream stubbed) take turns batch by batch: one configured as today (the implicit
backend of OPENAI_*), one with three backends in its catalog (three lists merged, prefixes, the route
recorded at resolve, the call sent along it). Each batch's CPU time is recorded and the medians compared.
The figures go to docs/performance.md ("Several backends").
"""

from __future__ import annotations

import _harness as h
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

TITLE = "several backends (in-process): CPU per request, one backend vs three"
BATCH = 20


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_three_backends_cost_what_one_does(
    benchmark: BenchmarkFixture, figures: dict[str, list[str]], results: dict[str, float], stream: bool
) -> None:
    apps = {"one backend": h.InProcessApp(), "three backends": h.InProcessApp(backends=3)}
    three = apps["three backends"].app.services
    assert len(three.backends) == 3
    apps["three backends"].run(stream, 1)  # the lists loaded
    names = {e.name for e in three.catalog._entries or []}
    assert {"gpt-4o:latest", "b2/gpt-4o:latest", "b3/gpt-4o:latest"} <= names
    medians = h.interleaved_cpu(benchmark, apps, stream, BATCH)
    kind = "stream" if stream else "non-stream"
    for name, us in medians.items():
        results[f"backends_{kind}_{name.split()[0]}"] = us
        benchmark.extra_info[f"cpu_us_{name.replace(' ', '_')}"] = round(us, 2)
        figures.setdefault(TITLE, []).append(f"{kind + ', ' + name:<40} {us:9.2f} µs CPU")
    diff = medians["three backends"] - medians["one backend"]
    figures.setdefault(TITLE, []).append(
        f"{'  three minus one, ' + kind:<40} {diff:+9.2f} µs = {100 * diff / medians['one backend']:+.1f} %"
    )
