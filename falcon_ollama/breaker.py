"""A circuit breaker per backend: after N failures in a row it opens, the backend is skipped for a
cooldown, then one request probes it (half-open): success closes it, failure opens it again.

Only fallback chains skip an open backend (a model served by one backend has nowhere else to go: its
requests still go there, and their outcome still moves the breaker). A failure is what would make a chain
fall back: 429, 5xx, connect failure, timeout. Readiness does not read the breaker alone (health.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half-open"]


class Breaker:
    """One backend's breaker; cheap (a few attribute reads per request), single event loop, no locks."""

    __slots__ = ("_clock", "_cooldown", "_failures", "_limit", "_opened_at", "_probing", "_state")

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._state: State = "closed"
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() >= self._opened_at + self._cooldown:
            return "half-open"
        return self._state

    @property
    def failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a request may go to this backend now. Past the cooldown, the first caller is the probe
        (and must end it with :meth:`success`, :meth:`failure` or :meth:`release`); others wait their turn."""
        if self._state == "closed":
            return True
        if self._probing:
            return False
        if self._state == "open" and self._clock() < self._opened_at + self._cooldown:
            return False
        self._state = "half-open"
        self._probing = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._state = "closed"
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self._state == "half-open" or self._failures >= self._limit:
            self._state = "open"
            self._opened_at = self._clock()

    def release(self) -> None:
        """A probe that ended with neither outcome (the client left): the next request probes again."""
        self._probing = False
