"""The benchmark suite: ``pytest benchmarks/ --benchmark-only --benchmark-json=reports/benchmarks.json``.

* ``test_hot_paths.py``: the hot paths in-process (translation, SSE, bookkeeping, the whole ASGI app);
* ``test_e2e_overhead.py``: the same requests straight to the fake upstream and through the proxy under
  gunicorn, interleaved, so the proxy's overhead is a difference measured side by side;
* ``bench_sse.py``: the SSE decoder alone (collected here too, although its name is not ``test_*``).

Timing assertions are limited to what machine noise cannot break (the spec's 50 ms overhead budget); every
figure is printed at the end of the run and kept in the JSON report (``extra_info``). Beside that report,
``bench-figures.json`` holds the figures and the CPU time of a fixed reference workload measured at the start
and the end of the same run: ``scripts/bench_baseline.py check`` compares their ratios with the baseline.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import orjson
import pytest

_FIGURES: dict[str, list[str]] = {}
_RESULTS: dict[str, float] = {}
_REFERENCE: list[float] = []


def _reference_samples(count: int = 15) -> list[float]:
    """CPU µs of a fixed piece of work like ours (orjson in and out, dicts, strings), ``count`` times.

    It moves with the machine (CPU model, frequency, load on shared caches) as our figures do, and never
    with our code: figure / reference cancels the machine out of a comparison between two runs."""
    import _harness as h

    answer = h.completion(400)
    events = [event[6:-2] for event in h.stream_events(50)[:-1]]
    samples = []
    for _ in range(count):
        started = time.process_time()
        for _ in range(40):
            doc = orjson.loads(answer)
            doc["choices"][0]["message"]["content"] = doc["choices"][0]["message"]["content"].strip()
            orjson.dumps(doc)
            for event in events:
                choices = orjson.loads(event)["choices"]
                content = choices and choices[0]["delta"].get("content")
                orjson.dumps({"model": "m", "message": {"content": content}})
        samples.append((time.process_time() - started) * 1e6)
    return samples


def pytest_configure(config: pytest.Config) -> None:
    """Create the directory of ``--benchmark-json`` (``reports/`` is not in the repository)."""
    target = config.getoption("benchmark_json", None)
    if target is not None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("benchmark_json", None) is not None:
        _REFERENCE.extend(_reference_samples())


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write ``bench-figures.json`` beside the JSON report: this run's figures and reference CPU time."""
    target = session.config.getoption("benchmark_json", None)
    if target is None or not _RESULTS or not _REFERENCE:
        return
    import _harness as h

    _REFERENCE.extend(_reference_samples())
    record = {
        "reference_us": round(statistics.median(_REFERENCE), 1),
        "reference_spread_us": [round(min(_REFERENCE), 1), round(max(_REFERENCE), 1)],
        "machine": h.machine(),
        "load_average": os.getloadavg(),
        "figures": {key: round(value, 3) for key, value in _RESULTS.items()},
    }
    (Path(target).parent / "bench-figures.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Collect ``bench_*.py`` as test modules, unless named on the command line (pytest does that)."""
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
        return module
    return None


@pytest.fixture(scope="session")
def figures() -> dict[str, list[str]]:
    """Lines to print after the run, by section title: ``figures.setdefault(title, []).append(line)``."""
    return _FIGURES


@pytest.fixture(scope="session")
def results() -> dict[str, float]:
    """Figures one module measures and another uses (e.g. the proxy's CPU per request, end to end)."""
    return _RESULTS


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in _FIGURES.items():
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)
