"""Dispatcher: chunks and checkpoints, resume, selectors, classification, cancel, failure,
and keeping its claim (heartbeat, claim numbers)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import timedelta

import pytest

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.messages import (
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    MessageState,
    MessageStatus,
    Recipient,
    Run,
)
from pushhub_server.core.models import Platform, Template
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.delivery import dispatcher as dispatcher_module
from pushhub_server.delivery.dispatcher import _STOPS_BEFORE_FAILING, Dispatcher
from pushhub_server.delivery.providers import SimulatorProvider
from pushhub_server.delivery.retry_policy import RetryPolicy
from pushhub_server.store.memory import MemoryRegistrationRepository, MemoryStore
from tests.fakes.delivery import (
    APP,
    SENT,
    START,
    CountingSignal,
    FakeInbox,
    FakeMessages,
    NoSleep,
    ObservedAudience,
    RecordingProvider,
    ScriptedProvider,
    message,
    nothing,
    recipients,
    register,
)


class Harness:
    def __init__(
        self,
        store: MemoryStore,
        provider: DeliveryProvider | None,
        chunk_size: int,
        heartbeat: timedelta | None,
    ) -> None:
        self.registrations = MemoryRegistrationRepository(store)
        self.audience = ObservedAudience(store)
        self.messages = FakeMessages(store)
        self.clock = ManualClock(START)
        self.signal = CountingSignal()
        self.sleep = NoSleep()
        self.provider = RecordingProvider(provider)
        self.dispatcher = self.new_dispatcher(chunk_size, heartbeat)

    def new_dispatcher(
        self, chunk_size: int = 10, heartbeat: timedelta | None = None
    ) -> Dispatcher:
        """Another dispatcher on the same store and provider, as another server's."""

        async def provider_for(app_id: str) -> DeliveryProvider:
            assert app_id == APP
            return self.provider

        return Dispatcher(
            self.messages,
            self.audience,
            provider_for,
            self.clock,
            self.signal,
            chunk_size=chunk_size,
            heartbeat=heartbeat,
            retry=RetryPolicy(sleep=self.sleep, jitter=lambda: 1.0),
        )

    async def claim(self, limit: int = 10, exclude: Collection[str] = ()) -> list[Run]:
        """The partitions a scheduler would claim now, with the dispatcher's lease."""
        return (
            await self.messages.claim_due(self.clock.now(), self.dispatcher.lease, limit, exclude)
        ).runs

    async def publish_and_run(self, content: NotificationContent | None = None) -> Run:
        await self.messages.create(message(content=content))
        [run] = await self.claim()
        await self.dispatcher.run(run)
        return run

    async def status(self) -> MessageStatus:
        status = await self.messages.status(APP, "m-1")
        assert status is not None
        return status


async def harness(
    members: list[Recipient],
    provider: DeliveryProvider | None = None,
    chunk_size: int = 10,
    heartbeat: timedelta | None = None,
) -> Harness:
    """A dispatcher on an in-memory store where `members` are APP's registrations."""
    store = MemoryStore()
    await register(store, members)
    return Harness(store, provider, chunk_size, heartbeat)


class Stalling:
    """Sends through `inner`, but holds its first batch until released."""

    def __init__(self, inner: DeliveryProvider | None = None) -> None:
        self.inner = inner or RecordingProvider()
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        if not self.stalled.is_set():
            self.stalled.set()
            await self.release.wait()
        return await self.inner.send(deliveries, validate_only=validate_only)


async def test_sends_in_chunks_with_a_checkpoint_after_each() -> None:
    h = await harness(recipients(25))
    await h.publish_and_run()

    assert [len(batch) for batch in h.provider.batches] == [10, 10, 5]
    assert [chunk.cursor for chunk in h.messages.chunks] == ["r0009", "r0019", "r0024"]
    status = await h.status()
    assert (status.state, status.targeted, status.sent, status.failed) == (
        MessageState.PUBLISHED,
        25,
        25,
        0,
    )
    assert status.per_platform[Platform.APNS].sent == 12
    assert status.per_platform[Platform.FCM].sent == 13
    assert status.run_count == 1
    # A full last page costs one more read, which finds nothing; a short one does not.
    assert h.audience.reads == [None, "r0009", "r0019"]


