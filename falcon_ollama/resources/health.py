"""``/health`` (liveness) and ``/ready`` (readiness), on paths no Ollama client uses.

Both are cheap enough to poll every second: neither calls the upstream. Liveness only says the worker's
event loop answers. Readiness says this worker can serve models: at least one backend's model list is
loaded and was refreshed recently; otherwise 503 with the reason (the last refresh error, or "not loaded
yet"). Either way the body lists every backend's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import falcon
import falcon.asgi

from falcon_ollama.breaker import Breaker
from falcon_ollama.catalog import Catalog
from falcon_ollama.resources.common import send_json


class HealthResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, {"status": "ok"})

    on_head = on_get


class ReadyResource:
    """Ready while at least one backend's model list was refreshed within ``max_age``.

    The body lists each backend: ``{name, ready, breaker, models, last_error?}``. A backend's breaker state
    is shown but does not decide readiness by itself: a backend whose list is fresh is ready (its breaker
    only steers fallback chains), so a burst of 429s cannot take the whole service out of a load balancer.
    Errors are the mapped messages: never a backend's URL or key."""

    def __init__(
        self,
        catalog: Catalog,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
        breakers: Mapping[str, Breaker] | None = None,
    ) -> None:
        self._catalog = catalog
        self._max_age = max_age
        self._clock = clock
        self._breakers = breakers or {}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self._catalog.refresh_if_stale()
        now = self._clock()
        backends: list[dict[str, Any]] = []
        for name, last, error, models in self._catalog.backend_states():
            breaker = self._breakers.get(name)
            row: dict[str, Any] = {
                "name": name,
                "ready": last is not None and now - last <= self._max_age,
                "breaker": breaker.state if breaker is not None else "closed",
                "models": models,
            }
            if error is not None:
                row["last_error"] = error
            backends.append(row)
        last = self._catalog.last_success
        if last is None:
            reason = self._catalog.last_error or "the model list has not been loaded yet"
            body = {"status": "unavailable", "reason": reason, "backends": backends}
            send_json(resp, body, status=503)
            return
        age = now - last
        if age > self._max_age:
            reason = self._catalog.last_error or "no recent answer from the upstream"
            body = {"status": "unavailable", "reason": f"{reason} ({age:.0f} s ago)", "backends": backends}
            send_json(resp, body, status=503)
            return
        send_json(resp, {"status": "ready", "models_age_seconds": round(age, 1), "backends": backends})

    on_head = on_get
