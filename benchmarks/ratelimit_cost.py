"""What one requests-per-minute check costs in the embedded store (issue 15): CPU and wall time per check.

One process, a SQLite window on /dev/shm (as the proxy uses), a fixed number of checks per case: a limit of 60
(the window fills, then every check is a refused count) and of 1000 (every check inserts, the window holds up
to 1000 rows). Bounded: 2000 checks per case. Figures in docs/performance.md.

    .venv/bin/python benchmarks/ratelimit_cost.py
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from pathlib import Path

from falcon_ollama.ratelimit import RequestWindow

CHECKS = 2000


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
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