async def test_the_last_full_page_is_followed_by_an_empty_read() -> None:
    h = await harness(recipients(20))
    await h.publish_and_run()
    assert h.audience.reads == [None, "r0009", "r0019"]
    assert len(h.messages.chunks) == 2


async def test_resumes_after_the_cursor() -> None:
    h = await harness(recipients(25))
    await h.messages.create(message())
    [run] = await h.claim(1)
    await h.dispatcher.run(Run(run.message, run.claim, run.run_at, cursor="r0014"))

    assert h.provider.tokens == [f"tok-{i}" for i in range(15, 25)]
    assert (await h.status()).sent == 10


async def test_selectors_leave_out_registrations_the_headers_do_not_satisfy() -> None:
    members = [
        Recipient("r1", Platform.FCM, "gold", selector="tier = 'gold'"),
        Recipient("r2", Platform.FCM, "silver", selector="tier = 'silver'"),
        Recipient("r3", Platform.FCM, "any"),
        Recipient("r4", Platform.FCM, "big", selector="size > 3"),
    ]
    h = await harness(members)
    await h.publish_and_run(
        NotificationContent(message="hi", headers={"tier": "gold", "size": "5"})
    )

    assert h.provider.tokens == ["gold", "any", "big"]
    status = await h.status()
    assert (status.targeted, status.sent) == (3, 3)
    # The checkpoint still moves past the left-out registration.
    assert h.messages.chunks[-1].cursor == "r4"


async def test_invalid_tokens_are_invalidated_and_left_out_of_later_runs() -> None:
    members = [Recipient("r1", Platform.APNS, "invalid-1"), Recipient("r2", Platform.APNS, "ok")]
    h = await harness(members, SimulatorProvider(FakeInbox(), ManualClock(START)))
    await h.publish_and_run()

    assert h.messages.chunks[0].invalid_registration_ids == ["r1"]
    status = await h.status()
    assert (status.sent, status.failed, status.failure_reasons) == (1, 1, {"Unregistered": 1})
    assert await h.audience.page(APP, message().audience, None, 10, START) == [members[1]]


async def test_flaky_tokens_are_retried_after_the_retry_after_then_sent() -> None:
    inbox = FakeInbox()
    members = [Recipient("r1", Platform.FCM, "flaky-1"), Recipient("r2", Platform.FCM, "ok")]
    h = await harness(members, SimulatorProvider(inbox, ManualClock(START), retry_after=0.5))
    await h.publish_and_run()

    status = await h.status()
    assert (status.sent, status.failed) == (2, 0)
    assert h.sleep.delays == [0.5]  # the Retry-After beats the 0.25 s first backoff
    assert sorted(d.device_token for d, _ in inbox.recorded) == ["flaky-1", "ok"]


async def test_retries_are_bounded_and_what_still_fails_is_counted() -> None:
    busy = DeliveryResult(DeliveryOutcome.RETRY, "TooManyRequests")
    h = await harness(recipients(3), ScriptedProvider(lambda d: busy))
    await h.publish_and_run()

    assert [len(batch) for batch in h.provider.batches] == [3, 3, 3, 3]
    assert h.sleep.delays == [0.25, 0.5, 1.0]
    status = await h.status()
    assert (status.sent, status.failed, status.failure_reasons) == (0, 3, {"TooManyRequests": 3})


async def test_rejections_and_render_failures_are_counted_by_reason() -> None:
    members = [
        Recipient("r1", Platform.FCM, "rejected-1", metadata={"name": "Ann"}),
        Recipient("r2", Platform.APNS, "ok-2", metadata={"name": "x" * 5000}),
        Recipient("r3", Platform.APNS, "ok-3", metadata={"name": "Bob"}),
    ]
    h = await harness(members, SimulatorProvider(FakeInbox(), ManualClock(START)))
    await h.publish_and_run(NotificationContent(message="hi {{name}}"))

    status = await h.status()
    assert (status.targeted, status.sent, status.failed) == (3, 1, 2)
    assert status.failure_reasons == {"PayloadRejected": 1, "PAYLOAD_TOO_LARGE": 1}
    assert status.per_platform[Platform.APNS].failed == 1


