"""Record a real OpenAI-compatible server's answers as contract fixtures (tests/fixtures/real/llamacpp).

The bundled fake upstream is ours and shares our assumptions; these recordings are what a server we did not
write actually says. Start the server first (../shared/real-upstream/start.sh PORT), then:

    python scripts/record_fixtures.py --base-url http://127.0.0.1:PORT

Each case is one raw HTTP exchange (stdlib http.client, so nothing between us and the bytes but the
chunked-transfer decoding): the request, the status, the content type and the exact body bytes, saved as
``<case>.body`` beside a ``cases.json`` manifest. Re-running overwrites the recordings; ids and timestamps
change from run to run, the shapes must not.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
HOME = str(Path.home()).encode()
OUT = REPO / "tests" / "fixtures" / "real" / "llamacpp"
CHAT = "tiny-llama"
EMBED = "tiny-embed"
USER = [{"role": "user", "content": "Say hello in one word."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_CHOICE = {"type": "function", "function": {"name": "get_weather"}}
# The small knobs every generation case shares: repeatable text (temperature 0, seed) and short answers.
GEN = {"temperature": 0, "seed": 1, "max_tokens": 8}

# (case name, method, path, body: a JSON value, raw bytes, or None for no body)
CASES: list[tuple[str, str, str, Any]] = [
    ("models", "GET", "/v1/models", None),
    ("model_get", "GET", f"/v1/models/{CHAT}", None),
    ("props", "GET", "/props", None),
    ("chat", "POST", "/v1/chat/completions", {"model": CHAT, "messages": USER, **GEN}),
    (
        "chat_stream",
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": USER, "stream": True, "stream_options": {"include_usage": True}, **GEN},
    ),
    (
        "chat_tool_call",
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": USER, "tools": [WEATHER_TOOL], "tool_choice": TOOL_CHOICE}
        | GEN
        | {"max_tokens": 48},
    ),
    (
        "chat_tool_call_stream",
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": USER, "tools": [WEATHER_TOOL], "tool_choice": TOOL_CHOICE, "stream": True}
        | GEN
        | {"max_tokens": 48},
    ),
    (
        "chat_unknown_model",
        "POST",
        "/v1/chat/completions",
        {"model": "no-such-model", "messages": USER, **GEN},
    ),
    ("embeddings", "POST", "/v1/embeddings", {"model": EMBED, "input": ["hello", "world"]}),
    ("embeddings_single", "POST", "/v1/embeddings", {"model": EMBED, "input": "hello"}),
    ("embeddings_per_token", "POST", "/v1/embeddings", {"model": CHAT, "input": "hello world"}),
    # Refusals.
    (
        "error_unknown_field",
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": USER, "no_such_field": 1, **GEN},
    ),
    ("error_bad_json", "POST", "/v1/chat/completions", b'{"model": "tiny-llama", "messages": [}'),
    ("error_messages_type", "POST", "/v1/chat/completions", {"model": CHAT, "messages": "hi", **GEN}),
    (
        "error_temperature_type",
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": USER, **GEN, "temperature": "hot"},
    ),
    ("error_missing_messages", "POST", "/v1/chat/completions", {"model": CHAT, **GEN}),
    ("error_embeddings_input_type", "POST", "/v1/embeddings", {"model": EMBED, "input": 5}),
    (
        "error_response_format_json_schema",
        "POST",
        "/v1/chat/completions",
        {
            "model": CHAT,
            "messages": USER,
            **GEN,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "greeting",
                    "schema": {"type": "object", "properties": {"word": {"type": "string"}}},
                },
            },
        },
    ),
    ("error_unknown_path", "GET", "/v1/no-such-path", None),
    # A prompt longer than the server's context (2,048 tokens): the one place this server names its context.
    (
        "error_context_exceeded",
        "POST",
        "/v1/chat/completions",
        {"model": CHAT, "messages": [{"role": "user", "content": "hello " * 2100}], **GEN},
    ),
    # The context probe's shape (falcon_ollama/translate/context_probe.py), shorter: the raw completion route
    # refuses an over-long prompt before evaluating it, with its own wording of the same figures.
    (
        "completions_context_exceeded",
        "POST",
        "/v1/completions",
        {"model": CHAT, "prompt": "hello " * 2100, "max_tokens": 1, "temperature": 0},
    ),
]


README = """# Real llama.cpp answers (recorded)

Recorded by `scripts/record_fixtures.py` from **{version}** (llama.cpp's OpenAI-compatible server, started
with `../shared/real-upstream/start.sh`: tiny random-weight models `tiny-llama`, chat format
`chatml-function-calling`, and `tiny-embed`, mean pooling). {cases} exchanges: `cases.json` lists each
request, status and content type; `<case>.body` holds the body bytes exactly as sent (after chunked
decoding; the server's home directory in tracebacks is written `~`). Ids, timestamps and the gibberish
text change from run to run; the shapes do not. Re-record with the server running:

    python scripts/record_fixtures.py --base-url http://127.0.0.1:PORT

Used by tests/unit/test_real_fixtures.py (translators), tests/integration/test_recorded_upstream.py (the
proxy in front of a replay of these bytes) and tests/integration/test_fake_vs_real.py (the fake upstream's
llama.cpp mode). What they showed is summarised in docs/ollama-contract-notes.md, section 9.
"""


def exchange(base: str, method: str, path: str, body: Any) -> tuple[int, str, bytes]:
    """One request on a fresh connection; the status, content type and the body bytes as sent."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=120)
    headers = {"Authorization": "Bearer any", "Accept": "*/*"}
    payload: bytes | None = None
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def server_version() -> str:
    """llama-cpp-python's version from the venv start.sh builds (UPSTREAM_VENV), when it is there."""
    venv = Path(os.environ.get("UPSTREAM_VENV", Path.home() / ".cache" / "real-upstream"))
    python = venv / "bin" / "python"
    if not python.exists():
        return "unknown (no upstream venv found)"
    out = subprocess.run(
        [str(python), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"llama-cpp-python {out.stdout.strip()}" if out.returncode == 0 else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base-url", default="http://127.0.0.1:18080", help="server root (no /v1)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    base = args.base_url.rstrip("/").removesuffix("/v1")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, Any]] = []
    for name, method, path, body in CASES:
        status, content_type, data = exchange(base, method, path, body)
        data = data.replace(HOME, b"~")  # tracebacks in llama.cpp's 500s name the server's files
        (out / f"{name}.body").write_bytes(data)
        request = body.decode() if isinstance(body, bytes) else body
        manifest.append(
            {
                "name": name,
                "method": method,
                "path": path,
                "request": request,
                "request_is_raw": isinstance(body, bytes),
                "status": status,
                "content_type": content_type,
                "body_file": f"{name}.body",
            }
        )
        print(f"{status} {method} {path:<24} {name} ({len(data)} B, {content_type})")
    (out / "cases.json").write_text(json.dumps(manifest, indent=2) + "\n")
    version = server_version()
    (out / "README.md").write_text(README.format(version=version, cases=len(manifest)))
    print(f"recorded {len(manifest)} cases from {version} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
