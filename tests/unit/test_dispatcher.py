"""Dispatcher: chunks and checkpoints, resume, selectors, classification, cancel, failure."""

from __future__ import annotations

from collections.abc import Sequence
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
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.delivery.dispatcher import Dispatcher
from pushhub_server.delivery.providers import RetryPolicy, SimulatorProvider
from tests.unit.delivery_fakes import (
    APP,
    START,
    CountingSignal,
    FakeAudience,
    FakeInbox,
    FakeMessages,
    NoSleep,
    RecordingProvider,
    ScriptedProvider,
    message,
    recipients,
)


class Harness:
    def __init__(
        self, members: list[Recipient], provider: DeliveryProvider | None, chunk_size: int
    ) -> None:
        self.audience = FakeAudience(members)
        self.messages = FakeMessages(self.audience)
        self.clock = ManualClock(START)
        self.signal = CountingSignal()
        self.sleep = NoSleep()
        self.provider = RecordingProvider(provider)

        async def provider_for(app_id: str) -> DeliveryProvider:
            assert app_id == APP
            return self.provider

        self.dispatcher = Dispatcher(
            self.messages,
            self.audience,
            provider_for,
            self.clock,
            self.signal,
            chunk_size=chunk_size,
            retry=RetryPolicy(sleep=self.sleep, jitter=lambda: 1.0),
        )

    async def publish_and_run(self, content: NotificationContent | None = None) -> Run:
        await self.messages.create(message(content=content))
        [run] = await self.messages.claim_due(self.clock.now(), self.dispatcher.lease, 10)
        await self.dispatcher.run(run)
        return run

    async def status(self) -> MessageStatus:
        status = await self.messages.status(APP, "m-1")
        assert status is not None
        return status


def harness(
    members: list[Recipient], provider: DeliveryProvider | None = None, chunk_size: int = 10
) -> Harness:
    return Harness(members, provider, chunk_size)


async def test_sends_in_chunks_with_a_checkpoint_after_each() -> None:
    h = harness(recipients(25))
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
    h = harness(recipients(20))
    await h.publish_and_run()
    assert h.audience.reads == [None, "r0009", "r0019"]
    assert len(h.messages.chunks) == 2


async def test_resumes_after_the_cursor() -> None:
    h = harness(recipients(25))
    await h.messages.create(message())
    [run] = await h.messages.claim_due(h.clock.now(), h.dispatcher.lease, 1)
    await h.dispatcher.run(Run(run.message, run.run_number, run.run_at, cursor="r0014"))

    assert h.provider.tokens == [f"tok-{i}" for i in range(15, 25)]
    assert (await h.status()).sent == 10


async def test_selectors_leave_out_registrations_the_headers_do_not_satisfy() -> None:
    members = [
        Recipient("r1", Platform.FCM, "gold", selector="tier = 'gold'"),
        Recipient("r2", Platform.FCM, "silver", selector="tier = 'silver'"),
        Recipient("r3", Platform.FCM, "any"),
        Recipient("r4", Platform.FCM, "big", selector="size > 3"),
    ]
    h = harness(members)
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
    h = harness(members, SimulatorProvider(FakeInbox(), ManualClock(START)))
    await h.publish_and_run()

    assert h.messages.chunks[0].invalid_registration_ids == ["r1"]
    status = await h.status()
    assert (status.sent, status.failed, status.failure_reasons) == (1, 1, {"Unregistered": 1})
    assert await h.audience.page(APP, message().audience, None, 10, START) == [members[1]]


async def test_flaky_tokens_are_retried_after_the_retry_after_then_sent() -> None:
    inbox = FakeInbox()
    members = [Recipient("r1", Platform.FCM, "flaky-1"), Recipient("r2", Platform.FCM, "ok")]
    h = harness(members, SimulatorProvider(inbox, ManualClock(START), retry_after=0.5))
    await h.publish_and_run()

    status = await h.status()
    assert (status.sent, status.failed) == (2, 0)
    assert h.sleep.delays == [0.5]  # the Retry-After beats the 0.25 s first backoff
    assert sorted(d.device_token for d, _ in inbox.recorded) == ["flaky-1", "ok"]