async def test_payloads_are_rendered_per_recipient() -> None:
    members = [Recipient("r1", Platform.FCM, "t1", metadata={"name": "Ann"})]
    h = await harness(members)
    await h.publish_and_run(NotificationContent(message="hi {{name}}"))

    [[delivery]] = h.provider.batches
    assert (delivery.message_id, delivery.app_id, delivery.registration_id) == ("m-1", APP, "r1")
    assert b'"token":"t1"' in delivery.payload
    assert b'"body":"hi Ann"' in delivery.payload


async def test_a_cancel_during_a_chunk_records_it_then_stops() -> None:
    """The chunk in flight was sent: its counts and invalid tokens are kept."""
    members = recipients(30)
    members[3] = Recipient("r0003", Platform.APNS, "invalid-3")
    h = await harness(members, SimulatorProvider(FakeInbox(), ManualClock(START)))

    async def cancel() -> None:
        assert await h.messages.cancel(APP, "m-1", START)

    h.messages.before_record = cancel
    await h.publish_and_run()

    assert len(h.provider.batches) == 1
    status = await h.status()
    assert (status.state, status.run_count) == (MessageState.CANCELLED, 0)
    assert (status.targeted, status.sent, status.failed) == (10, 9, 1)
    assert status.failure_reasons == {"Unregistered": 1}
    assert await h.registrations.get(APP, "r0003", START) is None  # invalidated
    assert await h.registrations.get(APP, "r0004", START) is not None


def database_error() -> Exception:
    return ConnectionError("[SQL: SELECT registrations.id FROM registrations] connection reset")


def fail_second_page(h: Harness) -> None:
    h.audience.errors[1] = database_error()


def fail_second_checkpoint(h: Harness) -> None:
    async def fail_once() -> None:
        if len(h.messages.chunks) == 1:
            h.messages.before_record = nothing
            raise database_error()

    h.messages.before_record = fail_once


def fail_second_send(h: Harness) -> None:
    class RaisesOnce:
        """A provider that raises (it never should) on its second batch."""

        def __init__(self) -> None:
            self.calls = 0

        async def send(
            self, deliveries: Sequence[Delivery], *, validate_only: bool = False
        ) -> list[DeliveryResult]:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("socket on fire")
            return [SENT for _ in deliveries]

    h.provider.inner = RaisesOnce()


@pytest.mark.parametrize("breaks", [fail_second_page, fail_second_checkpoint, fail_second_send])
async def test_an_error_outside_rendering_stops_the_run_which_resumes_after_its_lease(
    breaks, caplog: pytest.LogCaptureFixture
) -> None:
    h = await harness(recipients(25))
    breaks(h)
    with caplog.at_level(logging.ERROR, "pushhub_server.delivery.dispatcher"):
        await h.publish_and_run()

    status = await h.status()
    assert (status.state, status.error_message) == (MessageState.PUBLISHING, None)
    assert "resumes from its last checkpoint" in caplog.text
    assert h.signal.notified[-1] == "m-1"

    assert await h.claim() == []
    h.clock.advance(h.dispatcher.lease)
    [resumed] = await h.claim()
    assert (resumed.claim, resumed.cursor) == (2, "r0009")
    await h.dispatcher.run(resumed)

    status = await h.status()
    assert (status.state, status.error_message) == (MessageState.PUBLISHED, None)
    assert (status.targeted, status.sent, status.run_count) == (25, 25, 1)
    sends = Counter(h.provider.tokens)
    assert set(sends) == {f"tok-{i}" for i in range(25)}
    assert sum(sends.values()) - 25 <= 10  # at most the chunk in flight went twice


async def test_an_error_that_comes_back_every_time_fails_the_message_in_the_end() -> None:
    class AlwaysRaises:
        async def send(
            self, deliveries: Sequence[Delivery], *, validate_only: bool = False
        ) -> list[DeliveryResult]:
            raise RuntimeError("a bug, every time")

    h = await harness(recipients(3), AlwaysRaises())
    await h.publish_and_run()
    for _ in range(3):
        assert (await h.status()).state is MessageState.PUBLISHING
        h.clock.advance(h.dispatcher.lease)
        [run] = await h.claim()
        await h.dispatcher.run(run)
    assert (await h.status()).state is MessageState.PUBLISHING  # four stops so far
    h.clock.advance(h.dispatcher.lease)
    [run] = await h.claim()
    await h.dispatcher.run(run)

    status = await h.status()
    assert status.state is MessageState.FAILED
    assert status.error_message == (
        "delivery stopped 5 times in a row without progress; see the server log"
    )


