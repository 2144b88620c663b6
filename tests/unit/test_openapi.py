"""docs/openapi.yaml is a valid OpenAPI 3.1 document that describes exactly the routes the app serves."""

from __future__ import annotations

from typing import Any

import falcon.inspect
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from fake_openai import DEFAULT_MODELS
from falcon_ollama.app import create_app
from falcon_ollama.catalog_config import load_catalog_file
from falcon_ollama.settings import Settings
from tests.conftest import EXAMPLE_CATALOG
from tests.fuzz import SPEC_PATH, load_spec, resolve

HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
# The statuses the app answers on purpose (see the document's description); "4XX" is /v1's pass-through.
KNOWN_STATUSES = {"200", "400", "401", "403", "404", "413", "429", "501", "502", "503", "504", "529", "4XX"}


def served_routes() -> set[tuple[str, str]]:
    """(path template, method) for every responder the app registers (Falcon's own OPTIONS excluded)."""
    settings = Settings(openai_base_url="http://127.0.0.1:9", openai_base_url_set=True, openai_api_key="sk-x")
    app = create_app(settings)
    return {
        (route.path, method.method.lower())
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }


def documented_routes() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in load_spec()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in load_spec()["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = load_spec()
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # openapi-spec-validator: structure, $refs, path parameters, unique operationIds


def test_schemathesis_loads_it() -> None:
    schema = schemathesis.openapi.from_path(str(SPEC_PATH))
    schema.validate()
    assert len(list(schema.get_all_operations())) == len(documented_routes())


def test_every_served_route_is_documented() -> None:
    missing = sorted(served_routes() - documented_routes())
    assert not missing, f"routes the app serves but docs/openapi.yaml does not describe: {missing}"


def test_every_documented_route_is_served() -> None:
    phantom = sorted(documented_routes() - served_routes())
    assert not phantom, f"routes docs/openapi.yaml describes but the app does not serve: {phantom}"


def test_the_document_is_not_served() -> None:
    """It stays a file: a route for it could collide with Ollama's paths."""
    assert not any("openapi" in path for path, _ in served_routes())


@pytest.mark.parametrize(
    ("path", "method", "operation"), operations(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_operation_basics(path: str, method: str, operation: dict[str, Any]) -> None:
    assert operation.get("operationId"), f"{method.upper()} {path} has no operationId"
    assert operation.get("tags"), f"{method.upper()} {path} has no tag"
    statuses = set(operation["responses"])
    assert statuses <= KNOWN_STATUSES, (
        f"{method.upper()} {path}: unexpected statuses {statuses - KNOWN_STATUSES}"
    )
    # Every route answers 2xx for some request, but the ones that never can: model files (501) and
    # ollama.com's account and web tools (this server is never connected to it).
    never_succeeds = {"501"} if statuses == {"501"} else set()
    if operation["tags"] == ["cloud"] and statuses in ({"401"}, {"403"}):
        never_succeeds = statuses
    assert any(s.startswith("2") for s in statuses) or never_succeeds


def test_ollama_errors_are_documented_as_the_error_shape() -> None:
    """Every 4xx/5xx outside /v1 and the operator probes is {"error": "<message>"} (HEAD: no body)."""
    spec = load_spec()
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    for path, method, operation in operations():
        if path.startswith("/v1/") or path == "/ready" or method == "head":
            continue
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                content = resolve(spec, response).get("content", {})
                assert list(content) == ["application/json"], (path, method, status)
                assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                    path,
                    method,
                    status,
                )


def test_streaming_routes_document_ndjson() -> None:
    spec = load_spec()
    for path in ("/api/chat", "/api/generate", "/api/pull"):
        content = spec["paths"][path]["post"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "application/x-ndjson"}, path


def request_examples() -> list[tuple[str, str, Any]]:
    found = []
    for path, method, operation in operations():
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        for name, example in (body.get("examples") or {}).items():
            found.append((f"{method.upper()} {path} {name}", body["schema"]["$ref"], example["value"]))
        if "example" in body:
            found.append((f"{method.upper()} {path}", body["schema"]["$ref"], body["example"]))
    return found


@pytest.mark.parametrize(
    ("label", "ref", "example"), request_examples(), ids=lambda v: v if " " in str(v) else ""
)
def test_request_examples_are_valid_and_use_served_models(label: str, ref: str, example: Any) -> None:
    spec = load_spec()
    validator = Draft202012Validator({"$ref": ref, "components": spec["components"]})
    errors = [e.message for e in validator.iter_errors(example)]
    assert not errors, f"{label}: {errors}"
    model = example.get("model")
    if model is not None:
        aliases = {name.lower() for name in load_catalog_file(EXAMPLE_CATALOG).aliases}
        base = model.lower().removesuffix(":latest")
        assert model in DEFAULT_MODELS or base in aliases, (
            f"{label}: {model!r} is not served by the fake upstream"
        )


def test_the_examples_exercise_every_json_request_body() -> None:
    spec = load_spec()
    labels = {
        label.rsplit(" ", 1)[0] if label.count(" ") > 1 else label for label, _, _ in request_examples()
    }
    for path, method, operation in operations():
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            assert f"{method.upper()} {path}" in labels, f"{method.upper()} {path} has no request example"
    assert spec["info"]["title"] == "falcon-ollama"
