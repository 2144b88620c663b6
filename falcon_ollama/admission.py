"""Backpressure: a bounded number of upstream requests per worker, and a bounded queue in front of it.

Like Ollama's ``OLLAMA_NUM_PARALLEL`` / ``OLLAMA_MAX_QUEUE``: up to ``max_in_flight`` requests talk to the
upstream at once (a stream holds its slot until its last byte); up to ``max_queue`` more wait, first come
first served; beyond that a request is refused at once with Ollama's own 503 text, so a flood degrades into
fast refusals instead of unbounded memory and latency for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from falcon_ollama.errors import OllamaError
from falcon_ollama.metrics import Metrics

BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"


class Slot:
    """One admitted request; :meth:`release` is idempotent, so every exit path may call it."""

    __slots__ = ("_admission", "_released")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release()


class Admission:
    """Per-worker admission control (one per app, built by ``create_app``)."""

    def __init__(self, max_in_flight: int, max_queue: int, metrics: Metrics | None = None) -> None:
        self._max_in_flight = max_in_flight
        self._max_queue = max_queue
        self._metrics = metrics
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> Slot | None:
        """A slot if one is free and nobody waits for one, else None (no coroutine on the usual path)."""
        if self._in_flight < self._max_in_flight and not self._waiters:
            self._in_flight += 1
            return Slot(self)
        return None

    async def acquire(self) -> Slot:
        """A slot now, or after waiting in the queue; 503 when the queue is full too."""
        slot = self.try_acquire()
        if slot is not None:
            return slot
        if len(self._waiters) >= self._max_queue:
            if self._metrics is not None:
                self._metrics.rejected.labels("busy").inc()
            raise OllamaError(503, BUSY_MESSAGE)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed to us just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # _release may already have dropped it
                    self._waiters.remove(waiter)
            raise
        return Slot(self)  # the releasing request handed its slot over; _in_flight is unchanged

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1