class RaisesEvery:
    """Sends everything, but raises instead of every `nth` batch, as a flaky link would."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.calls = 0

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        self.calls += 1
        if self.calls % self.nth == 0:
            raise ConnectionError("reset by peer")
        return [SENT for _ in deliveries]


async def test_stops_between_which_the_run_made_progress_do_not_fail_it() -> None:
    """Every resume moves the checkpoint on: far more than five stops, no failure."""
    h = await harness(recipients(200), RaisesEvery(3))
    await h.messages.create(message())
    stops = 0
    while runs := await h.claim():
        await h.dispatcher.run(runs[0])
        stops += (await h.status()).state is MessageState.PUBLISHING
        h.clock.advance(h.dispatcher.lease)

    assert stops > 5
    status = await h.status()
    assert (status.state, status.sent, status.error_message) == (MessageState.PUBLISHED, 200, None)


async def test_a_blip_in_each_run_of_a_repeat_never_fails_it() -> None:
    """Each daily run stops once on this server and another server completes it:
    five blips over the repeat's life are not five stops in a row."""

    class BlipsWhenArmed:
        armed = False

        async def send(
            self, deliveries: Sequence[Delivery], *, validate_only: bool = False
        ) -> list[DeliveryResult]:
            if self.armed:
                self.armed = False
                raise ConnectionError("blip")
            return [SENT for _ in deliveries]

    blips = BlipsWhenArmed()
    h = await harness(recipients(3), blips)
    other_server = h.new_dispatcher()
    await h.messages.create(message(repeat_every=timedelta(days=1)))
    for _ in range(_STOPS_BEFORE_FAILING + 1):
        [run] = await h.claim()
        blips.armed = True
        await h.dispatcher.run(run)
        h.clock.advance(h.dispatcher.lease)
        [resumed] = await h.claim()
        await other_server.run(resumed)
        h.clock.advance(timedelta(days=1))

    status = await h.status()
    assert (status.state, status.run_count) == (MessageState.SCHEDULED, _STOPS_BEFORE_FAILING + 1)


async def test_stops_are_forgotten_beyond_the_messages_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class AlwaysRaises:
        async def send(
            self, deliveries: Sequence[Delivery], *, validate_only: bool = False
        ) -> list[DeliveryResult]:
            raise RuntimeError("a bug, every time")

    monkeypatch.setattr(dispatcher_module, "_STOPS_REMEMBERED", 2)
    h = await harness(recipients(3), AlwaysRaises())
    for message_id in ("m-1", "m-2", "m-3"):
        await h.messages.create(message(message_id))
    for _ in range(_STOPS_BEFORE_FAILING - 1):
        [run] = await h.claim(1, ("m-2", "m-3"))
        await h.dispatcher.run(run)
        h.clock.advance(h.dispatcher.lease)
    for run in await h.claim(10, ("m-1",)):
        await h.dispatcher.run(run)  # m-2 and m-3 stop: m-1's four stops are forgotten

    [run] = await h.claim(1, ("m-2", "m-3"))
    await h.dispatcher.run(run)
    assert (await h.status()).state is MessageState.PUBLISHING  # one stop, as far as known


async def test_a_message_that_cannot_be_rendered_for_anyone_fails_without_exception_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # apns-expiration of a ttl beyond year 9999: no recipient's payload can be built.
    h = await harness(recipients(3))
    with caplog.at_level(logging.ERROR, "pushhub_server.delivery.dispatcher"):
        await h.publish_and_run(NotificationContent(message="hi", ttl=timedelta(days=3_000_000)))

    status = await h.status()
    assert status.state is MessageState.FAILED
    assert status.error_message == "the message could not be rendered for any recipient"
    assert h.provider.batches == []
    assert "OverflowError" in caplog.text  # the operator still gets the cause


