"""Every backend's ``Upstream`` and breaker, and the one place a request is sent along its route.

One :class:`Upstreams` per worker, built by ``create_app`` from ``Settings.backends`` (the implicit
``default`` backend when the catalog file declares none). :meth:`Upstreams.send` takes the request's route
(falcon_ollama/backends.py: the model's backend, or an alias's fallback chain) and tries its links in
order. It moves on to the next link on 429, 5xx, a connect failure or a timeout, all of which happen before
anything reached the client (a stream is handed to the relay only once its head arrived with a 2xx status:
from then on nothing falls back). A ``Retry-After`` no longer than ``FALCON_OLLAMA_FALLBACK_MAX_RETRY_AFTER``
is waited once on the same link; a longer one moves on at once. Links before the last are tried once (the
chain is the retry); the last link keeps its backend's own retries, so a one-link route behaves exactly as
the single upstream always did. A link whose breaker is open is skipped unless it is the last one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import orjson

from falcon_ollama.backends import Link, Route
from falcon_ollama.breaker import Breaker
from falcon_ollama.metrics import Metrics
from falcon_ollama.settings import Settings
from falcon_ollama.upstream import RetryPolicy, Upstream, UpstreamError

log = logging.getLogger("falcon_ollama.upstreams")

T = TypeVar("T")
# What one try sends: the backend's Upstream, the body for it, and whether its own retries apply.
Send = Callable[[Upstream, bytes, bool], Awaitable[T]]


def falls_back(exc: UpstreamError) -> bool:
    """Whether a failure lets a chain try its next link (and counts against the backend's breaker)."""
    status = exc.upstream_status
    if status is not None:
        return (status == 429 or status >= 500) and exc.status != 400  # a 500 refusing the request: no
    return exc.kind == "unreachable"


class Upstreams:
    """The backends of one worker, by name, in the catalog file's order."""

    def __init__(
        self, settings: Settings, metrics: Metrics | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self._metrics = metrics
        self._max_retry_after = settings.fallback_max_retry_after
        self._by_name = {b.name: Upstream(settings, retry, metrics, backend=b) for b in settings.backends}
        self.breakers = {
            name: Breaker(settings.breaker_failures, settings.breaker_cooldown) for name in self._by_name
        }
        self.first = next(iter(self._by_name.values()))
        # The text of the last failure of each backend (its mapped message: never its URL or key).
        self.last_errors: dict[str, str] = {}

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Upstream | None:
        return self._by_name.get(name)

    async def start(self) -> None:
        for upstream in self:
            await upstream.start()

    async def close(self) -> None:
        for upstream in self:
            await upstream.close()

    async def send(self, route: Route, body: bytes, attempt: Send[T]) -> T:
        """``attempt`` along ``route`` (empty: the first backend), as the module docstring says."""
        if not route:
            try:
                return await attempt(self.first, body, True)
            except UpstreamError as exc:
                raise self.first.without_address(exc) from None
        last = len(route) - 1
        error: UpstreamError | None = None
        for number, link in enumerate(route):
            upstream = self._by_name.get(link.backend)
            if upstream is None:  # cannot happen with a route built from this configuration
                continue
            breaker = self.breakers[link.backend]
            if number < last and not breaker.allow():
                log.info("backend %s is skipped: its breaker is open", link.backend)
                continue
            sent = body if number == 0 else with_model(body, link.model, route[0])
            try:
                return await self._try(upstream, breaker, sent, attempt, retries=number == last)
            except UpstreamError as exc:
                if number == last or not falls_back(exc):
                    raise
                error = exc
                following = route[number + 1].backend
                log.warning(
                    "backend %s failed (%s); falling back to %s", link.backend, exc.message, following
                )
                if self._metrics is not None:
                    self._metrics.backend_fallbacks.labels(link.backend, following).inc()
        assert error is not None  # the last link is never skipped
        raise error

    async def _try(
        self, upstream: Upstream, breaker: Breaker, body: bytes, attempt: Send[T], *, retries: bool
    ) -> T:
        waited = False
        while True:
            try:
                result = await attempt(upstream, body, retries)
            except UpstreamError as exc:
                upstream.without_address(exc)
                if not falls_back(exc):
                    breaker.success()  # it answered: a refusal of this request says nothing about health
                    raise
                breaker.failure()
                self.last_errors[upstream.name] = exc.message
                wait = exc.retry_after
                if retries or waited or wait is None or wait > self._max_retry_after:
                    raise
                waited = True
                await asyncio.sleep(wait)
                continue
            except BaseException:
                breaker.release()
                raise
            breaker.success()
            return result


def with_model(body: bytes, model: str, first: Link) -> bytes:
    """The request body for another link of a chain: the same request, its ``model`` that link's id."""
    if model == first.model:
        return body
    data = orjson.loads(body)
    if isinstance(data, dict) and "model" in data:
        data["model"] = model
        return orjson.dumps(data)
    return body
