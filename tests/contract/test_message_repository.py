"""MessageRepository: idempotent creates, claims under leases and claim numbers,
checkpoints, the same on every store.

claim_due is not scoped by app: on the SQL stores, shared by the session, each
case keeps only the runs of its own messages.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pushhub_server.core.messages import (
    Audience,
    ChunkOutcome,
    Message,
    MessageState,
    PlatformCounts,
    Run,
    Schedule,
)
from pushhub_server.core.models import Platform
from tests.store_records import device, message, upsert_one

from .conftest import Stores

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
APNS, FCM = Platform.APNS, Platform.FCM


async def claimed(stores: Stores, item: Message, now: datetime) -> list[Run]:
    runs = (await stores.messages.claim_due(now, LEASE, 10_000)).runs
    return [run for run in runs if run.message.message_id == item.message_id]


async def started(stores: Stores, item: Message) -> Run:
    await stores.messages.create(item)
    [run] = await claimed(stores, item, item.schedule.first_run_at)
    return run


def chunk(cursor: str) -> ChunkOutcome:
    return ChunkOutcome(
        cursor=cursor,
        targeted={APNS: 2, FCM: 1},
        sent={APNS: 1, FCM: 1},
        failed={APNS: 1},
        failure_reasons={"Unregistered": 1},
    )


async def live_ids(stores: Stores, app_id: str) -> list[str]:
    """The app's registrations a broadcast would reach now."""
    everyone = await stores.audience.page(app_id, Audience(broadcast=True), None, 100, NOW)
    return [recipient.registration_id for recipient in everyone]


async def state(stores: Stores, item: Message) -> MessageState:
    status = await stores.messages.status(item.app_id, item.message_id)
    assert status is not None
    return status.state


async def test_create_is_idempotent_on_request_id(stores: Stores, app_id: str) -> None:
    first = message(app_id, request_id="req-1")
    assert await stores.messages.create(first) == (first.message_id, True)
    assert await stores.messages.create(message(app_id, request_id="req-1")) == (
        first.message_id,
        False,
    )
    assert await stores.messages.find_request(app_id, "req-1") == first.message_id

    other = await stores.new_app()
    elsewhere = message(other, request_id="req-1")
    assert await stores.messages.create(elsewhere) == (elsewhere.message_id, True)
    plain = [message(app_id), message(app_id)]  # without request_id: each one stored
    assert [await stores.messages.create(m) for m in plain] == [(m.message_id, True) for m in plain]
    assert await stores.messages.find_request(app_id, "req-2") is None


async def test_a_new_message_is_scheduled_and_only_its_app_sees_it(
    stores: Stores, app_id: str
) -> None:
    item = message(app_id)
    await stores.messages.create(item)

    status = await stores.messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.next_run_at, status.run_count) == (MessageState.SCHEDULED, NOW, 0)
    assert (status.targeted, status.sent, status.failed, status.per_platform) == (0, 0, 0, {})
    other = await stores.new_app()
    assert await stores.messages.status(other, item.message_id) is None
    assert not await stores.messages.cancel(other, item.message_id, NOW)


async def test_a_run_is_claimed_once_when_due(stores: Stores, app_id: str) -> None:
    item = message(app_id)
    await stores.messages.create(item)

    assert await claimed(stores, item, NOW - timedelta(seconds=1)) == []
    [run] = await claimed(stores, item, NOW)
    assert (run.run_at, run.cursor) == (NOW, None)
    assert run.message == item
    assert await state(stores, item) == MessageState.PUBLISHING
    # Under its lease nobody else claims it.
    assert await claimed(stores, item, NOW + LEASE / 2) == []


async def test_excluded_messages_are_not_claimed(stores: Stores, app_id: str) -> None:
    item = message(app_id)
    await stores.messages.create(item)
    runs = (await stores.messages.claim_due(NOW, LEASE, 10_000, exclude=[item.message_id])).runs
    assert item.message_id not in [run.message.message_id for run in runs]


async def test_an_abandoned_run_resumes_under_a_new_claim(stores: Stores, app_id: str) -> None:
    item = message(app_id)
    registration_id = (
        await upsert_one(stores.registrations, app_id, device())
    ).registration.registration_id
    run = await started(stores, item)
    assert await stores.messages.record_chunk(item.message_id, run.claim, chunk("r1"), NOW, LEASE)

    # The lease (extended by the checkpoint) runs out: another dispatcher resumes after it.
    assert await claimed(stores, item, NOW + LEASE - timedelta(microseconds=1)) == []
    later = NOW + 2 * LEASE
    [resumed] = await claimed(stores, item, later)
    assert (resumed.cursor, resumed.run_at) == ("r1", NOW)
    assert resumed.claim > run.claim

    # The first dispatcher's writes are refused and change nothing.
    messages = stores.messages
    stale = replace(chunk("r9"), invalid_registration_ids=[registration_id])
    assert not await messages.record_chunk(item.message_id, run.claim, stale, later, LEASE)
    assert not await messages.renew_lease(item.message_id, run.claim, later, LEASE)
    await messages.finish_run(item.message_id, run.claim, None, later)
    assert not await messages.fail(item.message_id, run.claim, "stale", later)
    status = await messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.targeted, status.error_message) == (
        MessageState.PUBLISHING,
        3,
        None,
    )
    assert await live_ids(stores, app_id) == [registration_id]  # its invalid token untouched
    assert await messages.record_chunk(item.message_id, resumed.claim, chunk("r2"), later, LEASE)


