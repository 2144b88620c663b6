"""Request ids, the per-request summary line, JSON logs and Prometheus metrics (gunicorn workers too)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

import httpx
import ollama
import orjson
import pytest

from fake_openai import FakeUpstreamThread
from falcon_ollama.logs import JsonFormatter, TextFormatter, redact
from tests.servers import REPO, GunicornProcess, ProxyThread

USER = [{"role": "user", "content": "a secret prompt text"}]


def summaries(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records if r.name == "falcon_ollama.request"]  # type: ignore[attr-defined]


def test_request_id_is_generated_echoed_and_sent_upstream(
    proxy: ProxyThread, fake: FakeUpstreamThread
) -> None:
    generated = httpx.get(proxy.url + "/api/tags").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    given = httpx.post(
        proxy.url + "/api/chat",
        json={"model": "gpt-4o", "messages": USER, "stream": False},
        headers={"X-Request-ID": "client-id-42"},
    )
    assert given.headers["x-request-id"] == "client-id-42"
    assert fake.requests[-1].headers["x-request-id"] == "client-id-42"
    hostile = httpx.get(proxy.url + "/api/version", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


def test_one_summary_line_per_request(proxy: ProxyThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="falcon_ollama.request")
    list(ollama.Client(host=proxy.url).chat("llama3.2", messages=USER, stream=True))
    httpx.post(proxy.url + "/api/chat", json={"model": "nope", "messages": USER})
    lines = summaries(caplog)
    assert len(lines) == 2
    ok, missing = lines
    assert ok["route"] == "/api/chat" and ok["status"] == 200 and ok["model"] == "llama3.2:latest"
    assert ok["upstream_status"] == 200
    assert ok["prompt_tokens"] and ok["completion_tokens"] == 8
    assert isinstance(ok["first_chunk_ms"], float) and isinstance(ok["total_ms"], float)
    assert missing["status"] == 404 and "model" not in missing
    text = " ".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "secret prompt" not in text  # no prompts in the log by default


def test_probes_are_not_logged(proxy: ProxyThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="falcon_ollama.request")
    for path in ("/health", "/ready", "/metrics"):
        httpx.get(proxy.url + path)
    assert summaries(caplog) == []


def test_bodies_are_logged_only_when_asked(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="falcon_ollama.relay")
    proxy = start_proxy(fake, log_bodies=True)
    httpx.post(proxy.url + "/api/chat", json={"model": "gpt-4o", "messages": USER, "stream": False})
    bodies = [r for r in caplog.records if "upstream_body" in getattr(r, "fields", {})]
    assert len(bodies) == 1
    assert bodies[0].fields["upstream_body"]["messages"] == USER  # type: ignore[attr-defined]


def test_json_and_text_formats() -> None:
    record = logging.LogRecord("falcon_ollama.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.fields = {"request_id": "abc", "status": 200}
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "GET /x" and line["level"] == "info" and line["request_id"] == "abc"
    assert line["time"].endswith("Z")
    assert TextFormatter().format(record).endswith("request_id=abc status=200")


def test_redact_masks_secret_fields() -> None:
    assert redact({"api_key": "sk-1", "nested": [{"Authorization": "Bearer x", "ok": 1}]}) == {
        "api_key": "[redacted]",
        "nested": [{"Authorization": "[redacted]", "ok": 1}],
    }


def test_metrics_count_requests_tokens_and_latency(proxy: ProxyThread) -> None:
    client = ollama.Client(host=proxy.url)
    client.chat("gpt-4o", messages=USER)
    list(client.chat("gpt-4o", messages=USER, stream=True))
    httpx.post(proxy.url + "/api/chat", json={"model": "nope", "messages": USER})
    resp = httpx.get(proxy.url + "/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert 'falcon_ollama_requests_total{model="gpt-4o:latest",route="/api/chat",status="200"} 2.0' in text
    assert 'falcon_ollama_requests_total{model="unknown",route="/api/chat",status="404"} 1.0' in text
    assert 'falcon_ollama_tokens_total{kind="completion",model="gpt-4o:latest"} 16.0' in text
    assert 'falcon_ollama_time_to_first_chunk_seconds_count{route="/api/chat"} 1.0' in text
    assert "falcon_ollama_upstream_response_seconds_bucket" in text
    assert "falcon_ollama_in_flight_requests" in text


def test_unknown_paths_share_one_label(proxy: ProxyThread) -> None:
    for i in range(3):
        httpx.get(proxy.url + f"/no/such/path/{i}")
    text = httpx.get(proxy.url + "/metrics").text
    assert 'route="unmatched",status="404"} 3.0' in text
    assert "/no/such/path" not in text


def test_metrics_cover_every_gunicorn_worker(fake: FakeUpstreamThread) -> None:
    env = {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-metrics",
        "WEB_CONCURRENCY": "2",
        "FALCON_OLLAMA_ENV_FILE": os.devnull,
        "FALCON_OLLAMA_CATALOG": str(REPO / "conf" / "models.toml"),
    }
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with GunicornProcess(env) as server:
        for _ in range(40):  # new connections: both workers take some
            with httpx.Client() as client:
                resp = client.get(server.url + "/api/version")
                assert resp.status_code == 200
        for _ in range(10):
            with httpx.Client() as client:
                text = client.get(server.url + "/metrics").text
            match = re.search(
                r'falcon_ollama_requests_total\{model="unknown",route="/api/version",status="200"\} (\S+)',
                text,
            )
            assert match is not None
            assert float(match.group(1)) == 40.0  # every worker's count, whichever worker answers the scrape
    assert server.proc is not None and server.proc.returncode == 0


def test_summary_names_the_client(proxy: ProxyThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="falcon_ollama.request")
    httpx.get(proxy.url + "/api/version")
    (line,) = summaries(caplog)
    assert line["client"] == "127.0.0.1"


def test_unlisted_models_share_one_metrics_label(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread]
) -> None:
    fake.config.answer_any_model = True
    proxy = start_proxy(fake, allow_unlisted_models=True)
    for i in range(3):
        body = {"model": f"client-made-up-{i}", "messages": USER, "stream": False}
        assert httpx.post(proxy.url + "/api/chat", json=body).status_code == 200
    text = httpx.get(proxy.url + "/metrics").text
    assert 'falcon_ollama_requests_total{model="unlisted",route="/api/chat",status="200"} 3.0' in text
    assert "client-made-up" not in text


TEXT_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


def test_text_logs_cannot_be_forged(
    fake: FakeUpstreamThread, start_proxy: Callable[..., ProxyThread], caplog: pytest.LogCaptureFixture
) -> None:
    """A ``%0a`` in the path or a newline in a model name stays on its record's line (text format)."""
    proxy = start_proxy(fake, allow_unlisted_models=True)
    caplog.set_level(logging.INFO, logger="falcon_ollama.request")
    forged = "2026-01-01 00:00:00,000 INFO falcon_ollama.request: GET /forged 200"
    httpx.get(proxy.url + "/api/tags%0a" + forged.replace(" ", "%20"))
    httpx.post(
        proxy.url + "/api/chat", json={"model": "gpt-4o\r\n" + forged, "messages": USER, "stream": False}
    )
    records = [r for r in caplog.records if r.name == "falcon_ollama.request"]
    assert len(records) == 2
    text = "\n".join(TextFormatter().format(r) for r in records)
    lines = text.split("\n")
    assert len(lines) == 2 and all(TEXT_RECORD.match(line) for line in lines)
    assert "/api/tags\\n2026-01-01" in lines[0]
    assert "model=gpt-4o\\r\\n2026-01-01" in lines[1]
    assert "\x1b" not in TextFormatter().format(
        logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("\x1b[2J\u2028",), None)
    )
