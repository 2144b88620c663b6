#!/usr/bin/env bash
# Run the proxy on OLLAMA_HOST (default 127.0.0.1:11434) with the example catalog. With no OPENAI_API_KEY
# and no OPENAI_BASE_URL (in the environment or .env) it serves the bundled fake upstream and says so.
# Logs are text here, for a terminal, unless FALCON_OLLAMA_LOG_FORMAT says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "run_local: first run, setting up .venv"
  scripts/setup_dev.sh
fi
export FALCON_OLLAMA_CATALOG="${FALCON_OLLAMA_CATALOG:-conf/models.toml}"
export FALCON_OLLAMA_LOG_FORMAT="${FALCON_OLLAMA_LOG_FORMAT:-text}"
exec .venv/bin/falcon-ollama serve "$@"
