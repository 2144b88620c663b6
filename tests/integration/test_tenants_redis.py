"""Limits across replicas: two gunicorn masters ("replicas", 2 workers each) sharing one real Redis.

One master fails open and the other closed when Redis goes away, so one run shows both policies against the
same outage, and both counting again once Redis is back.
"""

from __future__ import annotations

import time
from pathlib import Path

from fake_openai import FakeUpstreamThread
from tests.integration.test_gunicorn_lifecycle import gunicorn_env
from tests.integration.test_tenants import ALL_KEY, MINI_KEY, USER, get, post, sha
from tests.servers import GunicornProcess, RedisServer

CHAT = {"model": "gpt-4o-mini", "messages": USER, "stream": False}


def store_up(master: GunicornProcess) -> float:
    text = get(master, "/metrics", ALL_KEY).text
    line = next(line for line in text.splitlines() if line.startswith("falcon_ollama_limit_store_up "))
    return float(line.split()[1])


def test_two_replicas_share_one_redis_limit_and_survive_its_outage(
    fake: FakeUpstreamThread, redis_server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(
        f'[tenants.sixty]\nkey_sha256 = ["{sha(MINI_KEY)}"]\nrequests_per_minute = 60\n'
        f'[tenants.three]\nkey_sha256 = ["{sha(ALL_KEY)}"]\nrequests_per_minute = 3\n'
    )
    env = {
        **gunicorn_env(fake, workers=2),
        "FALCON_OLLAMA_TENANTS_FILE": str(path),
        "FALCON_OLLAMA_REDIS_URL": redis_server.url,
        "FALCON_OLLAMA_REDIS_MAX_BACKOFF": "1",
    }
    closed_env = {**env, "FALCON_OLLAMA_LIMIT_STORE_FAILURE": "closed"}
    with GunicornProcess(env) as one, GunicornProcess(closed_env) as two:
        # Fresh connections alternate between the replicas and, within each, its workers.
        codes = [post((one, two)[n % 2], "/api/chat", MINI_KEY, CHAT).status_code for n in range(80)]
        assert abs(codes.count(200) - 60) <= 2 and codes.count(200) + codes.count(429) == 80, codes
        assert store_up(one) == 1.0

        redis_server.stop()
        # Fail-open replica: serves on, uncounted (the tenant is over its limit, yet 200), gauge at 0.
        assert [post(one, "/api/chat", MINI_KEY, CHAT).status_code for _ in range(6)] == [200] * 6
        assert store_up(one) == 0.0
        assert "falcon_ollama_limit_store_errors_total" in get(one, "/metrics", ALL_KEY).text
        # Fail-closed replica: 503 at once, in each dialect.
        started = time.monotonic()
        refused = post(two, "/api/chat", MINI_KEY, CHAT)
        assert refused.status_code == 503 and list(refused.json()) == ["error"]
        assert time.monotonic() - started < 2
        v1 = post(two, "/v1/chat/completions", MINI_KEY, {"model": "gpt-4o-mini", "messages": USER})
        assert v1.status_code == 503 and v1.json()["error"]["code"] == "limit_store_unavailable"
        assert "redis-test-password" not in refused.text + v1.text

        redis_server.start()  # back, empty (--save '')
        time.sleep(1.5)  # past every worker's back-off (FALCON_OLLAMA_REDIS_MAX_BACKOFF=1)
        # Counting resumes across both replicas: 3 per minute for the small tenant.
        small = [post((one, two)[n % 2], "/api/chat", ALL_KEY, CHAT).status_code for n in range(10)]
        assert small.count(200) == 3 and small.count(429) == 7, small
        assert post(two, "/api/chat", MINI_KEY, CHAT).status_code == 200
        for _ in range(20):  # each worker's gauge rises at its next check; the scrape shows the lowest
            if store_up(one) == 1.0:
                break
            post(one, "/api/chat", MINI_KEY, CHAT)
        assert store_up(one) == 1.0
    log = one.output + two.output
    assert b"LIMIT STORE DOWN" in log and b"redis-test-password" not in log
