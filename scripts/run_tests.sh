#!/usr/bin/env bash
# The whole test suite on a fresh machine: install, lint, type-check, test with coverage (>= 90%).
# Extra arguments go to pytest (e.g. scripts/run_tests.sh -k tags -x).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || [ -n "${CI:-}" ]; then
  scripts/setup_dev.sh
fi
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy
echo "== pytest"
pytest --cov=falcon_ollama --cov-report=term --cov-fail-under=90 -p no:cacheprovider "$@"
echo "== benchmarks (report kept in reports/benchmarks.json)"
pytest benchmarks/ --benchmark-only --benchmark-json=reports/benchmarks.json -p no:cacheprovider \
  --benchmark-columns=min,median,iqr,rounds --benchmark-sort=name
echo "== CPU regressions against the last landed run (benchmarks/baseline.json)"
python scripts/bench_baseline.py check
