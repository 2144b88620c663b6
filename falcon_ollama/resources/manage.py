"""Model-management routes: pull answers success for models the upstream serves; the rest explain why not.

Apps such as Open WebUI and Home Assistant pull a model before first use. The upstream already "has" every
model it lists, so a pull of one of them succeeds at once (with Ollama's progress messages, so progress
bars finish); a pull of anything else is a 404. Creating, copying, pushing and deleting model files has no
meaning for a proxy: those answer 501 with a JSON error that says so.
"""

from __future__ import annotations

import falcon
import falcon.asgi

from falcon_ollama.catalog import Catalog
from falcon_ollama.errors import OllamaError
from falcon_ollama.limits import Limits
from falcon_ollama.ollama_types import ProgressResponse
from falcon_ollama.resources.common import (
    optional_bool,
    read_model_body,
    send_json,
)
from falcon_ollama.translate.models import digest
from falcon_ollama.wire import NDJSON_CONTENT_TYPE, ndjson_line


class PullResource:
    """``POST /api/pull``: success for a model the upstream serves, 404 for any other."""

    def __init__(self, catalog: Catalog, limits: Limits) -> None:
        self._catalog = catalog
        self._limits = limits

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body, name = await read_model_body(req, self._limits)
        stream = optional_bool(body, "stream")
        try:
            entry = await self._catalog.resolve(name)
        except OllamaError as exc:
            if exc.status == 404:
                raise OllamaError(404, "pull model manifest: file does not exist") from None
            raise
        if stream is False:
            success: ProgressResponse = {"status": "success"}
            send_json(resp, success)
            return
        layer = f"sha256:{digest(entry)}"
        steps: list[ProgressResponse] = [
            {"status": "pulling manifest"},
            {"status": f"pulling {digest(entry)[:12]}", "digest": layer},
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]
        resp.content_type = NDJSON_CONTENT_TYPE
        resp.data = b"".join(ndjson_line(step) for step in steps)


class NotManagedResource:
    """Push, create, copy, delete and blobs: a clear JSON error instead of a pretend success."""

    def __init__(self, route: str, methods: tuple[str, ...]) -> None:
        self._message = (
            f"{route} is not supported: falcon-ollama serves models from an OpenAI-compatible upstream "
            "and does not manage model files"
        )
        # Only the methods Ollama routes get the explanation; any other method stays a 405.
        for method in methods:
            setattr(self, f"on_{method.lower()}", self._refuse)

    async def _refuse(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **_: str) -> None:
        send_json(resp, {"error": self._message}, status=501)