async def test_retries_are_bounded_and_what_still_fails_is_counted() -> None:
    busy = DeliveryResult(DeliveryOutcome.RETRY, "TooManyRequests")
    h = harness(recipients(3), ScriptedProvider(lambda d: busy))
    await h.publish_and_run()

    assert [len(batch) for batch in h.provider.batches] == [3, 3, 3, 3]
    assert h.sleep.delays == [0.25, 0.5, 1.0]
    status = await h.status()
    assert (status.sent, status.failed, status.failure_reasons) == (0, 3, {"TooManyRequests": 3})


async def test_rejections_and_render_failures_are_counted_by_reason() -> None:
    members = [
        Recipient("r1", Platform.FCM, "rejected-1", metadata={"name": "Ann"}),
        Recipient("r2", Platform.APNS, "ok", metadata={"name": "x" * 5000}),
        Recipient("r3", Platform.APNS, "ok", metadata={"name": "Bob"}),
    ]
    h = harness(members, SimulatorProvider(FakeInbox(), ManualClock(START)))
    await h.publish_and_run(NotificationContent(message="hi {{name}}"))

    status = await h.status()
    assert (status.targeted, status.sent, status.failed) == (3, 1, 2)
    assert status.failure_reasons == {"PayloadRejected": 1, "PAYLOAD_TOO_LARGE": 1}
    assert status.per_platform[Platform.APNS].failed == 1


async def test_payloads_are_rendered_per_recipient() -> None:
    members = [Recipient("r1", Platform.FCM, "t1", metadata={"name": "Ann"})]
    h = harness(members)
    await h.publish_and_run(NotificationContent(message="hi {{name}}"))

    [[delivery]] = h.provider.batches
    assert (delivery.message_id, delivery.app_id, delivery.registration_id) == ("m-1", APP, "r1")
    assert b'"token":"t1"' in delivery.payload
    assert b'"body":"hi Ann"' in delivery.payload


async def test_a_cancel_during_the_run_stops_it() -> None:
    h = harness(recipients(30))

    def cancel() -> None:
        h.messages.rows["m-1"].state = MessageState.CANCELLED

    h.messages.before_record = cancel
    await h.publish_and_run()

    assert len(h.provider.batches) == 1
    status = await h.status()
    assert (status.state, status.run_count) == (MessageState.CANCELLED, 0)


async def test_an_unexpected_error_fails_the_message() -> None:
    class Broken:
        async def send(self, deliveries: Sequence[Delivery]) -> list[DeliveryResult]:
            raise RuntimeError("socket on fire")

    h = harness(recipients(3), Broken())
    await h.publish_and_run()

    status = await h.status()
    assert status.state is MessageState.FAILED
    assert status.error_message is not None
    assert "RuntimeError: socket on fire" in status.error_message
    assert h.signal.notified[-1] == "m-1"


async def test_watchers_are_notified_at_the_start_after_each_chunk_and_at_the_end() -> None:
    h = harness(recipients(25))
    await h.publish_and_run()
    assert h.signal.notified == ["m-1"] * 5


async def test_an_empty_audience_publishes_without_chunks() -> None:
    h = harness([])
    await h.publish_and_run()
    assert h.provider.batches == []
    assert (await h.status()).state is MessageState.PUBLISHED


async def test_a_repeating_message_is_scheduled_for_its_next_slot() -> None:
    h = harness(recipients(2))
    await h.messages.create(message(repeat_every=timedelta(minutes=1)))
    [run] = await h.messages.claim_due(h.clock.now(), h.dispatcher.lease, 1)
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
    h = harness(recipients(50), chunk_size=chunk_size)
    await h.publish_and_run()
    assert sorted(h.provider.tokens) == sorted(f"tok-{i}" for i in range(50))
