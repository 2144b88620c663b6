"""``/health`` (liveness) and ``/ready`` (readiness), on paths no Ollama client uses.

Both are cheap enough to poll every second: neither calls the upstream. Liveness only says the worker's
event loop answers. Readiness says this worker can serve models: its model list is loaded and the upstream
answered a refresh recently; otherwise 503 with the reason (the last refresh error, or "not loaded yet").
"""

from __future__ import annotations

import time
from collections.abc import Callable

import falcon
import falcon.asgi

from falcon_ollama.catalog import Catalog
from falcon_ollama.resources.common import send_json


class HealthResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, {"status": "ok"})

    on_head = on_get


class ReadyResource:
    def __init__(self, catalog: Catalog, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._catalog = catalog
        self._max_age = max_age
        self._clock = clock

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self._catalog.refresh_if_stale()
        last = self._catalog.last_success
        if last is None:
            reason = self._catalog.last_error or "the model list has not been loaded yet"
            send_json(resp, {"status": "unavailable", "reason": reason}, status=503)
            return
        age = self._clock() - last
        if age > self._max_age:
            reason = self._catalog.last_error or "no recent answer from the upstream"
            send_json(resp, {"status": "unavailable", "reason": f"{reason} ({age:.0f} s ago)"}, status=503)
            return
        send_json(resp, {"status": "ready", "models_age_seconds": round(age, 1)})

    on_head = on_get
