"""Backpressure: bounded in-flight requests, a bounded FIFO queue, Ollama's 503 beyond it."""

from __future__ import annotations

import asyncio

import pytest

from falcon_ollama.admission import BUSY_MESSAGE, Admission
from falcon_ollama.errors import OllamaError


async def test_slots_queue_and_refusal() -> None:
    admission = Admission(max_in_flight=2, max_queue=1)
    first, second = await admission.acquire(), await admission.acquire()
    waiting = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    assert admission.in_flight == 2 and admission.queued == 1
    with pytest.raises(OllamaError) as info:
        await admission.acquire()
    assert (info.value.status, info.value.message) == (503, BUSY_MESSAGE)
    first.release()
    third = await waiting  # the released slot went to the waiter
    assert admission.in_flight == 2 and admission.queued == 0
    first.release()  # idempotent: no double release
    assert admission.in_flight == 2
    second.release()
    third.release()
    assert admission.in_flight == 0


async def test_queue_is_first_come_first_served() -> None:
    admission = Admission(max_in_flight=1, max_queue=5)
    held = await admission.acquire()
    order: list[int] = []

    async def wait(i: int) -> None:
        slot = await admission.acquire()
        order.append(i)
        slot.release()

    tasks = [asyncio.create_task(wait(i)) for i in range(5)]
    await asyncio.sleep(0)
    held.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert admission.in_flight == 0


async def test_cancelled_waiter_leaves_the_queue() -> None:
    admission = Admission(max_in_flight=1, max_queue=1)
    held = await admission.acquire()
    waiting = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert admission.queued == 0
    held.release()
    assert admission.in_flight == 0
    again = await admission.acquire()  # the slot is free, not leaked
    again.release()


async def test_slot_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on() -> None:
    admission = Admission(max_in_flight=1, max_queue=2)
    held = await admission.acquire()
    doomed = asyncio.create_task(admission.acquire())
    patient = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)
    held.release()  # hands the slot to `doomed`...
    doomed.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await doomed
    slot = await asyncio.wait_for(patient, 1)
    slot.release()
    assert admission.in_flight == 0 and admission.queued == 0
