"""A memory budget per worker: the bytes one worker holds for requests in flight, bounded as a whole.

Per-request bounds (body, upstream answer, stream accumulators) cannot bound a worker holding a thousand
requests at once. Each request gets a :class:`Hold` for its lifetime (``FalconOllamaApp.__call__`` opens it
in the request's own task and releases it after the last byte is sent, however the request ends: answered,
failed, cancelled, client gone). What a request buffers is reserved against the worker's budget before (or
as) it is read:

* the request body: its ``Content-Length`` before a byte is read, else as it arrives;
* a non-streamed upstream answer, as it arrives;
* a translated stream's upstream bytes as they arrive, weighted by :data:`STREAM_WEIGHT`, up to what its
  decoder and translator may keep (twice FALCON_OLLAMA_MAX_STREAM_ACCUMULATED_BYTES of upstream bytes).

A reservation that would pass the budget is refused with 503 and ``Retry-After`` (each route answers it in
its own dialect, as it does the admission queue's 503); a stream already under way is never cut: its bytes
are *charged* (counted, never refused), so the requests that come next are refused instead.
``FALCON_OLLAMA_WORKER_MEMORY_BUDGET``; 0 turns it off (nothing is counted).

Tasks a request starts (embedding batches, a shared model-list refresh) copy its context, hence its hold:
what they reserve is the request's, and a hold released already ignores whatever comes later.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from falcon_ollama.errors import OllamaError

BUDGET_MESSAGE = "server busy, please try again.  the worker's memory budget for requests in flight is in use"
RETRY_AFTER_SECONDS = "1"
# The gauge of held bytes is updated when they moved by this much, or came back to 0: a multiprocess gauge
# write costs microseconds, more than the rest of a small request's bookkeeping here.
REPORT_STEP = 1024 * 1024
# What a stream's upstream bytes cost the worker, per byte, up to twice the accumulation bound (the decoder's
# buffer and the translator's kept text): 3, so a stream at its bound is charged 6 x the bound, what one
# measured (docs/deployment.md, *Memory*: its text, then the ``context`` built from it at the end).
STREAM_WEIGHT = 3
# What a request body and a non-streamed upstream answer cost the worker per byte read, all copies counted
# (the read chunks and their join, the parsed objects, the translated answer): a 64 MiB body added 190 MiB
# of RSS, a 128 MiB answer 171 MiB (benchmarks/worst_case_memory.py, docs/deployment.md). Reserving the
# raw bytes alone let a flood of both reach 2.3x the budget.
BODY_WEIGHT = 3
ANSWER_WEIGHT = 2


class MemoryBudget:
    """One per worker, when the budget is on (``limit`` > 0). ``on_refused`` counts a refusal;
    ``on_change`` is told the bytes held after reservations and releases that moved them (a gauge)."""

    __slots__ = ("held", "limit", "on_change", "on_refused", "peak", "reported")

    def __init__(
        self,
        limit: int,
        on_refused: Callable[[], None] | None = None,
        on_change: Callable[[float], None] | None = None,
    ) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self.on_refused = on_refused
        self.on_change = on_change
        self.reported = 0

    def report(self) -> None:
        """Tell ``on_change`` the bytes held, if they moved by :data:`REPORT_STEP` or came back to 0."""
        held = self.held
        if self.on_change is not None and (
            abs(held - self.reported) >= REPORT_STEP or (held == 0 and self.reported)
        ):
            self.reported = held
            self.on_change(held)

    def open(self) -> Hold:
        return Hold(self)


class Hold:
    """One request's reservations; :meth:`release` (idempotent) gives them all back and ends the hold."""

    __slots__ = ("_budget", "closed", "held")

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0
        self.closed = False

    def reserve(self, size: int) -> None:
        """Reserve ``size`` more bytes, or raise the 503 when the worker's budget cannot take them."""
        budget = self._budget
        if budget.held + size > budget.limit and not self.closed:  # a closed hold takes nothing
            if budget.on_refused is not None:
                budget.on_refused()
            raise OllamaError(503, BUDGET_MESSAGE, {"Retry-After": RETRY_AFTER_SECONDS})
        self.charge(size)
        budget.report()

    def charge(self, size: int) -> None:
        """Count ``size`` more bytes without refusing (a stream already under way)."""
        if self.closed:
            return
        budget = self._budget
        budget.held += size
        self.held += size
        if budget.held > budget.peak:
            budget.peak = budget.held

    def charge_stream(self, size: int) -> None:
        """Charge ``size`` upstream bytes of a translated stream (:data:`STREAM_WEIGHT` each); once per
        upstream read, so :meth:`charge` is inlined."""
        if self.closed:
            return
        size *= STREAM_WEIGHT
        budget = self._budget
        budget.held += size
        self.held += size
        if budget.held > budget.peak:
            budget.peak = budget.held

    def release(self) -> None:
        if self.closed:
            return
        self.closed = True
        budget = self._budget
        budget.held -= self.held
        self.held = 0
        budget.report()


_current: contextvars.ContextVar[Hold | None] = contextvars.ContextVar("falcon_ollama_hold", default=None)


def enter(hold: Hold) -> contextvars.Token[Hold | None]:
    """Make ``hold`` the current request's (call it in the request's own task)."""
    return _current.set(hold)


def leave(token: contextvars.Token[Hold | None], hold: Hold) -> None:
    """Release ``hold`` (the one :func:`enter` was given) and restore the context as it found it."""
    hold.release()
    _current.reset(token)


def current() -> Hold | None:
    return _current.get()


def reserve(size: int) -> None:
    """Reserve ``size`` bytes on the current request's hold (nothing outside a request, or budget off)."""
    hold = _current.get()
    if hold is not None and size > 0:
        hold.reserve(size)


def reserve_body(size: int) -> None:
    """Reserve what ``size`` bytes of request body will cost once read and parsed (:data:`BODY_WEIGHT`)."""
    reserve(size * BODY_WEIGHT)


def reserve_answer(size: int) -> None:
    """Reserve what ``size`` bytes of upstream answer will cost once parsed and translated."""
    reserve(size * ANSWER_WEIGHT)


def _ignore(size: int) -> None:
    return None


def stream_charger() -> Callable[[int], None]:
    """The current request's :meth:`Hold.charge_stream` (a no-op outside a request or with the budget off)."""
    hold = _current.get()
    return _ignore if hold is None else hold.charge_stream
