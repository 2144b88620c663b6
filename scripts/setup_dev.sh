#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install falcon-ollama with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"falcon-ollama needs Python >= 3.11, this is {sys.version.split()[0]}")
PY
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing the newest pip into .venv"
.venv/bin/python -m pip install --quiet --upgrade pip
echo "setup: installing falcon-ollama and its test tools into .venv (a minute or two on a first run)"
.venv/bin/python -m pip install --quiet -e '.[dev]'
# ollama-js, a test driver (tests/integration/test_thinking.py), pinned by tests/js/package-lock.json.
# Without npm that test skips and says why.
if command -v npm >/dev/null 2>&1; then
  echo "setup: installing ollama-js into tests/js/node_modules (npm ci)"
  npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
else
  echo "setup: npm not found: the ollama-js test will be skipped (apt-get install nodejs npm)"
fi
# redis-server, for the tests of limits shared through Redis (tests/integration/test_tenants_redis.py).
# Locally those tests skip without it; under CI they fail, so CI installs it here.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ -n "${CI:-}" ]; then
    echo "setup: installing redis-server (CI)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  else
    echo "setup: redis-server not found: the Redis tests will be skipped (apt-get install redis-server)"
  fi
fi
if [ -d .git ] && [ -z "${CI:-}" ]; then
  echo "setup: installing the pre-commit hooks (ruff, mypy)"
  .venv/bin/pre-commit install >/dev/null 2>&1 || true
fi
echo "ready: .venv (activate with: source .venv/bin/activate)"
