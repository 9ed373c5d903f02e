from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.ids import new_id
from pushhub_server.core.messages import (
    Audience,
    ChunkOutcome,
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    Message,
    MessageState,
    PlatformCounts,
    Run,
    Schedule,
)
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.delivery.dispatcher import Dispatcher
from pushhub_server.delivery.retry_policy import RetryPolicy
from pushhub_server.store import (
    Database,
    SqlAppRepository,
    SqlAudienceReader,
    SqlMessageRepository,
    SqlRegistrationRepository,
)
from tests.fakes.delivery import (
    SENT,
    CountingSignal,
    RecordingProvider,
    ScriptedProvider,
)

from .conftest import create_app
from .test_store_registrations import device, upsert_one

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
APNS, FCM = Platform.APNS, Platform.FCM


@pytest.fixture
def messages(db: Database) -> SqlMessageRepository:
    return SqlMessageRepository(db)


def message(app_id: str, **changes: object) -> Message:
    item = Message(
        message_id=new_id(),
        app_id=app_id,
        content=NotificationContent(message="hi {{name}}", headers={"kind": "news"}, badge=0),
        audience=Audience(channel="news", tag_expression="a && !b", platforms=(FCM,)),
        schedule=Schedule(NOW),
        created_at=NOW,
    )
    return replace(item, **changes)  # type: ignore[arg-type]


async def claim(
    repo: SqlMessageRepository,
    app_id: str,
    now: datetime,
    limit: int = 1000,
    exclude: Sequence[str] = (),
) -> list[Run]:
    """This app's share of the claim: the database is shared with other tests."""
    runs = (await repo.claim_due(now, LEASE, limit, exclude)).runs
    return [run for run in runs if run.message.app_id == app_id]


async def started(repo: SqlMessageRepository, item: Message) -> Run:
    await repo.create(item)
    [run] = await claim(repo, item.app_id, item.schedule.first_run_at)
    return run


def chunk(cursor: str, invalid: tuple[str, ...] = ()) -> ChunkOutcome:
    return ChunkOutcome(
        cursor=cursor,
        targeted={APNS: 2, FCM: 1},
        sent={APNS: 1, FCM: 1},
        failed={APNS: 1},
        failure_reasons={"Unregistered": 1},
        invalid_registration_ids=list(invalid),
    )


async def test_create_is_idempotent_on_request_id(
    messages: SqlMessageRepository, apps: SqlAppRepository, app_id: str
) -> None:
    first = message(app_id, request_id="req-1")
    assert await messages.create(first) == (first.message_id, True)
    assert await messages.create(message(app_id, request_id="req-1")) == (first.message_id, False)

    other_app = (await create_app(apps)).app_id
    again = message(other_app, request_id="req-1")
    assert await messages.create(again) == (again.message_id, True)
    plain = [message(app_id), message(app_id)]
    assert [await messages.create(item) for item in plain] == [(m.message_id, True) for m in plain]


async def test_concurrent_creates_store_one_message(
    messages: SqlMessageRepository, app_id: str
) -> None:
    twins = [message(app_id, request_id="twin") for _ in range(4)]
    results = await asyncio.gather(*(messages.create(item) for item in twins))
    assert [created for _, created in results].count(True) == 1
    assert len({message_id for message_id, _ in results}) == 1


async def test_new_message_status(messages: SqlMessageRepository, app_id: str) -> None:
    item = message(app_id)
    await messages.create(item)
    status = await messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.targeted, status.sent, status.failed) == (
        MessageState.SCHEDULED,
        0,
        0,
        0,
    )
    assert (status.run_count, status.next_run_at, status.per_platform) == (0, NOW, {})
    assert await messages.status("another-app", item.message_id) is None


async def test_claim_starts_a_leased_run_when_due(
    messages: SqlMessageRepository, app_id: str
) -> None:
    later = NOW + timedelta(seconds=10)
    item = message(app_id, schedule=Schedule(later, timedelta(minutes=1), NOW + timedelta(hours=1)))
    await messages.create(item)
    assert await claim(messages, app_id, NOW) == []

    [run] = await claim(messages, app_id, later + timedelta(seconds=1))
    assert run == Run(item, claim=1, run_at=later, cursor=None)
    status = await messages.status(app_id, item.message_id)
    assert status is not None and status.state is MessageState.PUBLISHING
    assert await claim(messages, app_id, later + LEASE) == []  # leased until later + 1s + LEASE
    due = await messages.next_due_at()
    assert due is not None and due <= later + timedelta(seconds=1) + LEASE


