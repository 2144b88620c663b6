"""The usage ledger: requests, prompt and completion tokens per hour x tenant x model, durable (issue 15).

Prometheus counters say what a worker counted since it started; the ledger says who spent what, across
restarts, for ``falcon-ollama usage``. Each finished request of a named tenant adds one row's worth:

- with ``FALCON_OLLAMA_REDIS_URL``, in Redis: one hash per hour (``falcon-ollama:ledger:2026120503``), field
  ``tenant\\x1fmodel\\x1fkind`` incremented (HINCRBY, in one pipeline), plus a set of the hours; as durable
  as that Redis is configured to be (AOF/RDB);
- else in SQLite at ``FALCON_OLLAMA_LEDGER_PATH`` (default under the user's state directory, never on a RAM
  file system), WAL mode with ``synchronous=NORMAL``: a committed write survives the process being killed.

A write happens after the answer went out (in a thread for SQLite, bounded by the limit-store timeout); one
that fails is logged with its figures so they can be added by hand, never silently dropped. The app waits
for writes still in flight when it shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from falcon_ollama.secret_urls import redacted_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("falcon_ollama.ledger")

_SEP: Final = "\x1f"
_HOURS_KEY: Final = "falcon-ollama:ledger:hours"
_HOUR_PREFIX: Final = "falcon-ollama:ledger:"
_SCHEMA: Final = """CREATE TABLE IF NOT EXISTS usage (
    hour TEXT NOT NULL, tenant TEXT NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (hour, tenant, model))"""
_UPSERT: Final = """INSERT INTO usage VALUES (?, ?, ?, 1, ?, ?)
    ON CONFLICT (hour, tenant, model) DO UPDATE SET requests = requests + 1,
    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens"""


def default_ledger_path() -> Path:
    """``~/.local/state/falcon-ollama/ledger.sqlite``: persistent (not /dev/shm), per user."""
    return Path.home() / ".local" / "state" / "falcon-ollama" / "ledger.sqlite"


@dataclass(frozen=True, slots=True)
class Usage:
    """One row: an hour (UTC, its start), a tenant, a model and what it used in that hour."""

    hour: datetime
    tenant: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_tag(moment: datetime) -> str:
    return hour_of(moment).strftime("%Y%m%d%H")


def _from_tag(tag: str) -> datetime:
    return datetime.strptime(tag, "%Y%m%d%H").replace(tzinfo=UTC)


class SqliteLedger:
    """The embedded ledger: one SQLite file, rows upserted per hour x tenant x model."""

    __slots__ = ("_conn", "_lock", "description", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"SQLite {path}"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a killed process
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def add_now(self, tenant: str, model: str, prompt: int, completion: int, at: datetime) -> None:
        with self._lock:
            try:
                self._connect().execute(_UPSERT, (_hour_tag(at), tenant, model, prompt, completion))
            except sqlite3.Error:
                self._close()
                raise

    async def add(self, tenant: str, model: str, prompt: int, completion: int, at: datetime) -> None:
        await asyncio.to_thread(self.add_now, tenant, model, prompt, completion, at)

    async def rows(self, since: datetime, tenant: str | None = None) -> list[Usage]:
        return await asyncio.to_thread(self._rows, since, tenant)

    def _rows(self, since: datetime, tenant: str | None) -> list[Usage]:
        if not self.path.exists():
            return []
        with self._lock:
            query = "SELECT * FROM usage WHERE hour >= ?" + (" AND tenant = ?" if tenant else "")
            args = (_hour_tag(since), tenant) if tenant else (_hour_tag(since),)
            found = self._connect().execute(query + " ORDER BY hour, tenant, model", args).fetchall()
        return [Usage(_from_tag(h), t, m, r, p, c) for h, t, m, r, p, c in found]

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        with self._lock:
            self._close()


class RedisLedger:
    """The shared ledger: a hash per hour in the limits' Redis, incremented in one pipeline per request."""

    __slots__ = ("_client", "_timeout", "_url", "description")

    def __init__(self, url: str, *, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._client: Redis | None = None
        self.description = f"Redis {redacted_url(url)}"

    def _connect(self) -> Redis:
        if self._client is None:
            from redis.asyncio import Redis

            self._client = Redis.from_url(
                self._url, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
            )
        return self._client

    async def add(self, tenant: str, model: str, prompt: int, completion: int, at: datetime) -> None:
        tag = _hour_tag(at)
        key = _HOUR_PREFIX + tag
        field = f"{tenant}{_SEP}{model}{_SEP}"
        pipe = self._connect().pipeline(transaction=True)
        pipe.hincrby(key, field + "requests", 1)
        pipe.hincrby(key, field + "prompt", prompt)
        pipe.hincrby(key, field + "completion", completion)
        pipe.sadd(_HOURS_KEY, tag)
        await asyncio.wait_for(pipe.execute(), self._timeout * 4)

    async def rows(self, since: datetime, tenant: str | None = None) -> list[Usage]:
        client = self._connect()
        first = _hour_tag(since)
        members = await client.smembers(_HOURS_KEY)
        tags = sorted(tag for tag in (_text(m) for m in members) if tag >= first)
        out: list[Usage] = []
        for tag in tags:
            fields = await client.hgetall(_HOUR_PREFIX + tag)
            sums: dict[tuple[str, str], dict[str, int]] = {}
            for raw, value in fields.items():
                name, model, kind = _text(raw).split(_SEP)
                if tenant is None or name == tenant:
                    sums.setdefault((name, model), {})[kind] = int(value)
            for (name, model), kinds in sorted(sums.items()):
                out.append(
                    Usage(
                        _from_tag(tag),
                        name,
                        model,
                        kinds.get("requests", 0),
                        kinds.get("prompt", 0),
                        kinds.get("completion", 0),
                    )
                )
        return out

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


Ledger = SqliteLedger | RedisLedger


def make_ledger(redis_url: str | None, path: str | None, *, timeout: float) -> Ledger:
    if redis_url:
        return RedisLedger(redis_url, timeout=timeout)
    return SqliteLedger(Path(path).expanduser() if path else default_ledger_path())


class LedgerWriter:
    """Writes each finished request in the background; :meth:`drain` waits for those in flight."""

    __slots__ = ("_tasks", "ledger")

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, tenant: str, model: str, prompt: int, completion: int) -> None:
        at = datetime.now(UTC)
        task = asyncio.get_running_loop().create_task(self._write(tenant, model, prompt, completion, at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, tenant: str, model: str, prompt: int, completion: int, at: datetime) -> None:
        try:
            await self.ledger.add(tenant, model, prompt, completion, at)
        except Exception as exc:
            log.error(
                "usage ledger %s: a write failed (%s); not recorded: tenant %s model %s hour %s "
                "1 request, %d prompt and %d completion tokens",
                self.ledger.description,
                type(exc).__name__,
                tenant,
                model,
                hour_of(at).isoformat(),
                prompt,
                completion,
            )

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ledger.close()


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (UTC when it has no offset) or an age such as ``90m``, ``2h``, ``1d``."""
    now = now or datetime.now(UTC)
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = text[:-1], text[-1:].lower()
    if unit in units and number.isdigit():
        return now - timedelta(seconds=int(number) * units[unit])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since: expected an ISO time or an age like 2h or 1d, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def totals(rows: Iterable[Usage]) -> tuple[int, int, int]:
    requests = prompt = completion = 0
    for row in rows:
        requests += row.requests
        prompt += row.prompt_tokens
        completion += row.completion_tokens
    return requests, prompt, completion
