"""The HTTP edge's table: every domain error kind has its status; subclasses inherit their base's."""

from __future__ import annotations

import pytest

from falcon_ollama.errors import (
    InvalidRequest,
    ModelNotFound,
    ProxyError,
    TooLarge,
    Unsupported,
    UpstreamProtocolError,
)
from falcon_ollama.resources.error_map import status_of


class _NarrowInvalid(InvalidRequest):
    pass


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidRequest("bad"), 400),
        (Unsupported("no tools"), 400),
        (TooLarge("big"), 413),
        (ModelNotFound("model 'x' not found"), 404),
        (UpstreamProtocolError("not JSON"), 502),
        (_NarrowInvalid("narrow"), 400),
        (ProxyError("unclassified"), 500),
    ],
)
def test_status_of(error: ProxyError, status: int) -> None:
    assert status_of(error) == status


async def test_domain_error_reaches_the_client_in_ollama_shape() -> None:
    """A domain error raised below a resource is answered by the app's handler with the table's status."""
    import falcon
    import falcon.testing

    from falcon_ollama.app import create_app
    from falcon_ollama.settings import Settings

    app = create_app(
        Settings.from_mapping(
            {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "FALCON_OLLAMA_CHECK_HOST": "false"}
        )
    )

    class _Raises:
        async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
            raise TooLarge("too many things (limit 3)", {"X-Limit": "3"})

    app.add_route("/raise", _Raises())
    result = await falcon.testing.ASGIConductor(app).simulate_get("/raise")
    assert result.status_code == 413
    assert result.json == {"error": "too many things (limit 3)"}
    assert result.headers["x-limit"] == "3"