async def test_expired_lease_resumes_after_the_checkpoint(
    messages: SqlMessageRepository, app_id: str
) -> None:
    run = await started(messages, message(app_id))
    assert await messages.record_chunk(run.message.message_id, 1, chunk("r-5"), NOW, LEASE)

    assert await claim(messages, app_id, NOW + LEASE - timedelta(microseconds=1)) == []
    [resumed] = await claim(messages, app_id, NOW + LEASE)
    assert resumed == replace(run, claim=2, cursor="r-5")
    status = await messages.status(app_id, run.message.message_id)
    assert status is not None and (status.state, status.targeted) == (MessageState.PUBLISHING, 3)


async def test_a_dispatcher_that_lost_its_claim_can_write_nothing(
    db: Database,
    messages: SqlMessageRepository,
    registrations: SqlRegistrationRepository,
    app_id: str,
) -> None:
    """Claim 1 outlived its lease and claim 2 resumed the run: claim 1's chunk,
    renewal, finish and failure are all refused, its invalid tokens untouched."""
    registration_id = await _register(registrations, app_id)
    run = await started(messages, message(app_id))
    message_id = run.message.message_id
    [resumed] = await claim(messages, app_id, NOW + LEASE)
    assert resumed.claim == run.claim + 1

    later = NOW + LEASE
    assert not await messages.record_chunk(
        message_id, run.claim, chunk("r-1", (registration_id,)), later, LEASE
    )
    assert not await messages.renew_lease(message_id, run.claim, later, LEASE)
    await messages.finish_run(message_id, run.claim, None, later)
    await messages.fail(message_id, run.claim, "stale", later)

    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.targeted, status.run_count, status.error_message) == (
        MessageState.PUBLISHING,
        0,
        0,
        None,
    )
    everyone = Audience(broadcast=True)
    assert len(await SqlAudienceReader(db).page(app_id, everyone, None, 10, later)) == 1
    assert await messages.record_chunk(message_id, resumed.claim, chunk("r-1"), later, LEASE)


async def test_renewing_the_lease_keeps_the_run_claimed(
    messages: SqlMessageRepository, app_id: str
) -> None:
    run = await started(messages, message(app_id))
    message_id = run.message.message_id
    renewed_at = NOW + LEASE / 2
    assert await messages.renew_lease(message_id, run.claim, renewed_at, LEASE)

    assert await claim(messages, app_id, NOW + LEASE) == []
    due = await messages.next_due_at()
    assert due is not None and due <= renewed_at + LEASE
    [resumed] = await claim(messages, app_id, renewed_at + LEASE)
    assert (resumed.claim, resumed.cursor) == (run.claim + 1, None)

    assert await messages.cancel(app_id, message_id, renewed_at + LEASE)
    assert not await messages.renew_lease(message_id, resumed.claim, renewed_at + LEASE, LEASE)


async def test_claim_leaves_out_the_excluded_messages(
    messages: SqlMessageRepository, app_id: str
) -> None:
    """The claiming scheduler is still running them, even with their lease run out."""
    past = datetime(1992, 1, 1, tzinfo=UTC)
    running = await started(messages, message(app_id, schedule=Schedule(past)))
    waiting = message(app_id, schedule=Schedule(past))
    await messages.create(waiting)
    busy = [running.message.message_id]

    [other] = await claim(messages, app_id, past + LEASE, exclude=busy)
    assert other.message.message_id == waiting.message_id
    assert await claim(messages, app_id, past + LEASE, exclude=busy) == []
    [resumed] = await claim(messages, app_id, past + LEASE)
    assert resumed.message.message_id == running.message.message_id


async def test_claim_respects_its_limit(messages: SqlMessageRepository, app_id: str) -> None:
    # Long before every other test's messages, so only these are due.
    past = datetime(1990, 1, 1, tzinfo=UTC)
    for _ in range(3):
        await messages.create(message(app_id, schedule=Schedule(past)))
    assert len(await claim(messages, app_id, past, limit=2)) == 2
    assert len(await claim(messages, app_id, past, limit=2)) == 1


async def test_concurrent_claims_never_share_a_run(
    messages: SqlMessageRepository, app_id: str
) -> None:
    past = datetime(1991, 1, 1, tzinfo=UTC)
    created = {
        (await messages.create(message(app_id, schedule=Schedule(past))))[0] for _ in range(5)
    }
    batches = await asyncio.gather(*(claim(messages, app_id, past, limit=2) for _ in range(4)))
    claimed = [run.message.message_id for batch in batches for run in batch]
    assert sorted(claimed) == sorted(created)