async def test_a_recipient_whose_payload_cannot_be_rendered_fails_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Registrations stored before today's checks: a template holding the JSON escape of
    a lone surrogate, and metadata holding one, which UTF-8 cannot carry."""
    broken_template = Template('{"aps": {"alert": "\\udc00 $(text)"}}')
    members = [
        Recipient("r1", Platform.APNS, "t1", templates={"alert": broken_template}),
        Recipient("r2", Platform.FCM, "t2", metadata={"name": "\udc00"}),
        Recipient("r3", Platform.FCM, "t3", metadata={"name": "Ann"}),
        Recipient("r4", Platform.APNS, "t4", metadata={"name": "\udc00"}),
    ]
    h = await harness(members)
    content = NotificationContent(
        message="hi {{name}}", template_name="alert", template_properties={"text": "x"}
    )
    with caplog.at_level(logging.WARNING, "pushhub_server.delivery.dispatcher"):
        await h.publish_and_run(content)

    status = await h.status()
    assert (status.state, status.error_message) == (MessageState.PUBLISHED, None)
    assert (status.targeted, status.sent, status.failed) == (4, 1, 3)
    assert status.failure_reasons == {"TEMPLATE_RENDER_FAILED": 1, "PayloadUnrenderable": 2}
    assert h.provider.tokens == ["t3"]
    # One log line per run, not one per recipient.
    assert caplog.text.count("cannot be rendered") == 1


async def test_the_heartbeat_keeps_the_claim_while_a_chunk_is_slow() -> None:
    stalling = Stalling()
    h = await harness(recipients(25), stalling, heartbeat=timedelta(milliseconds=5))
    running = asyncio.create_task(h.publish_and_run())
    await asyncio.wait_for(stalling.stalled.wait(), 1)

    for _ in range(3):  # the chunk takes three leases
        h.clock.advance(h.dispatcher.lease)
        await asyncio.sleep(0.03)
        # Another server finds the run's lease renewed: nothing to claim.
        assert await h.claim() == []
    stalling.release.set()
    await running

    status = await h.status()
    assert (status.state, status.targeted, status.sent) == (MessageState.PUBLISHED, 25, 25)
    assert sorted(h.provider.tokens) == sorted(f"tok-{i}" for i in range(25))


async def test_a_dispatcher_that_lost_its_claim_stops_at_its_next_checkpoint() -> None:
    """Its lease ran out (no heartbeat got through) and another server resumed the
    run: the stale dispatcher's chunk is not counted and it sends nothing more."""
    stalling = Stalling()
    h = await harness(recipients(25), stalling)
    stale = asyncio.create_task(h.publish_and_run())
    await asyncio.wait_for(stalling.stalled.wait(), 1)

    h.clock.advance(h.dispatcher.lease)
    [taken_over] = await h.claim()
    assert (taken_over.claim, taken_over.cursor) == (2, None)
    await h.new_dispatcher().run(taken_over)
    stalling.release.set()
    await stale

    status = await h.status()
    assert (status.state, status.targeted, status.sent, status.run_count) == (
        MessageState.PUBLISHED,
        25,
        25,
        1,
    )
    sends = Counter(h.provider.tokens)
    assert [token for token, count in sends.items() if count > 1] == [f"tok-{i}" for i in range(10)]
    assert set(sends) == {f"tok-{i}" for i in range(25)}


async def test_the_lease_outlives_a_long_retry_after() -> None:
    """FCM asks for two minutes: the chunk waits them out, and the heartbeat keeps
    the run from being claimed by another server meanwhile."""
    throttled = {"tok-1"}

    def answer(delivery: Delivery) -> DeliveryResult:
        if delivery.device_token in throttled:
            throttled.discard(delivery.device_token)
            return DeliveryResult(DeliveryOutcome.RETRY, "QUOTA_EXCEEDED", retry_after=120.0)
        return SENT

    h = await harness(recipients(3), ScriptedProvider(answer), heartbeat=timedelta(milliseconds=5))
    claimed_meanwhile: list[Run] = []

    async def wait_out(seconds: float) -> None:
        h.clock.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0.03)
        now = h.clock.now()
        claimed_meanwhile.extend((await h.messages.claim_due(now, h.dispatcher.lease, 10)).runs)

    h.sleep.meanwhile = wait_out
    await h.publish_and_run()

    assert h.sleep.delays == [120.0]
    assert claimed_meanwhile == []
    status = await h.status()
    assert (status.state, status.sent, status.failed) == (MessageState.PUBLISHED, 3, 0)


