"""The HTTP edge's word that a request's client has gone, with no task per request waiting to hear it.

uvicorn reports a lost client only to a task awaiting ASGI ``receive``; watching every request that way
costs a task. Our protocol (http_guard.py) puts a :class:`GoneSignal` in each request's scope instead and
fires it when the connection is lost (or refused) before the response is complete; the upstream call
(resources/upstream_call.py) registers what to do then. Under another server the scope holds no signal,
and the upstream call falls back to a task awaiting ``receive``.
"""

from __future__ import annotations

from collections.abc import Callable

SCOPE_KEY = "falcon_ollama.client_gone"


class GoneSignal:
    """Fired once, when the request's client is gone; at most one callback waits on it."""

    __slots__ = ("_callback", "gone")

    def __init__(self) -> None:
        self.gone = False
        self._callback: Callable[[], None] | None = None

    def fire(self) -> None:
        if self.gone:
            return
        self.gone = True
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    def watch(self, callback: Callable[[], None]) -> None:
        """``callback()`` when the client goes (called by the caller at once if it has already gone)."""
        if self.gone:
            callback()
        else:
            self._callback = callback

    def unwatch(self) -> None:
        self._callback = None