async def test_chunks_add_counters_and_invalidate_tokens(
    db: Database,
    messages: SqlMessageRepository,
    registrations: SqlRegistrationRepository,
    apps: SqlAppRepository,
    app_id: str,
) -> None:
    ids = [await _register(registrations, app_id) for _ in range(3)]
    foreign_app = (await create_app(apps)).app_id
    foreign = await _register(registrations, foreign_app)
    run = await started(messages, message(app_id))
    message_id = run.message.message_id

    assert await messages.record_chunk(message_id, 1, chunk(ids[0], (ids[0],)), NOW, LEASE)
    assert await messages.record_chunk(message_id, 1, chunk(ids[2], (ids[2], foreign)), NOW, LEASE)

    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.targeted, status.sent, status.failed) == (6, 4, 2)
    assert status.per_platform == {APNS: PlatformCounts(4, 2, 2), FCM: PlatformCounts(2, 2, 0)}
    assert status.failure_reasons == {"Unregistered": 2}
    reader = SqlAudienceReader(db)
    everyone = Audience(broadcast=True)
    assert [r.registration_id for r in await reader.page(app_id, everyone, None, 10, NOW)] == [
        ids[1]
    ]
    # Another app's registration is never touched, even when named.
    assert len(await reader.page(foreign_app, everyone, None, 10, NOW)) == 1


async def test_cancel_stops_the_run_in_progress_keeping_its_chunk_in_flight(
    db: Database,
    messages: SqlMessageRepository,
    registrations: SqlRegistrationRepository,
    app_id: str,
) -> None:
    registration_id = await _register(registrations, app_id)
    run = await started(messages, message(app_id))
    message_id = run.message.message_id
    assert await messages.cancel(app_id, message_id, NOW)
    # The chunk was sent before the cancel: recorded, invalid token included; then stop.
    assert not await messages.record_chunk(
        message_id, 1, chunk("r-1", (registration_id,)), NOW, LEASE
    )
    await messages.finish_run(message_id, 1, None, NOW)

    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.targeted, status.next_run_at, status.run_count) == (
        MessageState.CANCELLED,
        3,
        None,
        0,
    )
    assert status.failure_reasons == {"Unregistered": 1}
    everyone = Audience(broadcast=True)
    assert await SqlAudienceReader(db).page(app_id, everyone, None, 10, NOW) == []
    assert not await messages.cancel(app_id, message_id, NOW)
    assert await claim(messages, app_id, NOW + 2 * LEASE) == []


async def test_cancel_scheduled_and_other_apps(messages: SqlMessageRepository, app_id: str) -> None:
    item = message(app_id, schedule=Schedule(NOW + timedelta(days=1)))
    await messages.create(item)
    assert not await messages.cancel("another-app", item.message_id, NOW)
    assert await messages.cancel(app_id, item.message_id, NOW)
    assert await claim(messages, app_id, NOW + timedelta(days=2)) == []


async def test_repeating_message_runs_until_finished(
    messages: SqlMessageRepository, app_id: str
) -> None:
    every = timedelta(minutes=1)
    run = await started(messages, message(app_id, schedule=Schedule(NOW, every)))
    message_id = run.message.message_id
    await messages.record_chunk(message_id, 1, chunk("r-9"), NOW, LEASE)
    await messages.finish_run(message_id, 1, NOW + every, NOW)

    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.run_count, status.next_run_at) == (
        MessageState.SCHEDULED,
        1,
        NOW + every,
    )
    [second] = await claim(messages, app_id, NOW + every)
    assert (second.claim, second.run_at, second.cursor) == (2, NOW + every, None)
    assert not await messages.record_chunk(message_id, 1, chunk("r-1"), NOW, LEASE)  # old run

    await messages.finish_run(message_id, 2, None, NOW + every)
    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.run_count, status.next_run_at, status.targeted) == (
        MessageState.PUBLISHED,
        2,
        None,
        3,
    )
    assert not await messages.cancel(app_id, message_id, NOW)


