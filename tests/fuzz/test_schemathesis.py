"""Schemathesis against the live server: docs/openapi.yaml drives the requests and judges the answers.

The server is our app under uvicorn on loopback (``ProxyThread``) in front of the bundled fake upstream with
the example catalog. Every operation in the document gets its examples, schemathesis' coverage cases
(boundary and invalid values) and a bounded, derandomized fuzzing run; each answer must not be a server
error (the fake is healthy, so no 502/504 either) and must match the document: status, content type,
headers and body (for NDJSON, every line; ``/v1`` pass-through bodies are only checked for their status
and content type, their schemas being loose on purpose).

Nothing may be logged at ERROR by the app meanwhile. Requests the fake upstream cannot serve
(``tests.fuzz.not_sendable``) are not sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from fake_openai import FakeConfig, FakeUpstreamThread
from falcon_ollama.catalog_config import load_catalog_file
from tests.conftest import EXAMPLE_CATALOG, proxy_settings
from tests.fuzz import SPEC_PATH, ErrorLogs, media_type, not_sendable, response_problems
from tests.servers import ProxyThread

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20251026,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    }
)
SCHEMA = schemathesis.openapi.from_path(str(SPEC_PATH), config=CONFIG)

STRICT_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# /v1/* relays the upstream's bodies: their schemas are loose, so only status and content type are judged.
PASS_THROUGH_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def live() -> Iterator[ProxyThread]:
    with FakeUpstreamThread(FakeConfig(record=False)) as fake:
        settings = proxy_settings(
            fake, catalog=load_catalog_file(EXAMPLE_CATALOG), catalog_path=str(EXAMPLE_CATALOG), max_retries=0
        )
        with ProxyThread(settings) as proxy:
            yield proxy


@pytest.fixture(scope="module")
def error_logs() -> Iterator[ErrorLogs]:
    with ErrorLogs.capture() as handler:
        yield handler


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def _body_bytes(body: object) -> bytes:
    try:
        return json.dumps(body).encode()
    except (TypeError, ValueError):  # not JSON-serializable (binary payloads): no fake limit applies
        return b""


@SCHEMA.parametrize()
def test_api_matches_the_document(
    case: schemathesis.Case, live: ProxyThread, session: requests.Session, error_logs: ErrorLogs
) -> None:
    if case.body is not None and not_sendable(case.path, _body_bytes(case.body)) is not None:
        return  # more than the fake upstream can take
    raw = case.operation.definition.raw
    checks = PASS_THROUGH_CHECKS if raw.get("x-passthrough") else STRICT_CHECKS
    if "501" in raw["responses"]:
        # Model management answers 501 on purpose; status_code_conformance still refuses any other status.
        checks = [check for check in checks if check is not not_a_server_error]
    response = case.call_and_validate(base_url=live.url, session=session, timeout=30, checks=checks)
    logged = error_logs.take()
    assert not logged, "falcon_ollama logged an error:\n" + "\n".join(logged)
    content_type = (response.headers.get("content-type") or [None])[0]
    if media_type(content_type) == "application/x-ndjson":
        # schemathesis has no NDJSON reader: judge every line against the document's line schema.
        problems = response_problems(
            case.operation.path, case.method, response.status_code, content_type, response.content
        )
        assert not problems, "\n".join(problems)
