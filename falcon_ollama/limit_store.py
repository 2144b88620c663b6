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
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from falcon_ollama.ratelimit import WINDOW, RequestWindow
from falcon_ollama.secret_urls import redacted_url

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

    from falcon_ollama.metrics import Metrics

log = logging.getLogger("falcon_ollama.limits")
_T = TypeVar("_T")

FAIL_OPEN: Final = "open"
FAIL_CLOSED: Final = "closed"
FAILURE_POLICIES: Final = (FAIL_OPEN, FAIL_CLOSED)
_FIRST_BACKOFF: Final = 0.5
DEFAULT_LEASE_SECONDS: Final = 60.0
_KEY_PREFIX: Final = "falcon-ollama:"

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


# Tokens per minute: a hash per tenant, field = Redis's second, value = tokens charged in it (at most 60
# fields live). CHECK: KEYS[1], ARGV[1] the limit; returns 0 while under it, else the seconds until enough
# charges leave the minute. CHARGE: KEYS[1], ARGV[1] tokens.
_TOKENS_CHECK: Final = """
local now = tonumber(redis.call('TIME')[1])
local limit = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local total, seconds = 0, {}
for i = 1, #all, 2 do
  local at, n = tonumber(all[i]), tonumber(all[i + 1])
  if at <= now - 60 then
    redis.call('HDEL', KEYS[1], all[i])
  else
    total = total + n
    table.insert(seconds, {at, n})
  end
end
if total < limit then return 0 end
table.sort(seconds, function(a, b) return a[1] < b[1] end)
for _, entry in ipairs(seconds) do
  total = total - entry[2]
  if total < limit then return math.max(1, entry[1] + 60 - now) end
end
return 60
"""
_TOKENS_CHARGE: Final = """
local now = redis.call('TIME')[1]
redis.call('HINCRBY', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], 120)
return 0
"""
# Concurrent streams: a sorted set per tenant, member = lease, score = its expiry on Redis's clock (µs).
# OPEN: KEYS[1], ARGV cap, ttl µs, lease; 1 when taken, 0 when the tenant is at its cap. RENEW: the same
# key, ARGV ttl µs, lease (only an existing lease). CLOSE is a ZREM.
_LEASE_OPEN: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000) + 1000)
return 1
"""
_LEASE_RENEW: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
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

    async def tokens_wait(self, tenant: str, limit: int) -> float | None:
        """None while the tokens charged in the last minute are under ``limit``, else seconds to wait."""
        ...

    async def charge(self, tenant: str, tokens: int) -> None: ...

    async def open_lease(self, tenant: str, cap: int, lease: str, ttl: float) -> bool:
        """Take a stream slot for ``ttl`` seconds (renewable); False when the tenant holds ``cap``."""
        ...

    async def renew_lease(self, tenant: str, lease: str, ttl: float) -> None: ...

    async def close_lease(self, tenant: str, lease: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class EmbeddedStore:
    """The machine-wide SQLite window, its blocking calls in a worker thread, bounded by ``timeout``."""

    __slots__ = ("_timeout", "_window", "description")

    def __init__(self, path: Path, *, timeout: float) -> None:
        self._window = RequestWindow(path)
        self._timeout = timeout
        self.description = f"embedded SQLite {path}"

    async def _run(self, call: Callable[..., _T], *args: object) -> _T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, *args), self._timeout)
        except TimeoutError:
            raise StoreUnavailable(f"no answer within {self._timeout:g}s") from None
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from None

    async def acquire(self, tenant: str, limit: int) -> float | None:
        return await self._run(self._window.acquire, tenant, limit)

    async def tokens_wait(self, tenant: str, limit: int) -> float | None:
        return await self._run(self._window.tokens_wait, tenant, limit)

    async def charge(self, tenant: str, tokens: int) -> None:
        await self._run(self._window.charge, tenant, tokens)

    async def open_lease(self, tenant: str, cap: int, lease: str, ttl: float) -> bool:
        return await self._run(self._window.open_lease, tenant, cap, lease, ttl)

    async def renew_lease(self, tenant: str, lease: str, ttl: float) -> None:
        await self._run(self._window.renew_lease, lease, ttl)

    async def close_lease(self, tenant: str, lease: str) -> None:
        await self._run(self._window.close_lease, lease)

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
        "_scripts",
        "_timeout",
        "_url",
        "description",
    )

    def __init__(self, url: str, *, timeout: float, max_backoff: float) -> None:
        self._url = url
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._backoff = 0.0
        self._down_until = 0.0
        self.description = f"Redis {redacted_url(url)}"

    def _script(self, source: str) -> AsyncScript:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._connect().register_script(source)
        return script

    def _connect(self) -> Redis:
        if self._client is None:
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
        return self._client

    async def acquire(self, tenant: str, limit: int) -> float | None:
        args = (limit, int(WINDOW * 1e6), os.urandom(8).hex())
        micros = await self._call(_SLIDING_LOG, f"{_KEY_PREFIX}rpm:{tenant}", *args)
        return None if micros == 0 else micros / 1e6

    async def tokens_wait(self, tenant: str, limit: int) -> float | None:
        seconds = await self._call(_TOKENS_CHECK, f"{_KEY_PREFIX}tpm:{tenant}", limit)
        return None if seconds == 0 else float(seconds)

    async def charge(self, tenant: str, tokens: int) -> None:
        await self._call(_TOKENS_CHARGE, f"{_KEY_PREFIX}tpm:{tenant}", tokens)

    async def open_lease(self, tenant: str, cap: int, lease: str, ttl: float) -> bool:
        return (
            await self._call(_LEASE_OPEN, f"{_KEY_PREFIX}streams:{tenant}", cap, int(ttl * 1e6), lease) == 1
        )

    async def renew_lease(self, tenant: str, lease: str, ttl: float) -> None:
        await self._call(_LEASE_RENEW, f"{_KEY_PREFIX}streams:{tenant}", int(ttl * 1e6), lease)

    async def close_lease(self, tenant: str, lease: str) -> None:
        client = self._connect()
        await self._bounded(client.zrem(f"{_KEY_PREFIX}streams:{tenant}", lease))

    async def _call(self, source: str, key: str, *args: int | str) -> int:
        script = self._script(source)
        return int(await self._bounded(script(keys=[key], args=list(args))))

    async def _bounded(self, call: Awaitable[_T]) -> _T:
        """``call`` within the timeout; a failure starts (or lengthens) the back-off."""
        now = time.monotonic()
        if now < self._down_until:
            if asyncio.iscoroutine(call):
                call.close()
            raise StoreUnavailable(f"not retried for {self._down_until - now:.1f}s after a failure")
        try:
            result = await asyncio.wait_for(call, self._timeout)
        except Exception as exc:  # redis errors, timeouts, a refused connection: all one outage
            self._backoff = min(self._max_backoff, self._backoff * 2 or _FIRST_BACKOFF)
            self._down_until = time.monotonic() + self._backoff
            reason = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise StoreUnavailable(f"{reason} (next try in {self._backoff:g}s)") from None
        self._backoff = 0.0
        return result

    async def ping(self) -> None:
        try:
            await asyncio.wait_for(self._connect().ping(), self._timeout)
        except Exception as exc:
            raise StoreUnavailable(_describe(exc)) from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._scripts.clear()


def _describe(exc: BaseException) -> str:
    """An error's class and text, without the URL (redis-py names host and port, never the password)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


