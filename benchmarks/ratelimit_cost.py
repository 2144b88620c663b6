"""What one requests-per-minute check costs in the embedded store (issue 15): CPU and wall time per check.

One process, a SQLite window on /dev/shm (as the proxy uses), a fixed number of checks per case: a limit of 60
(the window fills, then every check is a refused count) and of 1000 (every check inserts, the window holds up
to 1000 rows); then 4 processes at once on one file and one tenant (lock contention, as 4 busy workers), each
reporting its slowest check. Bounded: 2000 checks per case and process. Figures in docs/performance.md.

    .venv/bin/python benchmarks/ratelimit_cost.py
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

from falcon_ollama.ratelimit import RequestWindow

CHECKS = 2000


def _contender(path: str, out: multiprocessing.Queue[tuple[float, float]]) -> None:
    window = RequestWindow(Path(path))
    worst, start = 0.0, time.perf_counter()
    for _ in range(CHECKS):
        t0 = time.perf_counter()
        window.acquire("shared", 1000)
        worst = max(worst, time.perf_counter() - t0)
    out.put(((time.perf_counter() - start) / CHECKS, worst))
    window.close()


def contention(base: Path, processes: int = 4) -> None:
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[tuple[float, float]] = ctx.Queue()
    procs = [
        ctx.Process(target=_contender, args=(str(base / "shared.sqlite"), out)) for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    mean, slowest = sum(r[0] for r in results) / len(results), max(r[1] for r in results)
    print(
        f"{processes} processes contending: {mean * 1e6:.0f} µs wall a check, slowest {slowest * 1e3:.1f} ms"
    )


def main() -> None:
    base = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        window = RequestWindow(base / "bench.sqlite")
        for limit in (60, 1000):
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            for _ in range(CHECKS):
                window.acquire(f"tenant-{limit}", limit)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            per_wall, per_cpu = wall / CHECKS * 1e6, cpu / CHECKS * 1e6
            print(f"limit {limit:>4}: {CHECKS} checks, {per_wall:.0f} µs wall, {per_cpu:.0f} µs CPU each")
        window.close()
        contention(base)
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
