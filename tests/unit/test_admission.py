"""core.admission: slots, token buckets per address, and the shared item budget."""

from __future__ import annotations

import asyncio

import pytest

from pushhub_server.core.admission import Credits, KeyedSlots, Slots, TokenBuckets


def test_slots_refuse_over_the_limit_and_come_back() -> None:
    slots = Slots(2)
    assert slots.take() and slots.take()
    assert not slots.take()
    slots.give_back()
    assert slots.take()


def test_keyed_slots_count_each_key_and_forget_idle_ones() -> None:
    slots = KeyedSlots(1)
    assert slots.take("a") and slots.take("b")
    assert not slots.take("a")
    slots.give_back("a")
    assert slots.take("a")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0, "another address has its own bucket"
    clock.now = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now = 100.0
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0], "refills to the burst only"
    assert buckets.take("a") > 0


def test_a_full_table_drops_refilled_buckets_first() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=1.0, burst=2, max_keys=3, clock=clock)
    for key in ("old", "busy"):
        buckets.take(key)
        buckets.take(key)
    clock.now = 1.0
    buckets.take("new")
    clock.now = 2.5  # "old" has refilled; "busy" calls again and stays limited
    buckets.take("busy")
    buckets.take("busy")
    buckets.take("fourth")  # the table is full: "old" (refilled) goes
    assert buckets.take("busy") > 0, "an address still limited keeps its bucket"


def test_a_table_of_busy_buckets_stays_bounded() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=0.001, burst=1, max_keys=10, clock=clock)
    for index in range(1000):
        buckets.take(f"address-{index}")
    assert buckets.take("address-999") > 0
    assert buckets.take("address-0") == 0.0, "evicted: a fresh bucket, never a lost limit"


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
    with pytest.raises(ValueError):
        Credits(0)


async def test_credits_are_taken_first_come_first_served() -> None:
    credits = Credits(10)
    assert await credits.acquire(8) == 8
    big = asyncio.create_task(credits.acquire(5))
    await asyncio.sleep(0)
    small = asyncio.create_task(credits.acquire(1))
    await asyncio.sleep(0)
    assert not big.done() and not small.done(), "the small one waits behind the big one"
    credits.release(4)
    assert await big == 5
    assert await small == 1
    assert credits.free == 0


async def test_a_request_larger_than_the_budget_takes_all_of_it() -> None:
    credits = Credits(4)
    assert await credits.acquire(1000) == 4
    credits.release(4)
    assert credits.free == 4


async def test_a_cancelled_waiter_leaves_the_queue_and_lets_others_through() -> None:
    credits = Credits(4)
    await credits.acquire(3)
    blocked = asyncio.create_task(credits.acquire(4))
    await asyncio.sleep(0)
    behind = asyncio.create_task(credits.acquire(1))
    await asyncio.sleep(0)
    assert not behind.done()
    blocked.cancel()
    assert await behind == 1
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert credits.free == 0


async def test_a_waiter_cancelled_as_it_is_granted_gives_its_units_back() -> None:
    credits = Credits(2)
    await credits.acquire(2)
    waiter = asyncio.create_task(credits.acquire(2))
    await asyncio.sleep(0)
    credits.release(2)  # granted, but the waiter has not run yet
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert credits.free == 2


async def test_a_holding_gives_back_what_it_still_holds_on_close() -> None:
    credits = Credits(10)
    holding = credits.holding()
    await holding.acquire(4)
    await holding.acquire(3)
    holding.release(4)
    assert credits.free == 7
    holding.close()
    holding.release(5)  # a late release after close gives back nothing twice
    assert credits.free == 10