class Limiter:
    """A store plus the failure policy, the outage log line and the store metrics.

    Checks (:meth:`acquire`, :meth:`tokens_wait`, :meth:`open_stream`) follow the policy: store down and
    open, the request goes on; closed, :class:`StoreUnavailable` is raised for a 503. What happens after an
    answer (charging tokens, releasing or renewing a stream's lease) runs in the background and is only
    logged and counted when it fails: the request it belongs to is already answered."""

    __slots__ = ("_fail_closed", "_lease_seconds", "_metrics", "_tasks", "_up", "store")

    def __init__(
        self,
        store: LimitStore,
        *,
        fail_closed: bool = False,
        metrics: Metrics | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self._fail_closed = fail_closed
        self._metrics = metrics
        self._lease_seconds = lease_seconds
        self._up = True
        self._tasks: set[asyncio.Task[None]] = set()  # background work, referenced until done
        if metrics is not None:
            metrics.limit_store_up.set(1)

    @property
    def fail_closed(self) -> bool:
        return self._fail_closed

    async def acquire(self, tenant: str, limit: int) -> float | None:
        """None: go on (counted, or uncounted while the store is down and the policy is open); a number:
        refused for that many seconds. Raises StoreUnavailable only when the policy is closed."""
        return await self._checked(self.store.acquire(tenant, limit), None)

    async def tokens_wait(self, tenant: str, limit: int) -> float | None:
        """None while the tenant's tokens of the last minute are under ``limit`` (or the store is down and
        the policy open), else seconds until they will be."""
        return await self._checked(self.store.tokens_wait(tenant, limit), None)

    async def open_stream(self, tenant: str, cap: int) -> StreamLease | None:
        """A lease on one of the tenant's ``cap`` concurrent streams, renewed until closed; None when the
        tenant already streams ``cap`` times. Store down and open: a lease that holds nothing."""
        lease = os.urandom(12).hex()
        taken = await self._checked(self.store.open_lease(tenant, cap, lease, self._lease_seconds), None)
        if taken is False:
            return None
        return StreamLease(self, tenant, lease if taken else None)

    def charge(self, tenant: str, tokens: int) -> None:
        """Count ``tokens`` against the tenant's tokens per minute (in the background)."""
        if tokens > 0:
            self.background(self.store.charge(tenant, tokens))

    def refused(self, tenant: str, limit: str) -> None:
        if self._metrics is not None:
            self._metrics.tenant_limited.labels(tenant, limit).inc()

    def background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            with contextlib.suppress(StoreUnavailable):
                await self._checked(work, None)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _checked(self, call: Awaitable[_T], default: _T) -> _T:
        try:
            result = await call
        except StoreUnavailable as exc:
            self._failed(exc)
            if self._fail_closed:
                raise
            return default
        if not self._up:
            self._up = True
            log.warning("limit store %s is back: requests are counted again", self.store.description)
            if self._metrics is not None:
                self._metrics.limit_store_up.set(1)
        return result

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


class StreamLease:
    """One stream's slot: renewed every third of the lease time until :meth:`close` (then released). A
    worker killed mid-stream renews nothing, so its slots expire by themselves."""

    __slots__ = ("_lease", "_limiter", "_renewal", "_tenant")

    def __init__(self, limiter: Limiter, tenant: str, lease: str | None) -> None:
        self._limiter = limiter
        self._tenant = tenant
        self._lease = lease  # None: taken while the store was down (nothing to renew or release)
        self._renewal = asyncio.get_running_loop().create_task(self._renew()) if lease else None

    async def _renew(self) -> None:
        limiter, lease = self._limiter, self._lease
        assert lease is not None
        seconds = limiter._lease_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            with contextlib.suppress(StoreUnavailable):
                await limiter._checked(limiter.store.renew_lease(self._tenant, lease, seconds), None)

    def close(self) -> None:
        """Stop renewing and release the slot (in the background); a second call does nothing."""
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
        if self._lease is not None:
            self._limiter.background(self._limiter.store.close_lease(self._tenant, self._lease))
            self._lease = None


def make_store(
    redis_url: str | None, embedded_path: Path, *, timeout: float, max_backoff: float
) -> LimitStore:
    """Redis when a URL is configured, else the embedded store at ``embedded_path``."""
    if redis_url:
        return RedisStore(redis_url, timeout=timeout, max_backoff=max_backoff)
    return EmbeddedStore(embedded_path, timeout=timeout)
