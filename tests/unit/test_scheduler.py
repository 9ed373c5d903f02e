"""Scheduler: due runs under a controlled clock, repeats, catch-up, wake, stop and resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta

import pytest

from pushhub_server.core.clock import ManualClock, ManualTimer
from pushhub_server.core.messages import (
    Delivery,
    DeliveryResult,
    Message,
    MessageState,
    MessageStatus,
)
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.delivery.dispatcher import Dispatcher
from pushhub_server.delivery.retry_policy import RetryPolicy
from pushhub_server.delivery.scheduler import Scheduler
from pushhub_server.store.memory import MemoryAudienceReader, MemoryStore
from tests.fakes.delivery import (
    APP,
    START,
    CountingSignal,
    FakeMessages,
    NoSleep,
    RecordingProvider,
    message,
    recipients,
    register,
)

MINUTE = timedelta(minutes=1)
LEASE = timedelta(seconds=30)


class Harness:
    def __init__(self, store: MemoryStore, poll_interval: float) -> None:
        self.audience = MemoryAudienceReader(store)
        self.messages = FakeMessages(store)
        self.clock = ManualClock(START)
        # The loop's sleeps last until a test runs them out: no test waits on real time.
        self.timer = ManualTimer()
        self.provider: DeliveryProvider = RecordingProvider()

        async def provider_for(app_id: str) -> DeliveryProvider:
            return self.provider

        dispatcher = Dispatcher(
            self.messages,
            self.audience,
            provider_for,
            self.clock,
            CountingSignal(),
            chunk_size=2,
            lease=LEASE,
            retry=RetryPolicy(sleep=NoSleep()),
        )
        self.scheduler = Scheduler(
            self.messages, dispatcher, self.clock, poll_interval=poll_interval, timer=self.timer
        )

    async def publish(self, published: Message) -> None:
        await self.messages.create(published)
        self.scheduler.wake()  # as PublishingService.on_published does

    async def status(self, message_id: str = "m-1") -> MessageStatus:
        status = await self.messages.status(APP, message_id)
        assert status is not None
        return status

    async def eventually(self, check: Callable[[MessageStatus], bool]) -> MessageStatus:
        """Waits (at most a second) for the running scheduler to get the message there."""
        async with asyncio.timeout(1):
            while not check(status := await self.status()):
                await asyncio.sleep(0.005)
        return status


async def harness(recipient_count: int = 3, poll_interval: float = 30.0) -> Harness:
    """A scheduler on an in-memory store where APP has recipient_count registrations."""
    store = MemoryStore()
    await register(store, recipients(recipient_count))
    return Harness(store, poll_interval)


@pytest.fixture
async def running() -> AsyncIterator[Harness]:
    h = await harness()
    h.scheduler.start()
    yield h
    await h.scheduler.stop()


async def test_a_delayed_message_runs_once_it_falls_due() -> None:
    h = await harness()
    await h.publish(message(first_run_at=START + 10 * MINUTE))

    assert await h.scheduler.run_due() == 0
    h.clock.advance(10 * MINUTE)
    assert await h.scheduler.run_due() == 1
    assert await h.scheduler.run_due() == 0

    status = await h.status()
    assert (status.state, status.sent, status.run_count) == (MessageState.PUBLISHED, 3, 1)


async def test_a_repeat_runs_the_expected_number_of_times() -> None:
    h = await harness()
    await h.publish(message(repeat_every=MINUTE, repeat_expires_at=START + 5 * MINUTE))

    runs = 0
    for _ in range(10):
        runs += await h.scheduler.run_due()
        h.clock.advance(MINUTE)

    assert runs == 6  # at 0, 1, 2, 3, 4 and 5 minutes; the 6-minute slot is past expiry
    status = await h.status()
    assert (status.state, status.run_count, status.sent) == (MessageState.PUBLISHED, 6, 18)


async def test_missed_repeats_merge_into_one_catch_up_run() -> None:
    h = await harness()
    await h.publish(message(repeat_every=MINUTE))
    assert await h.scheduler.run_due() == 1

    h.clock.advance(timedelta(minutes=10, seconds=30))  # "down" across ten slots
    assert await h.scheduler.run_due() == 1
    assert await h.scheduler.run_due() == 0

    status = await h.status()
    assert (status.run_count, status.next_run_at) == (2, START + 11 * MINUTE)


async def test_a_cancelled_repeat_runs_no_more() -> None:
    h = await harness()
    await h.publish(message(repeat_every=MINUTE))
    await h.scheduler.run_due()
    assert await h.messages.cancel(APP, "m-1", h.clock.now())

    h.clock.advance(5 * MINUTE)
    assert await h.scheduler.run_due() == 0
    assert (await h.status()).run_count == 1


async def test_wake_after_a_publish_runs_it_without_waiting_for_the_poll(
    running: Harness,
) -> None:
    await running.timer.waiting()
    assert running.timer.requested == [30.0]  # asleep for its poll interval
    await running.publish(message())
    status = await running.eventually(lambda s: s.state is MessageState.PUBLISHED)
    assert status.sent == 3


async def test_what_fell_due_while_down_runs_at_start_up() -> None:
    h = await harness()
    await h.messages.create(message(first_run_at=START - 5 * MINUTE))
    h.scheduler.start()
    try:
        await h.eventually(lambda s: s.state is MessageState.PUBLISHED)
    finally:
        await h.scheduler.stop()


async def test_the_loop_sleeps_until_the_next_run_falls_due() -> None:
    h = await harness()
    due_in = timedelta(milliseconds=100)
    await h.messages.create(message(first_run_at=START + due_in))
    h.scheduler.start()
    try:
        await h.timer.waiting()
        assert h.timer.requested == [0.1]  # until the run falls due, not the poll interval
        h.clock.advance(due_in)
        h.timer.elapse()  # no wake(): the loop's own timer must find it
        await h.eventually(lambda s: s.state is MessageState.PUBLISHED)
    finally:
        await h.scheduler.stop()


async def test_the_loop_does_not_busy_poll() -> None:
    """With nothing due, one claim per poll interval waited out."""
    h = await harness(poll_interval=30.0)
    h.scheduler.start()
    try:
        await h.timer.waiting(1)
        assert (h.messages.claims, h.timer.requested) == (1, [30.0])
        h.timer.elapse()
        await h.timer.waiting(2)
        assert (h.messages.claims, h.timer.requested) == (2, [30.0, 30.0])
    finally:
        await h.scheduler.stop()


async def test_the_loop_outlives_a_failing_store() -> None:
    h = await harness()
    h.messages.claim_error = ConnectionError("database restarting")
    await h.messages.create(message())
    h.scheduler.start()
    try:
        await h.timer.waiting()
        assert (await h.status()).state is MessageState.SCHEDULED  # the claim failed
        h.timer.elapse()  # the poll interval passes: the loop claims again
        await h.eventually(lambda s: s.state is MessageState.PUBLISHED)
    finally:
        await h.scheduler.stop()


async def test_stop_abandons_the_run_and_its_lease_lets_it_resume() -> None:
    h = await harness(recipient_count=6)
    sent_once = asyncio.Event()
    first = RecordingProvider()

    class StallsOnSecondChunk:
        async def send(
            self, deliveries: Sequence[Delivery], *, validate_only: bool = False
        ) -> list[DeliveryResult]:
            if first.batches:
                sent_once.set()
                await asyncio.Event().wait()  # hangs until the scheduler stops
            return await first.send(deliveries, validate_only=validate_only)

    h.provider = StallsOnSecondChunk()
    await h.messages.create(message())
    h.scheduler.start()
    await asyncio.wait_for(sent_once.wait(), 1)
    await h.scheduler.stop()
    assert (await h.status()).state is MessageState.PUBLISHING

    resumed = RecordingProvider()
    h.provider = resumed
    assert await h.scheduler.run_due() == 0  # still leased
    h.clock.advance(LEASE)
    assert await h.scheduler.run_due() == 1

    assert first.tokens == ["tok-0", "tok-1"]
    assert resumed.tokens == ["tok-2", "tok-3", "tok-4", "tok-5"]  # after the checkpoint
    status = await h.status()
    assert (status.state, status.sent) == (MessageState.PUBLISHED, 6)


async def test_a_slow_chunk_is_not_claimed_again_by_its_own_scheduler() -> None:
    """The chunk outlasts the lease before any heartbeat got through: the run is
    still this scheduler's, so it claims nothing and nobody is sent twice."""
    h = await harness(recipient_count=6)
    stalled, release = asyncio.Event(), asyncio.Event()
    sent = RecordingProvider()

    class Slow:
        async def send(
            self, deliveries: Sequence[Delivery], *, validate_only: bool = False
        ) -> list[DeliveryResult]:
            if not stalled.is_set():
                stalled.set()
                await release.wait()
            return await sent.send(deliveries, validate_only=validate_only)

    h.provider = Slow()
    await h.messages.create(message())
    first = asyncio.create_task(h.scheduler.run_due())
    await asyncio.wait_for(stalled.wait(), 1)

    h.clock.advance(2 * LEASE)
    assert await h.scheduler.run_due() == 0
    release.set()
    assert await first == 1

    assert sorted(sent.tokens) == [f"tok-{i}" for i in range(6)]
    status = await h.status()
    assert (status.state, status.targeted, status.sent) == (MessageState.PUBLISHED, 6, 6)


