"""MemoryBudget and Hold on their own: refusals, charges never refused, releases, the gauge's steps."""

from __future__ import annotations

import pytest

from falcon_ollama import memory_budget
from falcon_ollama.errors import OllamaError
from falcon_ollama.memory_budget import BUDGET_MESSAGE, REPORT_STEP, STREAM_WEIGHT, MemoryBudget


def test_reservations_beyond_the_limit_are_refused_with_retry_after() -> None:
    refused: list[int] = []
    budget = MemoryBudget(100, on_refused=lambda: refused.append(1))
    first, second = budget.open(), budget.open()
    first.reserve(60)
    with pytest.raises(OllamaError) as caught:
        second.reserve(41)
    assert (caught.value.status, caught.value.message) == (503, BUDGET_MESSAGE)
    assert caught.value.headers == {"Retry-After": "1"}
    assert refused == [1] and budget.held == 60
    second.reserve(40)  # exactly the limit
    second.charge_stream(10)  # a stream under way passes the limit: counted, never refused
    assert budget.held == 100 + 10 * STREAM_WEIGHT and budget.peak == budget.held
    first.release()
    second.release()
    assert budget.held == 0


def test_a_released_hold_takes_nothing_more() -> None:
    """A task that outlives its request (a shared model-list refresh) cannot leave bytes held."""
    budget = MemoryBudget(100)
    hold = budget.open()
    hold.reserve(50)
    hold.release()
    hold.release()  # idempotent
    hold.reserve(1_000)  # neither refused nor counted
    hold.charge(10)
    hold.charge_stream(10)
    assert budget.held == 0 and hold.held == 0


def test_the_context_helpers_reach_the_current_hold_only() -> None:
    budget = MemoryBudget(100)
    memory_budget.reserve(1_000)  # outside a request: nothing
    memory_budget.stream_charger()(1_000)
    hold = budget.open()
    token = memory_budget.enter(hold)
    memory_budget.reserve(30)
    memory_budget.stream_charger()(5)
    assert budget.held == 30 + 5 * STREAM_WEIGHT and memory_budget.current() is hold
    memory_budget.leave(token, hold)
    assert budget.held == 0 and memory_budget.current() is None


def test_the_gauge_moves_in_steps_and_always_back_to_zero() -> None:
    seen: list[float] = []
    budget = MemoryBudget(10 * REPORT_STEP, on_change=seen.append)
    small = budget.open()
    small.reserve(1_000)
    small.release()
    assert seen == []  # a small request costs no gauge write
    big = budget.open()
    big.reserve(REPORT_STEP)
    big.reserve(10)
    big.release()
    assert seen == [REPORT_STEP, 0]


def test_bodies_and_answers_are_reserved_at_their_weights() -> None:
    budget = MemoryBudget(10_000)
    hold = budget.open()
    token = memory_budget.enter(hold)
    try:
        memory_budget.reserve_body(100)
        assert budget.held == 100 * memory_budget.BODY_WEIGHT
        memory_budget.reserve_answer(100)
        assert budget.held == 100 * (memory_budget.BODY_WEIGHT + memory_budget.ANSWER_WEIGHT)
    finally:
        memory_budget.leave(token, hold)
    assert budget.held == 0
