#!/usr/bin/env bash
# Codex CLI through falcon-ollama's /v1/responses, offline: the bundled fake upstream on loopback, our proxy
# in translate mode in front of it as production runs it (`gunicorn -c gunicorn.conf.py`, 2 workers;
# SERVER=serve for `falcon-ollama serve`), and `codex exec` with a custom provider (wire_api = "responses").
#
#   scripts/try_codex.sh            # needs `codex` on PATH, or CODEX_BIN=/path/to/codex
#   (install without touching the repo: npm i --prefix /tmp/codex @openai/codex;
#    CODEX_BIN=/tmp/codex/node_modules/.bin/codex scripts/try_codex.sh)
#
# Runs three things and fails if one does not answer as expected:
#   1. `codex exec "say hi"`: a plain streamed answer.
#   2. a real tool round trip: the fake sees "[[run: CMD]]" in the prompt, asks Codex's shell tool
#      (exec_command) to run CMD, and answers with what the command printed.
#   3. `codex exec --oss`: Codex's Ollama mode (GET /v1/models, /api/version, /api/tags, then
#      /v1/responses, no Authorization header).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
CODEX_BIN="${CODEX_BIN:-$(command -v codex || true)}"
if [[ -z "$CODEX_BIN" ]]; then
  echo "codex not found: npm i --prefix /tmp/codex @openai/codex, then CODEX_BIN=/tmp/codex/node_modules/.bin/codex" >&2
  exit 2
fi
MODEL="${MODEL:-gpt-4o}"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() {
  for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server at $1 did not start" >&2; exit 1
}

FAKE_PORT="$(free_port)"
"$PYTHON" -m falcon_ollama fake-upstream --port "$FAKE_PORT" >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$FAKE_PORT/v1/models"

PROXY_PORT="$(free_port)"
PROXY_ENV=(-u OPENAI_API_KEY OPENAI_BASE_URL="http://127.0.0.1:$FAKE_PORT/v1" OLLAMA_HOST="127.0.0.1:$PROXY_PORT"
  FALCON_OLLAMA_RESPONSES_MODE=translate FALCON_OLLAMA_LOG_FORMAT=text FALCON_OLLAMA_ENV_FILE=/dev/null)
if [[ "${SERVER:-gunicorn}" == serve ]]; then
  env "${PROXY_ENV[@]}" "$PYTHON" -m falcon_ollama serve >"$WORK/proxy.log" 2>&1 &
else
  (cd "$REPO" && exec env "${PROXY_ENV[@]}" WEB_CONCURRENCY=2 "$(dirname "$PYTHON")/gunicorn" -c gunicorn.conf.py) \
    >"$WORK/proxy.log" 2>&1 &
fi
PIDS+=($!)
wait_up "http://127.0.0.1:$PROXY_PORT/api/version"

# Codex's own state (config, sessions, logs) stays in the scratch directory; nothing reaches the internet:
# the only provider is the loopback proxy, and analytics/update checks are off.
export CODEX_HOME="$WORK/codex-home"
mkdir -p "$CODEX_HOME" "$WORK/project"
cat >"$CODEX_HOME/config.toml" <<EOF
model = "$MODEL"
model_provider = "falcon"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.falcon]
name = "falcon-ollama"
base_url = "http://127.0.0.1:$PROXY_PORT/v1"
env_key = "FALCON_OLLAMA_KEY"
wire_api = "responses"
EOF
export FALCON_OLLAMA_KEY="not-checked-unless-FALCON_OLLAMA_API_KEYS-is-set"
cd "$WORK/project"

run() {  # run <label> <codex args...>: print Codex's output, keep its last message
  echo "=== $1"
  shift
  timeout 120 "$CODEX_BIN" exec --skip-git-repo-check --output-last-message "$WORK/last.txt" "$@" </dev/null \
    2>&1 | grep -v -e '^WARNING: proceeding' -e 'bubblewrap' -e 'pyenv: cannot rehash' || true
  echo "--- last message: $(cat "$WORK/last.txt" 2>/dev/null)"
}
fail=0
run "codex exec \"say hi\"" "say hi"
grep -q "w0 w1 w2" "$WORK/last.txt" || { echo "FAIL: no answer" >&2; fail=1; }

rm -f "$WORK/last.txt"
run "tool round trip" "[[run: echo hello-from-codex]] run that command"
# The answer quotes the tool's output, which may start with the login shell's own noise.
{ grep -q "^The command printed: " "$WORK/last.txt" && grep -q "^hello-from-codex$" "$WORK/last.txt"; } ||
  { echo "FAIL: no tool round trip" >&2; fail=1; }

rm -f "$WORK/last.txt"
CODEX_OSS_BASE_URL="http://127.0.0.1:$PROXY_PORT/v1" run "codex exec --oss" --oss --local-provider ollama -m "$MODEL" "say hi"
grep -q "w0 w1 w2" "$WORK/last.txt" || { echo "FAIL: --oss gave no answer" >&2; fail=1; }

echo "=== requests the proxy served"
grep -o '"\?\(GET\|POST\) /[a-z0-9/._-]* [0-9]\{3\}' "$WORK/proxy.log" | sort | uniq -c
exit $fail
