"""Where the tenants' limit counters live, and what a request sees when that place fails (issue 15).

Two stores answer one question, "may this tenant make one more request now, and if not, in how long?":

- :class:`EmbeddedStore`, the SQLite window of :mod:`falcon_ollama.ratelimit`, shared by the gunicorn
  workers of one machine. Its blocking work (a write lock across processes) runs in a thread, so the event
  loop never waits on another process's lock.
- :class:`RedisStore` (``FALCON_OLLAMA_REDIS_URL``), shared by every replica that reaches one Redis. A check
  is one round trip: a Lua script keeps a sliding log per tenant in a sorted set and reads Redis's own clock
  (``TIME``), so replicas with skewed clocks still count one window.

Every check is bounded by ``FALCON_OLLAMA_LIMIT_STORE_TIMEOUT``. A store that fails or is slow raises
:class:`StoreUnavailable`; :class:`Limiter` then applies ``FALCON_OLLAMA_LIMIT_STORE_FAILURE``: ``open``
(the default) lets the request through uncounted, with one loud log line per outage, the gauge
``falcon_ollama_limit_store_up`` at 0 and ``falcon_ollama_limit_store_errors_total`` counting; ``closed``
refuses at once (503). After a failure the Redis store is not asked again for a back-off that doubles up to
``FALCON_OLLAMA_REDIS_MAX_BACKOFF``, so an outage costs no timeout per request. The Redis password never
reaches a log or an error: only :func:`falcon_ollama.redaction.redacted_url` of the URL is shown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from falcon_ollama.ratelimit import WINDOW, RequestWindow
from falcon_ollama.secret_urls import redacted_url

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from falcon_ollama.metrics import Metrics

log = logging.getLogger("falcon_ollama.limits")

FAIL_OPEN: Final = "open"
FAIL_CLOSED: Final = "closed"
FAILURE_POLICIES: Final = (FAIL_OPEN, FAIL_CLOSED)
_FIRST_BACKOFF: Final = 0.5
_KEY_PREFIX: Final = "falcon-ollama:rpm:"

# A sliding log in a sorted set scored by Redis's clock in microseconds. KEYS[1]: the tenant's set;
# ARGV: the limit, the window in microseconds, a unique member. Returns 0 when the request was counted,
# else the microseconds until the oldest entry leaves the window (at least 1).
_SLIDING_LOG: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
return 0
"""


class StoreUnavailable(Exception):
    """The store did not answer in time or failed; the message never holds a password."""


class LimitStore(Protocol):
    """Counts a tenant's requests in a sliding minute, atomically for every process that shares it."""

    description: str

    async def acquire(self, tenant: str, limit: int) -> float | None:
        """None when accepted (and counted), else seconds until one would be; StoreUnavailable on failure."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class EmbeddedStore:
    """The machine-wide SQLite window, its blocking calls in a worker thread, bounded by ``timeout``."""

    __slots__ = ("_timeout", "_window", "description")

    def __init__(self, path: Path, *, timeout: float) -> None:
        self._window = RequestWindow(path)
        self._timeout = timeout
        self.description = f"embedded SQLite {path}"

    async def acquire(self, tenant: str, limit: int) -> float | None:
        try:
            work = asyncio.to_thread(self._window.acquire, tenant, limit)
            return await asyncio.wait_for(work, self._timeout)
        except TimeoutError:
            raise StoreUnavailable(f"no answer within {self._timeout:g}s") from None
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from None

    async def ping(self) -> None:
        await self.acquire("\x00ping", 1_000_000_000)

    async def close(self) -> None:
        await asyncio.to_thread(self._window.close)


class RedisStore:
    """Limits in one Redis shared by every replica: one Lua script per check, Redis's clock, a back-off."""

    __slots__ = (
        "_backoff",
        "_client",
        "_down_until",
        "_max_backoff",
        "_script",
        "_timeout",
        "_url",
        "description",
    )

    def __init__(self, url: str, *, timeout: float, max_backoff: float) -> None:
        self._url = url
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._client: Redis | None = None
        self._script: AsyncScript | None = None
        self._backoff = 0.0
        self._down_until = 0.0
        self.description = f"Redis {redacted_url(url)}"

    def _connect(self) -> AsyncScript:
        if self._script is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),  # our own back-off: a retry here would double the wait
                health_check_interval=0,
            )
            self._script = self._client.register_script(_SLIDING_LOG)
        return self._script

    async def acquire(self, tenant: str, limit: int) -> float | None:
        micros = await self._call(self._connect(), _KEY_PREFIX + tenant, limit)
        return None if micros == 0 else micros / 1e6

    async def _call(self, script: AsyncScript, key: str, limit: int) -> int:
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable(f"not retried for {self._down_until - now:.1f}s after a failure")
        try:
            member = os.urandom(8).hex()
            coro = script(keys=[key], args=[limit, int(WINDOW * 1e6), member])
            result = int(await asyncio.wait_for(coro, self._timeout))
        except Exception as exc:  # redis errors, timeouts, a refused connection: all one outage
            self._backoff = min(self._max_backoff, self._backoff * 2 or _FIRST_BACKOFF)
            self._down_until = time.monotonic() + self._backoff
            reason = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise StoreUnavailable(f"{reason} (next try in {self._backoff:g}s)") from None
        self._backoff = 0.0
        return result

    async def ping(self) -> None:
        self._connect()
        assert self._client is not None
        try:
            await asyncio.wait_for(self._client.ping(), self._timeout)
        except Exception as exc:
            raise StoreUnavailable(_describe(exc)) from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._script = None


def _describe(exc: BaseException) -> str:
    """An error's class and text, without the URL (redis-py names host and port, never the password)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


class Limiter:
    """A store plus the failure policy, the outage log line and the store metrics."""

    __slots__ = ("_fail_closed", "_metrics", "_up", "store")

    def __init__(
        self, store: LimitStore, *, fail_closed: bool = False, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self._fail_closed = fail_closed
        self._metrics = metrics
        self._up = True
        if metrics is not None:
            metrics.limit_store_up.set(1)

    @property
    def fail_closed(self) -> bool:
        return self._fail_closed

    async def acquire(self, tenant: str, limit: int) -> float | None:
        """None: go on (counted, or uncounted while the store is down and the policy is open); a number:
        refused for that many seconds. Raises StoreUnavailable only when the policy is closed."""
        try:
            wait = await self.store.acquire(tenant, limit)
        except StoreUnavailable as exc:
            self._failed(exc)
            if self._fail_closed:
                raise
            return None
        if not self._up:
            self._up = True
            log.warning("limit store %s is back: requests are counted again", self.store.description)
            if self._metrics is not None:
                self._metrics.limit_store_up.set(1)
        return wait

    def _failed(self, exc: StoreUnavailable) -> None:
        if self._metrics is not None:
            self._metrics.limit_store_errors.inc()
        if self._up:
            self._up = False
            if self._metrics is not None:
                self._metrics.limit_store_up.set(0)
            outcome = "refused (503)" if self._fail_closed else "ACCEPTED UNCOUNTED"
            log.error(
                "LIMIT STORE DOWN: %s failed (%s); tenants' requests are %s until it is back",
                self.store.description,
                exc,
                outcome,
            )


def make_store(
    redis_url: str | None, embedded_path: Path, *, timeout: float, max_backoff: float
) -> LimitStore:
    """Redis when a URL is configured, else the embedded store at ``embedded_path``."""
    if redis_url:
        return RedisStore(redis_url, timeout=timeout, max_backoff=max_backoff)
    return EmbeddedStore(embedded_path, timeout=timeout)