async def test_renewing_the_lease_keeps_the_run(stores: Stores, app_id: str) -> None:
    item = message(app_id)
    run = await started(stores, item)
    renewed_at = NOW + LEASE / 2
    assert await stores.messages.renew_lease(item.message_id, run.claim, renewed_at, LEASE)
    assert await claimed(stores, item, NOW + LEASE) == []
    due = await stores.messages.next_due_at()
    assert due is not None and due <= renewed_at + LEASE
    [resumed] = await claimed(stores, item, NOW + LEASE * 2)

    assert await stores.messages.cancel(app_id, item.message_id, NOW + LEASE * 2)
    assert not await stores.messages.renew_lease(
        item.message_id, resumed.claim, NOW + LEASE * 2, LEASE
    )


async def test_chunks_add_up_per_platform_and_reason(stores: Stores, app_id: str) -> None:
    item = message(app_id)
    run = await started(stores, item)
    for cursor in ("r1", "r2"):
        assert await stores.messages.record_chunk(
            item.message_id, run.claim, chunk(cursor), NOW, LEASE
        )

    status = await stores.messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.targeted, status.sent, status.failed) == (6, 4, 2)
    assert status.per_platform == {APNS: PlatformCounts(4, 2, 2), FCM: PlatformCounts(2, 2, 0)}
    assert status.failure_reasons == {"Unregistered": 2}


async def test_a_cancel_stops_the_run_after_its_chunk_in_flight(
    stores: Stores, app_id: str
) -> None:
    item = message(app_id)
    registration_id = (
        await upsert_one(stores.registrations, app_id, device())
    ).registration.registration_id
    run = await started(stores, item)
    assert await stores.messages.cancel(app_id, item.message_id, NOW)

    # The chunk in flight was sent: it is counted, its invalid token invalidated,
    # and the dispatcher told to stop.
    in_flight = replace(chunk("r1"), invalid_registration_ids=[registration_id])
    assert not await stores.messages.record_chunk(item.message_id, run.claim, in_flight, NOW, LEASE)
    await stores.messages.finish_run(item.message_id, run.claim, None, NOW)
    status = await stores.messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.targeted) == (MessageState.CANCELLED, 3)
    assert await live_ids(stores, app_id) == []
    assert not await stores.messages.cancel(app_id, item.message_id, NOW)
    assert await claimed(stores, item, NOW + 2 * LEASE) == []


async def test_finishing_a_repeat_schedules_its_next_run(stores: Stores, app_id: str) -> None:
    item = message(app_id, schedule=Schedule(NOW, repeat_every=timedelta(hours=1)))
    run = await started(stores, item)
    next_run = NOW + timedelta(hours=1)

    await stores.messages.finish_run(item.message_id, run.claim, next_run, NOW)

    status = await stores.messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.next_run_at, status.run_count) == (
        MessageState.SCHEDULED,
        next_run,
        1,
    )
    next_due = await stores.messages.next_due_at()
    assert next_due is not None and next_due <= next_run
    [second] = await claimed(stores, item, next_run)
    assert (second.run_at, second.cursor) == (next_run, None)
    await stores.messages.finish_run(item.message_id, second.claim, None, next_run)
    assert await state(stores, item) == MessageState.PUBLISHED


async def test_a_failed_run_ends_the_message(stores: Stores, app_id: str) -> None:
    item = message(app_id)
    run = await started(stores, item)
    assert await stores.messages.fail(item.message_id, run.claim, "provider refused", NOW)

    status = await stores.messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.error_message) == (MessageState.FAILED, "provider refused")
    assert not await stores.messages.cancel(app_id, item.message_id, NOW)
    # Failed once: a second fail (another partition's dispatcher) says it did nothing.
    assert not await stores.messages.fail(item.message_id, run.claim, "again", NOW)


async def test_a_run_cancelled_meanwhile_is_not_failed(stores: Stores, app_id: str) -> None:
    """The cancel ended the message (and counted it): a fail after it says False."""
    item = message(app_id)
    run = await started(stores, item)
    assert await stores.messages.cancel(app_id, item.message_id, NOW)

    assert not await stores.messages.fail(item.message_id, run.claim, "provider refused", NOW)
    assert await state(stores, item) == MessageState.CANCELLED


async def test_a_repeat_starting_after_it_expired_ends_unsent(stores: Stores, app_id: str) -> None:
    schedule = Schedule(NOW, timedelta(hours=1), repeat_expires_at=NOW + timedelta(hours=2))
    item = message(app_id, schedule=schedule)
    await stores.messages.create(item)

    claims = await stores.messages.claim_due(NOW + timedelta(hours=3), LEASE, 10_000)
    assert item.message_id not in [run.message.message_id for run in claims.runs]
    assert item.message_id in claims.ended  # reported once, for its claimer to count
    assert await state(stores, item) == MessageState.PUBLISHED
    later = await stores.messages.claim_due(NOW + timedelta(hours=4), LEASE, 10_000)
    assert item.message_id not in later.ended
