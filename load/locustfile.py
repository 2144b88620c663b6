"""Load test for falcon-ollama with Locust's FastHttpUser: chat (stream and not), generate and embed.

Every user is an Ollama client: it chats (streamed and not), generates, and embeds, with a short think time
between requests. A response counts as a success only when it is complete and well-formed (a streamed
answer must end with ``"done": true``); any failure makes the run exit with status 1.

Run it with ``load/run.sh`` (fake upstream with realistic latency + the proxy under gunicorn + 100 users for
a minute, report in ``reports/``), or against any server:

    locust -f load/locustfile.py --headless -u 100 -r 20 -t 60s --host http://127.0.0.1:11434

Models come from ``LOAD_CHAT_MODEL`` (default ``llama3.2``) and ``LOAD_EMBED_MODEL`` (default
``nomic-embed-text``), the aliases of conf/models.toml.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from locust import FastHttpUser, between, events, task
from locust.env import Environment

CHAT_MODEL = os.environ.get("LOAD_CHAT_MODEL", "llama3.2")
EMBED_MODEL = os.environ.get("LOAD_EMBED_MODEL", "nomic-embed-text")
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Why is the sky blue? Answer in one paragraph."},
]


def _check_final(line: dict[str, Any]) -> str | None:
    if line.get("done") is not True:
        return "the last line is not done: true"
    if not isinstance(line.get("eval_count"), int):
        return "the final line has no eval_count"
    return None


class OllamaClient(FastHttpUser):
    wait_time = between(0.5, 1.5)
    # One keep-alive connection per user, as a typical client library holds.
    concurrency = 1

    def _post(self, path: str, name: str, body: dict[str, Any], stream: bool) -> None:
        with self.client.post(
            path,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
            name=name,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            try:
                if stream:
                    lines = [orjson.loads(line) for line in (resp.content or b"").splitlines() if line]
                    if len(lines) < 2:
                        resp.failure(f"only {len(lines)} NDJSON lines")
                        return
                    problem = _check_final(lines[-1])
                else:
                    payload = orjson.loads(resp.content or b"")
                    problem = _check_final(payload) if path != "/api/embed" else _check_embed(payload)
            except orjson.JSONDecodeError as exc:
                resp.failure(f"invalid JSON: {exc}")
                return
            if problem:
                resp.failure(problem)

    @task(3)
    def chat_stream(self) -> None:
        body = {"model": CHAT_MODEL, "messages": MESSAGES, "stream": True}
        self._post("/api/chat", "chat stream", body, stream=True)

    @task(3)
    def chat(self) -> None:
        body = {"model": CHAT_MODEL, "messages": MESSAGES, "stream": False}
        self._post("/api/chat", "chat", body, stream=False)

    @task(2)
    def generate_stream(self) -> None:
        body = {"model": CHAT_MODEL, "prompt": "Write a haiku about the sea.", "stream": True}
        self._post("/api/generate", "generate stream", body, stream=True)

    @task(1)
    def generate(self) -> None:
        body = {"model": CHAT_MODEL, "prompt": "Write a haiku about the sea.", "stream": False}
        self._post("/api/generate", "generate", body, stream=False)

    @task(1)
    def embed(self) -> None:
        body = {"model": EMBED_MODEL, "input": ["The quick brown fox", "jumps over the lazy dog"]}
        self._post("/api/embed", "embed", body, stream=False)


def _check_embed(payload: dict[str, Any]) -> str | None:
    embeddings = payload.get("embeddings")
    if not isinstance(embeddings, list) or len(embeddings) != 2 or not all(embeddings):
        return "expected two embeddings"
    return None


@events.quitting.add_listener
def _zero_errors(environment: Environment, **kwargs: Any) -> None:
    """The run passes only with zero failed requests (and at least one request)."""
    total = environment.stats.total
    if total.num_failures or not total.num_requests:
        environment.process_exit_code = 1
