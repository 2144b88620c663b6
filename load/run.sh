#!/usr/bin/env bash
# Load test on loopback: the bundled fake upstream with realistic latency, falcon-ollama under gunicorn
# (gunicorn -c gunicorn.conf.py, 2 workers), and Locust with 100 users for a minute (load/locustfile.py).
# Writes reports/locust.html and reports/locust_*.csv; exits non-zero on any failed request.
#
#   load/run.sh                       # defaults below
#   USERS=200 DURATION=120s load/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
USERS=${USERS:-100}
SPAWN_RATE=${SPAWN_RATE:-20}
DURATION=${DURATION:-60s}
WORKERS=${WORKERS:-2}
# Realistic latency: 300 ms to the first byte, then 20 ms per token (50 tokens per answer).
TTFB_MS=${TTFB_MS:-300}
TOKEN_DELAY_MS=${TOKEN_DELAY_MS:-20}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM_PORT=$(free_port)
PROXY_PORT=$(free_port)
mkdir -p reports
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$PY" -m fake_openai --host 127.0.0.1 --port "$UPSTREAM_PORT" --uvloop --no-record \
  --tokens 50 --ttfb-ms "$TTFB_MS" --token-delay-ms "$TOKEN_DELAY_MS" --embedding-dim 768 \
  >reports/load_fake_upstream.log 2>&1 &
pids+=($!)
OLLAMA_HOST="127.0.0.1:$PROXY_PORT" OPENAI_BASE_URL="http://127.0.0.1:$UPSTREAM_PORT/v1" OPENAI_API_KEY=sk-load-test \
  WEB_CONCURRENCY="$WORKERS" FALCON_OLLAMA_CATALOG=conf/models.toml FALCON_OLLAMA_ENV_FILE=/dev/null \
  "$PY" -m gunicorn -c gunicorn.conf.py >reports/load_proxy.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  if "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PROXY_PORT/api/version', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

"$PY" -m locust -f load/locustfile.py --headless -u "$USERS" -r "$SPAWN_RATE" -t "$DURATION" \
  --host "http://127.0.0.1:$PROXY_PORT" --html reports/locust.html --csv reports/locust --only-summary \
  --stop-timeout 30
