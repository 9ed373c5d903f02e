"""Scheduling with the controlled clock, and what GetMessageStatus reports.

The session server runs on a ManualClock: nothing falls due until a test moves
the clock (only ever forward, and only by seconds, since the clock is shared),
and `server.scheduler.run_due()` claims what is due without waiting for the
scheduler's own timer. Issue 3, sections 3, 5 and 6.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import duration_pb2

from pushhub_server.delivery.providers.simulator import FLAKY, INVALID, REJECTED

from .harness import (
    APNS,
    CANCELLED,
    FCM,
    PUBLISHED,
    SCHEDULED,
    AppHandle,
    StoreProbe,
    expect_error,
    injected_token,
    new_token,
    platform_counts,
    settle,
    timestamp,
)

SECOND = timedelta(seconds=1)


def every(value: timedelta) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def moment(stamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


async def test_delayed_send_waits_for_publish_at(
    server, app: AppHandle, store: StoreProbe, clock
) -> None:
    registration_id = (await app.register()).registration.registration_id
    publish_at = clock.now() + 2 * SECOND
    response = await app.publish(message="later", publish_at=timestamp(publish_at))

    await server.scheduler.run_due()
    status = await app.status(response.message_id)
    assert status.state == SCHEDULED
    assert moment(status.next_run_at) == publish_at
    assert (status.run_count, status.targeted_count, status.sent_count) == (0, 0, 0)
    assert await store.deliveries(app, response.message_id) == []

    clock.advance(SECOND)  # still early
    await server.scheduler.run_due()
    assert (await app.status(response.message_id)).state == SCHEDULED
    assert await store.deliveries(app, response.message_id) == []

    clock.advance(SECOND)  # publish_at is now
    status = await settle(server, app, response.message_id)
    assert status.state == PUBLISHED
    assert (status.run_count, status.sent_count) == (1, 1)
    assert not status.HasField("next_run_at")
    [entry] = await store.deliveries(app, response.message_id)
    assert entry.registration_id == registration_id
    assert entry.delivered_at == publish_at


async def test_repeat_runs_until_repeat_expires_at(
    server, app: AppHandle, store: StoreProbe, clock
) -> None:
    registration_id = (await app.register()).registration.registration_id
    start = clock.now()
    response = await app.publish(
        message="tick",
        repeat_every=every(SECOND),
        repeat_expires_at=timestamp(start + 3 * SECOND),
    )
    # Slots at start, +1 s, +2 s and +3 s (a slot at repeat_expires_at still runs).
    for run in range(1, 4):
        status = await settle(server, app, response.message_id, runs=run)
        assert (status.state, status.run_count) == (SCHEDULED, run), status
        assert moment(status.next_run_at) == start + run * SECOND
        # Nothing more before the next slot.
        await server.scheduler.run_due()
        assert (await app.status(response.message_id)).run_count == run
        clock.advance(SECOND)
    status = await settle(server, app, response.message_id)
    assert (status.state, status.run_count) == (PUBLISHED, 4)
    assert not status.HasField("next_run_at")
    # Counters add up over the runs.
    assert (status.targeted_count, status.sent_count, status.failed_count) == (4, 4, 0)

    entries = await store.deliveries(app, response.message_id)
    assert [entry.registration_id for entry in entries] == [registration_id] * 4
    assert [entry.delivered_at for entry in entries] == [start + n * SECOND for n in range(4)]

    clock.advance(SECOND)
    await server.scheduler.run_due()
    assert (await app.status(response.message_id)).run_count == 4


async def test_cancel_stops_a_repeat(server, app: AppHandle, store: StoreProbe, clock) -> None:
    await app.register()
    response = await app.publish(message="tick", repeat_every=every(SECOND))
    status = await settle(server, app, response.message_id, runs=1)
    assert (status.state, status.run_count) == (SCHEDULED, 1)

    cancelled = await app.cancel(response.message_id)
    assert cancelled.state == CANCELLED
    clock.advance(SECOND)
    await server.scheduler.run_due()
    status = await app.status(response.message_id)
    assert (status.state, status.run_count) == (CANCELLED, 1)
    assert not status.HasField("next_run_at")
    assert len(await store.deliveries(app, response.message_id)) == 1
    await expect_error(
        app.cancel(response.message_id), grpc.StatusCode.FAILED_PRECONDITION, "MESSAGE_FINISHED"
    )


async def test_cancel_a_delayed_repeat_before_its_first_run(
    server, app: AppHandle, store: StoreProbe, clock
) -> None:
    await app.register()
    response = await app.publish(
        message="tick", publish_at=timestamp(clock.now() + SECOND), repeat_every=every(SECOND)
    )
    await app.cancel(response.message_id)
    clock.advance(SECOND)
    await server.scheduler.run_due()
    status = await app.status(response.message_id)
    assert (status.state, status.run_count) == (CANCELLED, 0)
    assert await store.deliveries(app, response.message_id) == []


async def test_missed_repeats_merge_into_one_catch_up_run(
    server, app: AppHandle, store: StoreProbe, clock
) -> None:
    await app.register()
    start = clock.now()
    response = await app.publish(
        message="tick",
        repeat_every=every(SECOND),
        repeat_expires_at=timestamp(start + 60 * SECOND),
    )
    status = await settle(server, app, response.message_id, runs=1)
    assert status.run_count == 1

    # "Down" across five slots (+1 .. +5 s): they merge into exactly one run.
    clock.advance(timedelta(seconds=5.5))
    status = await settle(server, app, response.message_id, runs=2)
    assert (status.state, status.run_count) == (SCHEDULED, 2)
    # The next slot is the first one after now, on the original grid.
    assert moment(status.next_run_at) == start + 6 * SECOND
    for _ in range(3):
        await server.scheduler.run_due()
    assert (await app.status(response.message_id)).run_count == 2
    assert len(await store.deliveries(app, response.message_id)) == 2
    await app.cancel(response.message_id)


async def test_a_catch_up_after_repeat_expires_at_is_not_sent(
    server, app: AppHandle, store: StoreProbe, clock
) -> None:
    await app.register()
    start = clock.now()
    response = await app.publish(
        message="tick",
        repeat_every=every(SECOND),
        repeat_expires_at=timestamp(start + 2.5 * SECOND),
    )
    status = await settle(server, app, response.message_id, runs=1)
    assert (status.state, status.run_count) == (SCHEDULED, 1)

    # "Down" across the slots at +1 s and +2 s, until more than a lease (60 s)
    # after repeat_expires_at: the catch-up run would start too late, so the
    # repeat is over.
    clock.advance(64 * SECOND)
    status = await settle(server, app, response.message_id)
    assert (status.state, status.run_count, status.sent_count) == (PUBLISHED, 1, 1)
    assert not status.HasField("next_run_at")
    assert len(await store.deliveries(app, response.message_id)) == 1


async def test_a_delayed_message_missed_by_far_runs_once(
    server, app: AppHandle, store: StoreProbe, clock
) -> None:
    await app.register()
    response = await app.publish(message="late", publish_at=timestamp(clock.now() + SECOND))
    clock.advance(3 * SECOND)
    status = await settle(server, app, response.message_id)
    assert (status.state, status.run_count, status.sent_count) == (PUBLISHED, 1, 1)
    assert len(await store.deliveries(app, response.message_id)) == 1


# ------------------------------------------------------------------ status ----


async def test_message_status_counts_platforms_and_failure_reasons(
    server, app: AppHandle, store: StoreProbe
) -> None:
    ids = {}
    for name, platform, token in [
        ("apns-ok", APNS, new_token()),
        ("apns-gone", APNS, injected_token(INVALID, APNS)),
        ("apns-flaky", APNS, injected_token(FLAKY, APNS)),
        ("fcm-ok", FCM, "fcm-" + new_token()),
        ("fcm-rejected", FCM, injected_token(REJECTED, FCM)),
        ("fcm-flaky", FCM, injected_token(FLAKY, FCM)),
    ]:
        response = await app.register(platform=platform, device_token=token)
        ids[name] = response.registration.registration_id

    response = await app.publish(message="status", broadcast=True)
    status = await settle(server, app, response.message_id)
    assert status.message_id == response.message_id
    assert status.state == PUBLISHED
    assert (status.targeted_count, status.sent_count, status.failed_count) == (6, 4, 2)
    assert platform_counts(status) == {APNS: (3, 2, 1), FCM: (3, 2, 1)}
    assert dict(status.failure_reasons) == {"Unregistered": 1, "PayloadRejected": 1}
    assert status.run_count == 1
    assert not status.HasField("next_run_at")
    assert status.error_message == ""

    # flaky-… failed once with a retryable error, was retried and delivered once.
    delivered = await store.recipients(app, response.message_id)
    assert delivered == sorted([ids["apns-ok"], ids["apns-flaky"], ids["fcm-ok"], ids["fcm-flaky"]])

    # The next run of the same audience leaves the invalidated registration out.
    again = await app.publish(message="status", broadcast=True)
    status = await settle(server, app, again.message_id)
    assert (status.targeted_count, status.sent_count, status.failed_count) == (5, 4, 1)
    assert dict(status.failure_reasons) == {"PayloadRejected": 1}


async def test_status_of_a_scheduled_message(app: AppHandle, clock) -> None:
    publish_at = clock.now() + timedelta(hours=2)
    response = await app.publish(
        message="later", publish_at=timestamp(publish_at), repeat_every=every(timedelta(hours=1))
    )
    status = await app.status(response.message_id)
    assert status.message_id == response.message_id
    assert status.state == SCHEDULED
    assert moment(status.next_run_at) == publish_at
    assert (status.targeted_count, status.sent_count, status.failed_count) == (0, 0, 0)
    assert list(status.platform_counts) == []
    assert dict(status.failure_reasons) == {}
    assert status.run_count == 0
    await app.cancel(response.message_id)


async def test_message_with_an_empty_audience_is_published(server, app: AppHandle) -> None:
    response = await app.publish(message="nobody", channel="empty-channel")
    status = await settle(server, app, response.message_id)
    assert (status.state, status.run_count) == (PUBLISHED, 1)
    assert (status.targeted_count, status.sent_count, status.failed_count) == (0, 0, 0)


async def test_status_needs_a_server_key_and_a_known_message(app: AppHandle) -> None:
    response = await app.publish(message="x", channel="empty-channel")
    await expect_error(
        app.status(response.message_id, auth=app.device()),
        grpc.StatusCode.PERMISSION_DENIED,
        "SERVER_KEY_REQUIRED",
    )
    await expect_error(
        app.status("no-such-message"), grpc.StatusCode.NOT_FOUND, "MESSAGE_NOT_FOUND"
    )