async def test_a_catch_up_past_repeat_expires_at_ends_the_repeat(
    messages: SqlMessageRepository, app_id: str
) -> None:
    every = timedelta(minutes=1)
    item = message(app_id, schedule=Schedule(NOW, every, NOW + 2 * every))
    run = await started(messages, item)
    await messages.finish_run(item.message_id, run.claim, NOW + every, NOW)

    # Down from before the 1-minute slot until after the last one (2 minutes).
    assert await claim(messages, app_id, NOW + 3 * every) == []
    status = await messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.run_count, status.next_run_at) == (
        MessageState.PUBLISHED,
        1,
        None,
    )


@pytest.mark.parametrize("down_for", [timedelta(minutes=55), timedelta(minutes=65)])
async def test_a_first_run_starting_past_repeat_expires_at_ends_the_repeat_whatever_the_grid(
    messages: SqlMessageRepository, app_id: str, down_for: timedelta
) -> None:
    """Hourly until 30 minutes in: down until before the next slot or after it,
    the run would start past the expiry (and a lease), so nothing goes out."""
    item = message(app_id, schedule=Schedule(NOW, timedelta(hours=1), NOW + timedelta(minutes=30)))
    await messages.create(item)

    assert await claim(messages, app_id, NOW + down_for) == []
    status = await messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.run_count, status.next_run_at) == (
        MessageState.PUBLISHED,
        0,
        None,
    )


async def test_a_late_claim_of_the_slot_at_repeat_expires_at_still_runs(
    messages: SqlMessageRepository, app_id: str
) -> None:
    every = timedelta(minutes=1)
    item = message(app_id, schedule=Schedule(NOW, every, NOW + every))
    run = await started(messages, item)
    await messages.finish_run(item.message_id, run.claim, NOW + every, NOW)

    [last] = await claim(messages, app_id, NOW + every + timedelta(seconds=5))
    assert (last.claim, last.run_at) == (2, NOW + every)


async def test_a_provider_reason_longer_than_the_column_is_stored_cut_and_the_run_ends(
    db: Database,
    messages: SqlMessageRepository,
    registrations: SqlRegistrationRepository,
    app_id: str,
) -> None:
    """PostgreSQL refuses a reason over VARCHAR(255): uncut, every checkpoint of
    the chunk failed and the chunk was resent on every resume."""
    long = "BadGateway: " + "x" * 300

    def answer(delivery: Delivery) -> DeliveryResult:
        return (
            DeliveryResult(DeliveryOutcome.REJECTED, long)
            if delivery.device_token == "tok-3"
            else SENT
        )

    provider = RecordingProvider(ScriptedProvider(answer))

    async def provider_for(app_id: str) -> DeliveryProvider:
        return provider

    tokens = [f"tok-{i}" for i in range(25)]
    await registrations.upsert_many(app_id, [device(token) for token in tokens], NOW)
    dispatcher = Dispatcher(
        messages,
        SqlAudienceReader(db),
        provider_for,
        ManualClock(NOW),
        CountingSignal(),
        chunk_size=10,
        lease=LEASE,
        retry=RetryPolicy(),
    )
    item = message(app_id, audience=Audience(broadcast=True))
    await dispatcher.run(await started(messages, item))

    status = await messages.status(app_id, item.message_id)
    assert status is not None
    assert (status.state, status.sent, status.failed) == (MessageState.PUBLISHED, 24, 1)
    assert status.failure_reasons == {long[:255]: 1}
    assert sorted(provider.tokens) == sorted(tokens)


async def test_fail_is_terminal_with_its_reason(
    messages: SqlMessageRepository, app_id: str
) -> None:
    run = await started(messages, message(app_id))
    await messages.fail(run.message.message_id, run.claim, "no credentials", NOW)
    status = await messages.status(app_id, run.message.message_id)
    assert status is not None
    assert (status.state, status.error_message) == (MessageState.FAILED, "no credentials")
    assert not await messages.cancel(app_id, run.message.message_id, NOW)


async def _register(registrations: SqlRegistrationRepository, app_id: str) -> str:
    return (await upsert_one(registrations, app_id, device())).registration.registration_id


async def test_a_stale_run_cannot_fail_the_next_one(
    messages: SqlMessageRepository, app_id: str
) -> None:
    """A dispatcher still holding run 1 must not fail run 2 that another one claimed."""
    first = await started(messages, message(app_id))
    message_id = first.message.message_id
    await messages.finish_run(message_id, first.claim, NOW, NOW)
    [second] = await claim(messages, app_id, NOW)
    assert second.claim == first.claim + 1
    await messages.fail(message_id, first.claim, "stale dispatcher", NOW)
    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.error_message) == (MessageState.PUBLISHING, None)