@pytest.mark.parametrize("down_for", [55 * MINUTE, 65 * MINUTE])
async def test_a_run_starting_after_repeat_expires_at_sends_nothing_whatever_the_grid(
    down_for: timedelta,
) -> None:
    """Expiry 30 minutes in, hourly: however long past it the server comes back
    (before the next slot or after it), the first run is not sent."""
    h = await harness()
    await h.messages.create(
        message(repeat_every=60 * MINUTE, repeat_expires_at=START + 30 * MINUTE)
    )
    h.clock.advance(down_for)
    assert await h.scheduler.run_due() == 0

    status = await h.status()
    assert (status.state, status.run_count, status.sent) == (MessageState.PUBLISHED, 0, 0)


async def test_a_run_starting_within_a_lease_of_repeat_expires_at_still_goes_out() -> None:
    """The slot at repeat_expires_at, claimed a few seconds late, as usual."""
    h = await harness()
    await h.messages.create(message(repeat_every=MINUTE, repeat_expires_at=START))
    h.clock.advance(LEASE - timedelta(seconds=1))
    assert await h.scheduler.run_due() == 1

    status = await h.status()
    assert (status.state, status.run_count, status.sent) == (MessageState.PUBLISHED, 1, 3)


async def test_a_catch_up_past_repeat_expires_at_sends_nothing() -> None:
    h = await harness()
    await h.publish(message(repeat_every=MINUTE, repeat_expires_at=START + 2 * MINUTE))
    assert await h.scheduler.run_due() == 1

    # "Down" from before the 1-minute slot until well after repeat_expires_at.
    h.clock.advance(10 * MINUTE)
    assert await h.scheduler.run_due() == 0

    status = await h.status()
    assert (status.state, status.run_count, status.sent) == (MessageState.PUBLISHED, 1, 3)
    assert status.next_run_at is None
