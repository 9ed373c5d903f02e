"""ordered_pipeline: results in order, work overlapped, failures and hang-ups handled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pushhub_server.core.pipeline import KeyedOrder, ordered_pipeline


async def numbers(count: int) -> AsyncIterator[int]:
    for number in range(count):
        yield number


async def test_results_keep_source_order_while_work_overlaps() -> None:
    running = 0
    most_at_once = 0

    async def slow_then_fast(number: int) -> int:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        await asyncio.sleep(0.02 if number % 2 == 0 else 0)
        running -= 1
        return number * 10

    results = [r async for r in ordered_pipeline(numbers(6), slow_then_fast, depth=2)]
    assert results == [0, 10, 20, 30, 40, 50]
    assert most_at_once > 1


async def test_a_result_goes_out_before_the_source_sends_more() -> None:
    """A client that waits for each answer before sending on must not deadlock."""
    answered = asyncio.Event()

    async def lock_step() -> AsyncIterator[int]:
        yield 1
        await answered.wait()
        yield 2

    async def double(number: int) -> int:
        return number * 2

    results = []
    async for result in ordered_pipeline(lock_step(), double, depth=2):
        results.append(result)
        answered.set()
    assert results == [2, 4]


async def test_a_broken_source_fails_after_the_results_before_it() -> None:
    async def breaks() -> AsyncIterator[int]:
        yield 1
        raise ConnectionError("stream broke")

    async def same(number: int) -> int:
        return number

    results = []
    with pytest.raises(ConnectionError):
        async for result in ordered_pipeline(breaks(), same, depth=2):
            results.append(result)
    assert results == [1]


async def test_closing_early_cancels_work_in_flight() -> None:
    started: list[asyncio.Task[None]] = []

    async def forever(number: int) -> int:
        started.append(asyncio.current_task())  # type: ignore[arg-type]
        if number > 0:
            await asyncio.Event().wait()
        return number

    pipeline = ordered_pipeline(numbers(5), forever, depth=2)
    assert await anext(pipeline) == 0
    await asyncio.sleep(0)
    await pipeline.aclose()
    await asyncio.sleep(0.01)  # cancelled tasks finish on their next turn
    assert started and all(task.done() for task in started)


async def test_a_source_cancelled_on_its_own_does_not_leave_the_consumer_waiting() -> None:
    async def cancelled() -> AsyncIterator[int]:
        yield 1
        raise asyncio.CancelledError

    async def same(number: int) -> int:
        return number

    results = []
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            async for result in ordered_pipeline(cancelled(), same, depth=2):
                results.append(result)
    assert results == [1]


async def test_a_turn_given_up_while_waiting_does_not_hold_up_later_ones() -> None:
    order = KeyedOrder()
    log: list[str] = []
    release_first = asyncio.Event()

    async def write(name: str, keys: frozenset[int] | None, hold: asyncio.Event | None) -> None:
        async with order.turn(keys):
            log.append(name)
            if hold is not None:
                await hold.wait()

    first = asyncio.create_task(write("first", frozenset({1}), release_first))
    given_up = asyncio.create_task(write("given up", None, None))
    disjoint = asyncio.create_task(write("disjoint", frozenset({2}), None))
    await asyncio.sleep(0.01)
    assert log == ["first"], "the keyless turn waits; the disjoint one waits for it"
    given_up.cancel()
    await asyncio.sleep(0.01)
    assert log == ["first", "disjoint"]
    release_first.set()
    await asyncio.gather(first, disjoint)
    assert given_up.cancelled()
