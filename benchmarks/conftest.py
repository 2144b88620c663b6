"""The benchmark suite: ``pytest benchmarks/ --benchmark-only --benchmark-json=reports/benchmarks.json``.

* ``test_hot_paths.py``: the hot paths in-process (translation, SSE, bookkeeping, the whole ASGI app);
* ``test_e2e_overhead.py``: the same requests straight to the fake upstream and through the proxy under
  gunicorn, interleaved, so the proxy's overhead is a difference measured side by side;
* ``bench_sse.py``: the SSE decoder alone (collected here too, although its name is not ``test_*``).

Timing assertions are limited to what machine noise cannot break (the spec's 50 ms overhead budget); every
figure is printed at the end of the run and kept in the JSON report (``extra_info``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_FIGURES: dict[str, list[str]] = {}
_RESULTS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Create the directory of ``--benchmark-json`` (``reports/`` is not in the repository)."""
    target = config.getoption("benchmark_json", None)
    if target is not None:
        Path(target).parent.mkdir(parents=True, exist_ok=True)


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
