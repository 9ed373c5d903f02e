"""The SQL message store beyond the contract that every store passes
(tests/contract/test_message_repository.py): concurrent creates and claims,
claim limits, a reason longer than its column, repeats at their expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.messages import (
    Audience,
    ChunkOutcome,
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    Message,
    MessageState,
    Run,
    Schedule,
)
from pushhub_server.core.models import Platform
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.delivery.dispatcher import Dispatcher
from pushhub_server.delivery.retry_policy import RetryPolicy
from pushhub_server.store import (
    Database,
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
from tests.store_records import device, message

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
APNS, FCM = Platform.APNS, Platform.FCM


@pytest.fixture
def messages(db: Database) -> SqlMessageRepository:
    return SqlMessageRepository(db)


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


async def test_concurrent_creates_store_one_message(
    messages: SqlMessageRepository, app_id: str
) -> None:
    twins = [message(app_id, request_id="twin") for _ in range(4)]
    results = await asyncio.gather(*(messages.create(item) for item in twins))
    assert [created for _, created in results].count(True) == 1
    assert len({message_id for message_id, _ in results}) == 1


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
