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
from typing import Final

WINDOW: Final = 60.0
_BUSY_TIMEOUT_MS: Final = 200
_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS hits (tenant TEXT NOT NULL, at REAL NOT NULL)"
_INDEX: Final = "CREATE INDEX IF NOT EXISTS hits_tenant_at ON hits (tenant, at)"


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
            conn = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # counters on RAM: durability is not this table's job
            conn.execute(_SCHEMA)
            conn.execute(_INDEX)
            self._conn = conn
        return self._conn

    def acquire(self, tenant: str, limit: int) -> float | None:
        """None when the request is accepted (and counted); else seconds until one would be accepted.

        A store error closes the connection (the next call opens a new one) and raises ``sqlite3.Error``."""
        with self._lock:
            try:
                return self._acquire(tenant, limit)
            except sqlite3.Error:
                self._close()
                raise

    def _acquire(self, tenant: str, limit: int) -> float | None:
        conn = self._connect()
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM hits WHERE tenant = ? AND at <= ?", (tenant, now - WINDOW))
            count, oldest = conn.execute(
                "SELECT count(*), min(at) FROM hits WHERE tenant = ?", (tenant,)
            ).fetchone()
            if count >= limit:
                conn.execute("COMMIT")
                return max(0.001, oldest + WINDOW - now) if oldest is not None else WINDOW
            conn.execute("INSERT INTO hits (tenant, at) VALUES (?, ?)", (tenant, now))
            conn.execute("COMMIT")
            return None
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up so a client that obeys it is accepted."""
    return str(max(1, math.ceil(seconds)))
