"""Which models were used recently, for ``/api/ps``.

Ollama lists the models loaded in memory, each with the time it will be unloaded (``expires_at``: last use
plus ``keep_alive``). We have nothing to load, so "loaded" means "used within its keep-alive window": a
client that checks ``/api/ps`` after a chat sees the model it just used, and a ``keep_alive: 0`` request
"unloads" it. The record is per worker (no shared memory between gunicorn workers; see docs/api.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from falcon_ollama.catalog_config import ModelEntry
from falcon_ollama.tenants import current_tenant

# Go's time.Now().Add(math.MaxInt64): a negative keep_alive "never" expires, which prints as ~292 years ahead.
_FOREVER_SECONDS = (2**63 - 1) / 1e9


class RunningModels:
    """Per-worker record of recently used models and when each one "expires"."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expiry: dict[str, tuple[ModelEntry, float]] = {}

    def touch(self, entry: ModelEntry, keep_alive: float) -> None:
        """Record a use; ``keep_alive`` in seconds (``math.inf`` = forever, 0 = unload now)."""
        if keep_alive <= 0:
            self._expiry.pop(entry.name, None)
            return
        # Go saturates: a window longer than its largest duration (~292 years) is that duration.
        window = min(keep_alive, _FOREVER_SECONDS)
        self._expiry[entry.name] = (entry, self._clock() + window)

    def active(self) -> list[tuple[ModelEntry, float]]:
        """Models still within their window, latest expiry first (as Ollama sorts), expired ones dropped.

        A request's tenant sees only the models its patterns allow: another tenant's use is not its business.
        """
        now = self._clock()
        expired = [name for name, (_, until) in self._expiry.items() if until <= now]
        for name in expired:
            del self._expiry[name]
        tenant = current_tenant()
        active = [item for item in self._expiry.values() if tenant is None or tenant.may_use(item[0].name)]
        return sorted(active, key=lambda item: -item[1])