def always_throttled(delivery: Delivery) -> DeliveryResult:
    return DeliveryResult(DeliveryOutcome.RETRY, "QUOTA_EXCEEDED", retry_after=300.0)


async def test_a_cancel_during_a_retry_after_wait_ends_the_run_at_once() -> None:
    """The heartbeat learns of the cancel: the chunk stops waiting, sends no retry,
    and its checkpoint counts the deliveries still pending as failed."""
    h = await harness(
        recipients(3), ScriptedProvider(always_throttled), heartbeat=timedelta(milliseconds=5)
    )

    async def cancelled_meanwhile(seconds: float) -> None:
        await h.messages.cancel(APP, "m-1", h.clock.now())
        await asyncio.Event().wait()  # the five minutes the provider asked for

    h.sleep.meanwhile = cancelled_meanwhile
    await asyncio.wait_for(h.publish_and_run(), 1)

    assert (h.sleep.delays, len(h.provider.batches)) == ([300.0], 1)
    status = await h.status()
    assert (status.state, status.targeted, status.sent, status.failed) == (
        MessageState.CANCELLED,
        3,
        0,
        3,
    )
    assert status.failure_reasons == {"QUOTA_EXCEEDED": 3}


async def test_a_run_claimed_again_during_a_retry_after_wait_sends_no_retry() -> None:
    """Another server took the run over: this dispatcher stops at once, records
    nothing (the new owner resends the chunk) and sends nothing more."""
    h = await harness(
        recipients(3), ScriptedProvider(always_throttled), heartbeat=timedelta(milliseconds=5)
    )

    async def taken_over_meanwhile(seconds: float) -> None:
        h.clock.advance(h.dispatcher.lease)
        await h.claim()
        await asyncio.Event().wait()

    h.sleep.meanwhile = taken_over_meanwhile
    await asyncio.wait_for(h.publish_and_run(), 1)

    assert len(h.provider.batches) == 1
    assert h.messages.chunks == []


async def test_failure_reasons_are_cut_to_what_the_store_keeps() -> None:
    """Providers' reasons have no length limit; the stored ones 255 characters.
    Two reasons alike in their first 255 characters count as one."""
    long = "BadGateway: " + "x" * 300

    def answer(delivery: Delivery) -> DeliveryResult:
        if delivery.device_token == "tok-2":
            return SENT
        return DeliveryResult(DeliveryOutcome.REJECTED, long + delivery.device_token)

    h = await harness(recipients(3), ScriptedProvider(answer))
    await h.publish_and_run()

    status = await h.status()
    assert (status.state, status.sent, status.failed) == (MessageState.PUBLISHED, 1, 2)
    assert status.failure_reasons == {long[:255]: 2}


async def test_watchers_are_notified_at_the_start_after_each_chunk_and_at_the_end() -> None:
    h = await harness(recipients(25))
    await h.publish_and_run()
    assert h.signal.notified == ["m-1"] * 5


async def test_an_empty_audience_publishes_without_chunks() -> None:
    h = await harness([])
    await h.publish_and_run()
    assert h.provider.batches == []
    assert (await h.status()).state is MessageState.PUBLISHED


async def test_a_repeating_message_is_scheduled_for_its_next_slot() -> None:
    h = await harness(recipients(2))
    await h.messages.create(message(repeat_every=timedelta(minutes=1)))
    [run] = await h.claim(1)
    h.clock.advance(timedelta(seconds=5))
    await h.dispatcher.run(run)

    status = await h.status()
    assert (status.state, status.next_run_at) == (
        MessageState.SCHEDULED,
        START + timedelta(minutes=1),
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
async def test_every_recipient_is_sent_exactly_once_whatever_the_chunk_size(
    chunk_size: int,
) -> None:
    h = await harness(recipients(50), chunk_size=chunk_size)
    await h.publish_and_run()
    assert sorted(h.provider.tokens) == sorted(f"tok-{i}" for i in range(50))
