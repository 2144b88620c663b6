#!/usr/bin/env python3
"""Catch CPU regressions between landed runs: ``check`` (CI) or ``update`` (deliberately) the baseline.

``pytest benchmarks/ --benchmark-only --benchmark-json=reports/benchmarks.json`` also writes
``reports/bench-figures.json``: this run's CPU per request and per token, and the CPU time of a fixed
in-process reference workload measured in the same job. Each figure is compared as a ratio to that
reference, so a slower or busier machine cancels out; a figure fails when its ratio exceeds the baseline's
(``benchmarks/baseline.json``, the previous landed run's) by more than ``--threshold`` (1.5x): a clear
regression, not noise (run to run, the ratios of the gated figures move by about 10-25 % on a shared
machine). A figure missing from either side is reported, never a failure.

    python scripts/bench_baseline.py check            # after the benchmarks; exit 1 on a regression
    python scripts/bench_baseline.py update           # write this run's ratios as the new baseline
    python scripts/bench_baseline.py update --figures a.json --figures b.json   # the mean of several runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "reports" / "bench-figures.json"
BASELINE = REPO / "benchmarks" / "baseline.json"
THRESHOLD = 1.5

# CPU time figures (process_time or /proc schedstat), not wall-clock ones: these are what a regression
# in our code moves and machine load moves least. Keys are those of the benchmarks' ``results``.
GATED = {
    "app_non-stream_metrics": "whole app in-process, non-stream chat, CPU per request",
    "app_stream_metrics": "whole app in-process, 50-token stream, CPU per request (per token x 50)",
    "e2e_cpu_non-stream": "gunicorn worker, non-stream chat, CPU per request",
    "e2e_cpu_stream": "gunicorn worker, 50-token stream, CPU per request (per token x 50)",
    "embed_app_16x768": "whole app in-process, /api/embed 16 x 768, CPU per request",
    "embed_app_100x3072": "whole app in-process, /api/embed 100 x 3,072, CPU per request",
}


def ratios(run: dict[str, object]) -> dict[str, float]:
    """Each gated figure of a run divided by the run's reference CPU time."""
    reference = float(run["reference_us"])  # type: ignore[arg-type]
    figures = run["figures"]
    assert isinstance(figures, dict)
    return {key: float(figures[key]) / reference for key in GATED if key in figures}


def compare(
    baseline: dict[str, float], current: dict[str, float], threshold: float = THRESHOLD
) -> tuple[list[str], list[str]]:
    """(report lines, regressions): a regression is a ratio above ``threshold`` x the baseline's."""
    lines, regressions = [], []
    for key, label in GATED.items():
        if key not in current or key not in baseline:
            where = "this run" if key not in current else "the baseline"
            lines.append(f"  {key:<24} not measured in {where}")
            continue
        change = current[key] / baseline[key]
        verdict = "REGRESSION" if change > threshold else "ok"
        figures = f"{baseline[key]:8.3f} -> {current[key]:8.3f}  x{change:5.2f}"
        lines.append(f"  {key:<24} {figures}  {verdict}  {label}")
        if change > threshold:
            regressions.append(key)
    return lines, regressions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=["check", "update"])
    parser.add_argument("--figures", type=Path, action="append", help=f"default: {FIGURES}")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    args = parser.parse_args(argv)
    paths = args.figures or [FIGURES]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        print(f"no {', '.join(missing)}: run the benchmarks first (pytest benchmarks/ --benchmark-only ...)")
        return 2
    runs = [json.loads(path.read_text()) for path in paths]
    run = runs[-1]
    current = ratios(run)
    if args.action == "update":
        each = [ratios(one) for one in runs]
        shared = [key for key in current if all(key in r for r in each)]
        current = {key: sum(r[key] for r in each) / len(each) for key in shared}
        record = {
            "note": f"CPU figure / in-process reference CPU, mean of {len(runs)} run(s): bench_baseline.py",
            "reference_us": run["reference_us"],
            "machine": run.get("machine", ""),
            "ratios": {key: round(value, 4) for key, value in current.items()},
        }
        args.baseline.write_text(json.dumps(record, indent=2) + "\n")
        print(f"baseline written to {args.baseline} ({len(current)} figures)")
        return 0
    if not args.baseline.exists():
        print(f"no baseline at {args.baseline}: nothing to compare (make one with 'update')")
        return 0
    baseline = json.loads(args.baseline.read_text())["ratios"]
    lines, regressions = compare(baseline, current, args.threshold)
    reference = float(run["reference_us"])
    print(f"CPU per request / reference ({reference:.0f} µs this run), baseline -> this run:")
    print("\n".join(lines))
    if regressions:
        print(f"regression over {args.threshold:g}x the baseline: {', '.join(regressions)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
