"""The usage ledger and ``falcon-ollama usage``: requests and tokens per hour x tenant x model, kept across
a restart of the proxy (gunicorn, SIGTERM), with the embedded SQLite ledger and with Redis."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fake_openai import FakeUpstreamThread
from falcon_ollama.ledger import parse_since
from tests.integration.test_gunicorn_lifecycle import gunicorn_env
from tests.integration.test_tenants import ALL_KEY, MINI_KEY, USER, post, sha
from tests.servers import REPO, GunicornProcess

CHAT = {"model": "gpt-4o-mini", "messages": USER, "stream": False}


@pytest.fixture(params=["embedded", "redis"])
def ledger_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "redis":
        return {"FALCON_OLLAMA_REDIS_URL": request.getfixturevalue("redis_server").url}
    return {"FALCON_OLLAMA_LEDGER_PATH": str(tmp_path / "state" / "ledger.sqlite")}


def usage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcon_ollama", "usage", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_usage_survives_a_restart_and_prints_as_table_csv_and_json(
    fake: FakeUpstreamThread, tmp_path: Path, ledger_env: dict[str, str]
) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(
        f'[tenants.minis]\nkey_sha256 = ["{sha(MINI_KEY)}"]\n[tenants.all]\nkey_sha256 = ["{sha(ALL_KEY)}"]\n'
    )
    env = {**gunicorn_env(fake, workers=2), "FALCON_OLLAMA_TENANTS_FILE": str(path), **ledger_env}
    expected = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for _ in range(2):  # two runs of the proxy: the second adds to what the first wrote
        with GunicornProcess(env) as proxy:
            for n in range(5):
                answer = post(proxy, "/api/chat", MINI_KEY, {**CHAT, "stream": n % 2 == 1})
                assert answer.status_code == 200
                last = orjson.loads(answer.text.strip().splitlines()[-1])
                expected["requests"] += 1
                expected["prompt_tokens"] += last["prompt_eval_count"]
                expected["completion_tokens"] += last["eval_count"]
            assert post(proxy, "/api/chat", ALL_KEY, {**CHAT, "model": "gpt-5"}).status_code == 200
        # SIGTERM: gunicorn's graceful stop; the ledger's writes were done (or drained) before exit.

    cli_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    data = orjson.loads(usage(cli_env, "--tenant", "minis", "--format", "json").stdout)
    assert [(r["tenant"], r["model"]) for r in data["rows"]] == [("minis", "gpt-4o-mini:latest")]
    assert data["totals"] == expected
    both = orjson.loads(usage(cli_env, "--since", "1h", "--format", "json").stdout)
    assert {r["tenant"] for r in both["rows"]} == {"minis", "all"}
    assert both["totals"]["requests"] == 12
    rows = list(csv.DictReader(io.StringIO(usage(cli_env, "--format", "csv").stdout)))
    assert sum(int(r["requests"]) for r in rows) == 12 and {r["model"] for r in rows} == {
        "gpt-4o-mini:latest",
        "gpt-5:latest",
    }
    table = usage(cli_env).stdout.splitlines()
    assert table[0].split() == ["hour", "tenant", "model", "requests", "prompt_tokens", "completion_tokens"]
    assert table[-1].split()[:2] == ["total", "12"]
    future = usage(cli_env, "--since", "2999-01-01T00:00", "--format", "json")
    assert orjson.loads(future.stdout)["rows"] == []
    bad = usage(cli_env, "--since", "yesterday")
    assert bad.returncode == 1 and "--since" in bad.stderr
    assert "redis-test-password" not in "".join(str(x) for x in (data, both, rows, table))


def test_since_takes_ages_and_iso_times() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert parse_since("1d", now) == datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T08:30", now) == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert parse_since("2026-12-01T08:30+01:00", now).hour == 8
    with pytest.raises(ValueError):
        parse_since("soon", now)
