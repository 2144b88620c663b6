"""Requests per minute per tenant, shared by every gunicorn worker of one machine (issue 15, embedded store).

Why SQLite: the workers are separate processes, so a per-process counter would let N workers accept N
times the limit. A SQLite database in WAL mode on a RAM file system (``/dev/shm`` when there is one) needs
no server, and ``BEGIN IMMEDIATE`` makes count-then-insert one atomic step across processes. The window is
a sliding log (one row per accepted request in the last 60 s), which holds "at most N in any minute"
exactly, unlike a fixed window (2N across a boundary) or a GCRA with a full-minute burst.

A check is a short blocking call (tens of microseconds; the lock wait is bounded by a busy timeout), so
:class:`falcon_ollama.limit_store.EmbeddedStore` runs it in a thread, never on the event loop. A store that
fails (locked past the timeout, disk error) raises ``sqlite3.Error``; the limiter's failure policy
(``FALCON_OLLAMA_LIMIT_STORE_FAILURE``) decides what the request gets. Limits across replicas: the Redis
store in the same module.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

_T = TypeVar("_T")
WINDOW: Final = 60.0
_BUSY_TIMEOUT_MS: Final = 200
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS hits (tenant TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS hits_tenant_at ON hits (tenant, at)",
    # Tokens charged per tenant and second (one row per charge), for tokens per minute.
    "CREATE TABLE IF NOT EXISTS tokens (tenant TEXT NOT NULL, at REAL NOT NULL, n INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tokens_tenant_at ON tokens (tenant, at)",
    # One lease per open stream; a lease past its expiry (its worker died) no longer counts.
    "CREATE TABLE IF NOT EXISTS leases (tenant TEXT NOT NULL, lease TEXT PRIMARY KEY, expires REAL NOT NULL)",
)


def default_store_path(key: str) -> Path:
    """A per-deployment file on RAM when available: workers of one configuration share it, others do not."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    tag = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return base / f"falcon-ollama-{os.getuid()}-{tag}.ratelimit.sqlite"


class RequestWindow:
    """A sliding one-minute window of accepted requests per tenant, in a SQLite file shared by processes."""

    __slots__ = ("_clock", "_conn", "_lock", "_path")

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            # Used from the event loop's worker threads, one at a time (self._lock).
            conn = sqlite3.connect(
                self._path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # counters on RAM: durability is not this table's job
            for statement in _SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def acquire(self, tenant: str, limit: int) -> float | None:
        """None when the request is accepted (and counted); else seconds until one would be accepted.

        A store error closes the connection (the next call opens a new one) and raises ``sqlite3.Error``."""

        def step(conn: sqlite3.Connection, now: float) -> float | None:
            conn.execute("DELETE FROM hits WHERE tenant = ? AND at <= ?", (tenant, now - WINDOW))
            count, oldest = conn.execute(
                "SELECT count(*), min(at) FROM hits WHERE tenant = ?", (tenant,)
            ).fetchone()
            if count >= limit:
                return max(0.001, oldest + WINDOW - now) if oldest is not None else WINDOW
            conn.execute("INSERT INTO hits (tenant, at) VALUES (?, ?)", (tenant, now))
            return None

        return self._locked(step)

    def _transaction(self, step: Callable[[sqlite3.Connection, float], _T]) -> _T:
        """``step`` in one ``BEGIN IMMEDIATE`` transaction (atomic across processes), under the lock."""
        conn = self._connect()
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = step(conn, now)
            conn.execute("COMMIT")
            return result
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _locked(self, step: Callable[[sqlite3.Connection, float], _T]) -> _T:
        with self._lock:
            try:
                return self._transaction(step)
            except sqlite3.Error:
                self._close()
                raise

    def tokens_wait(self, tenant: str, limit: int) -> float | None:
        """None while the tenant's tokens charged in the last minute are under ``limit``; else seconds until
        enough of them leave the window."""

        def step(conn: sqlite3.Connection, now: float) -> float | None:
            conn.execute("DELETE FROM tokens WHERE tenant = ? AND at <= ?", (tenant, now - WINDOW))
            rows = conn.execute("SELECT at, n FROM tokens WHERE tenant = ? ORDER BY at", (tenant,)).fetchall()
            return tokens_wait(rows, limit, now)

        return self._locked(step)

    def charge(self, tenant: str, tokens: int) -> None:
        """Count ``tokens`` against the tenant's tokens per minute, now."""

        def step(conn: sqlite3.Connection, now: float) -> None:
            conn.execute("INSERT INTO tokens (tenant, at, n) VALUES (?, ?, ?)", (tenant, now, tokens))

        self._locked(step)

    def open_lease(self, tenant: str, cap: int, lease: str, ttl: float) -> bool:
        """Take one of the tenant's ``cap`` stream slots as ``lease`` for ``ttl`` seconds; False when full."""

        def step(conn: sqlite3.Connection, now: float) -> bool:
            conn.execute("DELETE FROM leases WHERE expires <= ?", (now,))
            (count,) = conn.execute("SELECT count(*) FROM leases WHERE tenant = ?", (tenant,)).fetchone()
            if count >= cap:
                return False
            conn.execute(
                "INSERT INTO leases (tenant, lease, expires) VALUES (?, ?, ?)", (tenant, lease, now + ttl)
            )
            return True

        return self._locked(step)

    def renew_lease(self, lease: str, ttl: float) -> None:
        def step(conn: sqlite3.Connection, now: float) -> None:
            conn.execute("UPDATE leases SET expires = ? WHERE lease = ?", (now + ttl, lease))

        self._locked(step)

    def close_lease(self, lease: str) -> None:
        def step(conn: sqlite3.Connection, now: float) -> None:
            conn.execute("DELETE FROM leases WHERE lease = ?", (lease,))

        self._locked(step)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()


def tokens_wait(charges: list[tuple[float, int]], limit: int, now: float) -> float | None:
    """Given the charges (time, tokens) of the last minute, oldest first: None while their sum is under
    ``limit``, else the seconds until enough have left the window for the sum to be under it."""
    total = sum(n for _, n in charges)
    if total < limit:
        return None
    for at, n in charges:
        total -= n
        if total < limit:
            return max(0.001, at + WINDOW - now)
    return WINDOW  # not reached: the sum falls to 0 < limit


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up so a client that obeys it is accepted."""
    return str(max(1, math.ceil(seconds)))
