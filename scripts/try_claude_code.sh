#!/usr/bin/env bash
# Claude Code through the proxy, offline: the bundled fake upstream, the proxy as production runs it
# (`gunicorn -c gunicorn.conf.py`, 2 workers; SERVER=serve for `falcon-ollama serve`), and the real `claude`
# CLI (installed from npm into a temporary directory, never into the repository).
#
#   scripts/try_claude_code.sh            # uses .venv/bin/falcon-ollama, else falcon-ollama on PATH
#   CLAUDE_CODE_VERSION=2.1.197 SERVER=serve scripts/try_claude_code.sh
#
# Two runs: `claude -p "say hi"` (a plain streamed answer), then a real tool round trip: the fake is scripted
# to answer the prompt with a Bash tool call (`echo hello-from-bash`), Claude Code runs it and sends the
# result back, and the fake's final answer quotes it ("tool said: hello-from-bash"). Exits non-zero if
# either answer is not the expected one. Needs node/npm and network access to the npm registry.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${FALCON_OLLAMA_BIN:-$repo/.venv/bin/falcon-ollama}"
[ -x "$bin" ] || bin="$(command -v falcon-ollama)"
model="${MODEL:-gpt-4o}"
scratch="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
    for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "not up: $1" >&2; return 1
}

echo "== installing @anthropic-ai/claude-code${CLAUDE_CODE_VERSION:+@$CLAUDE_CODE_VERSION} into $scratch/cli"
mkdir -p "$scratch/cli" "$scratch/home" "$scratch/work"
npm install --silent --prefix "$scratch/cli" "@anthropic-ai/claude-code${CLAUDE_CODE_VERSION:+@$CLAUDE_CODE_VERSION}" >/dev/null
claude="$scratch/cli/node_modules/.bin/claude"
echo "claude $("$claude" --version)"

fake_port="$(free_port)"
proxy_port="$(free_port)"
"$bin" fake-upstream --host 127.0.0.1 --port "$fake_port" >"$scratch/fake.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$fake_port/_fake/config"
export OPENAI_BASE_URL="http://127.0.0.1:$fake_port/v1" OPENAI_API_KEY="sk-fake-upstream-key-0123456789" \
    OLLAMA_HOST="127.0.0.1:$proxy_port" FALCON_OLLAMA_ENV_FILE=/dev/null
if [ "${SERVER:-gunicorn}" = serve ]; then
    "$bin" serve --env-file /dev/null >"$scratch/proxy.log" 2>&1 &
else
    (cd "$repo" && WEB_CONCURRENCY=2 exec "$(dirname "$bin")/gunicorn" -c gunicorn.conf.py) >"$scratch/proxy.log" 2>&1 &
fi
pids+=($!)
wait_for "http://127.0.0.1:$proxy_port/api/version"
echo "fake upstream on :$fake_port, proxy (${SERVER:-gunicorn}) on :$proxy_port"

fake_config() { curl -fsS -o /dev/null -X POST "http://127.0.0.1:$fake_port/_fake/config" -d "$1"; }
run_claude() {
    (cd "$scratch/work" && HOME="$scratch/home" ANTHROPIC_BASE_URL="http://127.0.0.1:$proxy_port" \
        ANTHROPIC_API_KEY="anything" ANTHROPIC_SMALL_FAST_MODEL="$model" DISABLE_TELEMETRY=1 \
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 timeout 180 "$claude" -p "$@" --model "$model")
}
upstream_calls() { grep -c '"POST /v1/messages 200"' "$scratch/proxy.log" || true; }

status=0
echo
echo "== claude -p \"say hi\" --model $model"
fake_config '{"call_tool": "none"}'
hi="$(run_claude "say hi")"
echo "$hi"
[ "${hi% }" = "w0 w1 w2 w3 w4 w5 w6 w7" ] || { echo "FAIL: unexpected answer" >&2; status=1; }
echo "(/v1/messages calls so far: $(upstream_calls); one streamed call, no retry without streaming)"

echo
echo "== tool round trip: claude -p \"run the greeting command\" --allowedTools 'Bash(echo:*)'"
fake_config '{"call_tool": "Bash", "echo_tool_result": true,
              "call_arguments": "{\"command\": \"echo hello-from-bash\", \"description\": \"Print a greeting\"}"}'
tool="$(run_claude "run the greeting command" --allowedTools 'Bash(echo:*)')"
echo "$tool"
[ "$tool" = "tool said: hello-from-bash" ] || { echo "FAIL: the tool round trip did not complete" >&2; status=1; }
echo "(/v1/messages calls so far: $(upstream_calls))"

if [ "$status" -ne 0 ]; then
    echo "--- proxy log (tail)"; tail -20 "$scratch/proxy.log"
fi
exit "$status"
