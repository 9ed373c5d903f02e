"""Runs cut into partitions of their audience (docs/fleet.md), on both dialects.

Each partition is claimed, leased, checkpointed and finished on its own; the
claims of one message never share a partition, an older claim of a partition
can write nothing, the message's counters add up its partitions', the run
ends with its last partition, and a cancel ends every partition. On the
PostgreSQL pass the concurrent claims and finishes go through FOR UPDATE SKIP
LOCKED and the message row lock, from separate connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest_asyncio

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.ids import new_id
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
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.delivery.dispatcher import Dispatcher
from pushhub_server.store import (
    Database,
    SqlAudienceReader,
    SqlMessageRepository,
    SqlRegistrationRepository,
)
from tests.fakes.delivery import CountingSignal, RecordingProvider
from tests.store_records import device

# Far from the other store tests' times: the database is shared, and claims take
# whatever is due. Every test cancels or finishes what it starts.
NOW = datetime(2061, 3, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)
EVERYONE = Audience(broadcast=True)
# 10 registrations, 3 per partition: partitions of 3, 3, 3 and 1.
REGISTRATIONS = 10
PARTITION_SIZE = 3


@pytest_asyncio.fixture
async def messages(db: Database) -> SqlMessageRepository:
    return SqlMessageRepository(db, partition_size=PARTITION_SIZE)


@pytest_asyncio.fixture
async def audience_ids(registrations: SqlRegistrationRepository, app_id: str) -> list[str]:
    results = await registrations.upsert_many(
        app_id, [device(platform=Platform.FCM) for _ in range(REGISTRATIONS)], NOW
    )
    return sorted(result.registration.registration_id for result in results)  # type: ignore[union-attr]


@pytest_asyncio.fixture
async def broadcast(
    messages: SqlMessageRepository, app_id: str, audience_ids: list[str]
) -> AsyncIterator[Message]:
    item = Message(
        message_id=new_id(),
        app_id=app_id,
        content=NotificationContent(message="to everyone"),
        audience=EVERYONE,
        schedule=Schedule(NOW),
        created_at=NOW,
    )
    await messages.create(item)
    yield item
    await messages.cancel(app_id, item.message_id, NOW)  # whatever is left ends


async def claim(
    repo: SqlMessageRepository, app_id: str, now: datetime = NOW, limit: int = 100
) -> list[Run]:
    """This app's share of the claim: the database is shared with other tests."""
    runs = (await repo.claim_due(now, LEASE, limit)).runs
    return [run for run in runs if run.message.app_id == app_id]


async def claim_all(repo: SqlMessageRepository, app_id: str, now: datetime = NOW) -> list[Run]:
    """Every partition claimable now, claim after claim (one per message each), as
    processes that each claim once would get them."""
    claimed: list[Run] = []
    while runs := await claim(repo, app_id, now):
        claimed += runs
    return claimed


def chunk(cursor: str, sent: int) -> ChunkOutcome:
    return ChunkOutcome(cursor=cursor, targeted={Platform.FCM: sent}, sent={Platform.FCM: sent})


async def members(db: Database, app_id: str, run: Run) -> list[str]:
    page = await SqlAudienceReader(db).page(
        app_id, EVERYONE, run.cursor, 100, NOW, last_id=run.partition.last_id
    )
    return [recipient.registration_id for recipient in page]


async def test_a_run_is_cut_into_partitions_that_cover_its_audience_once(
    db: Database,
    messages: SqlMessageRepository,
    app_id: str,
    audience_ids: list[str],
    broadcast: Message,
) -> None:
    runs = await claim_all(messages, app_id)

    assert [run.partition.number for run in runs] == [0, 1, 2, 3]
    assert len({run.claim for run in runs}) == 4  # one claim number per partition
    assert [run.cursor for run in runs] == [None, audience_ids[2], audience_ids[5], audience_ids[8]]
    assert [run.partition.last_id for run in runs] == [*runs_ends(audience_ids), None]
    slices = [await members(db, app_id, run) for run in runs]
    assert [len(ids) for ids in slices] == [3, 3, 3, 1]
    assert [rid for ids in slices for rid in ids] == audience_ids


def runs_ends(ids: list[str]) -> list[str]:
    return [ids[2], ids[5], ids[8]]


async def test_without_a_partition_size_a_run_is_one_partition(
    db: Database, app_id: str, audience_ids: list[str]
) -> None:
    messages = SqlMessageRepository(db)
    item = Message(new_id(), app_id, NotificationContent(message="x"), EVERYONE, Schedule(NOW), NOW)
    await messages.create(item)
    [run] = await claim(messages, app_id)
    assert (run.partition.number, run.partition.last_id, run.cursor) == (0, None, None)
    assert await members(db, app_id, run) == audience_ids
    await messages.cancel(app_id, item.message_id, NOW)


async def test_one_claim_takes_one_partition_of_a_message_leaving_the_rest_to_others(
    messages: SqlMessageRepository, app_id: str, broadcast: Message
) -> None:
    [first] = await claim(messages, app_id)
    [second] = await claim(messages, app_id)
    assert (first.partition.number, second.partition.number) == (0, 1)
    # A process running a partition of the message (exclude) takes no other one.
    runs = (await messages.claim_due(NOW, LEASE, 100, exclude=[broadcast.message_id])).runs
    assert [run for run in runs if run.message.app_id == app_id] == []


async def test_concurrent_claims_share_the_partitions_never_one_twice(
    messages: SqlMessageRepository, app_id: str, broadcast: Message
) -> None:
    """Rounds of six claimers racing: the one that locks the partition open to the
    end cuts and claims it, the others skip it (PostgreSQL) or find the rest."""
    claimed: list[int] = []
    while batches := [
        run.partition.number
        for batch in await asyncio.gather(*(claim(messages, app_id, limit=1) for _ in range(6)))
        for run in batch
    ]:
        claimed += batches
    assert sorted(claimed) == [0, 1, 2, 3]


async def test_the_run_ends_with_its_last_partition_and_counts_them_all(
    messages: SqlMessageRepository, app_id: str, audience_ids: list[str], broadcast: Message
) -> None:
    message_id = broadcast.message_id
    runs = await claim_all(messages, app_id)
    for run in runs:
        last = run.partition.last_id or audience_ids[-1]
        assert await messages.record_chunk(message_id, run.claim, chunk(last, 2), NOW, LEASE)
    failing = replace(chunk("z", 0), failed={Platform.FCM: 1}, failure_reasons={"Gone": 1})
    assert await messages.record_chunk(message_id, runs[0].claim, failing, NOW, LEASE)
    for run in runs[:-1]:
        await messages.finish_run(message_id, run.claim, None, NOW)
        status = await messages.status(app_id, message_id)
        assert status is not None and status.state is MessageState.PUBLISHING
        assert (status.sent, status.failed, status.failure_reasons) == (8, 1, {"Gone": 1})

    await messages.finish_run(message_id, runs[-1].claim, None, NOW)
    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.run_count, status.sent, status.targeted) == (
        MessageState.PUBLISHED,
        1,
        8,
        8,
    )
    assert status.per_platform == {Platform.FCM: PlatformCounts(8, 8, 1)}
    assert (status.failed, status.failure_reasons) == (1, {"Gone": 1})


async def test_partitions_finishing_at_once_end_the_run_once(
    messages: SqlMessageRepository, app_id: str, broadcast: Message
) -> None:
    every = timedelta(minutes=1)
    repeating = replace(broadcast, message_id=new_id(), schedule=Schedule(NOW, every))
    await messages.create(repeating)
    runs = [
        r for r in await claim_all(messages, app_id) if r.message.message_id == repeating.message_id
    ]
    assert len(runs) == 4
    await asyncio.gather(
        *(messages.finish_run(repeating.message_id, r.claim, NOW + every, NOW) for r in runs)
    )
    status = await messages.status(app_id, repeating.message_id)
    assert status is not None
    assert (status.state, status.run_count, status.next_run_at) == (
        MessageState.SCHEDULED,
        1,
        NOW + every,
    )
    # The next run is cut afresh, and its claims continue the message's numbers.
    later = [
        r
        for r in await claim_all(messages, app_id, NOW + every)
        if r.message.message_id == repeating.message_id
    ]
    assert len(later) == 4
    assert min(r.claim for r in later) > max(r.claim for r in runs)
    await messages.cancel(app_id, repeating.message_id, NOW)


async def test_an_older_claim_of_a_partition_can_write_nothing(
    messages: SqlMessageRepository, app_id: str, audience_ids: list[str], broadcast: Message
) -> None:
    """Partition 1's first claim outlived its lease and another claimed it: the
    first one's chunk, renewal, finish and failure are all refused; the new
    claim resumes after the partition's checkpoint; the others go on."""
    message_id = broadcast.message_id
    runs = await claim_all(messages, app_id)
    stale = runs[1]
    assert await messages.record_chunk(
        message_id, stale.claim, chunk(audience_ids[3], 1), NOW, LEASE
    )
    for run in runs[:1] + runs[2:]:
        assert await messages.renew_lease(message_id, run.claim, NOW + LEASE / 2, LEASE)

    [resumed] = await claim(messages, app_id, NOW + LEASE)
    assert (resumed.partition, resumed.cursor) == (stale.partition, audience_ids[3])
    assert resumed.claim > max(run.claim for run in runs)

    later = NOW + LEASE
    assert not await messages.record_chunk(message_id, stale.claim, chunk("z", 5), later, LEASE)
    assert not await messages.renew_lease(message_id, stale.claim, later, LEASE)
    await messages.finish_run(message_id, stale.claim, None, later)
    await messages.fail(message_id, stale.claim, "stale", later)
    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.sent, status.error_message) == (MessageState.PUBLISHING, 1, None)
    assert await messages.record_chunk(message_id, resumed.claim, chunk("z", 1), later, LEASE)
    assert await messages.renew_lease(message_id, runs[0].claim, later, LEASE)


async def test_cancel_reaches_every_partition(
    messages: SqlMessageRepository, app_id: str, audience_ids: list[str], broadcast: Message
) -> None:
    message_id = broadcast.message_id
    running = [*await claim(messages, app_id), *await claim(messages, app_id)]
    assert len(running) == 2  # two partitions under way, two not claimed yet

    assert await messages.cancel(app_id, message_id, NOW)
    for run in running:
        assert not await messages.renew_lease(message_id, run.claim, NOW, LEASE)
    # A chunk in flight when the cancel came is still counted, then the partition stops.
    first = running[0]
    assert not await messages.record_chunk(message_id, first.claim, chunk("z", 2), NOW, LEASE)
    await messages.finish_run(message_id, first.claim, None, NOW)
    assert await claim(messages, app_id, NOW + 2 * LEASE) == []
    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.sent, status.run_count) == (MessageState.CANCELLED, 2, 0)
    due = await messages.next_due_at()
    assert due is None or due > NOW + 2 * LEASE or due < NOW  # nothing of this message


async def test_a_failure_of_one_partition_fails_the_message_and_ends_the_others(
    messages: SqlMessageRepository, app_id: str, broadcast: Message
) -> None:
    message_id = broadcast.message_id
    runs = await claim_all(messages, app_id)
    await messages.fail(message_id, runs[0].claim, "cannot be rendered", NOW)
    assert not await messages.renew_lease(message_id, runs[1].claim, NOW, LEASE)
    await messages.finish_run(message_id, runs[1].claim, None, NOW)
    status = await messages.status(app_id, message_id)
    assert status is not None
    assert (status.state, status.error_message) == (MessageState.FAILED, "cannot be rendered")


async def test_dispatchers_of_all_partitions_deliver_each_recipient_once(
    db: Database, messages: SqlMessageRepository, app_id: str, broadcast: Message
) -> None:
    provider = RecordingProvider()

    async def provider_for(app_id: str) -> DeliveryProvider:
        return provider

    dispatcher = Dispatcher(
        messages,
        SqlAudienceReader(db),
        provider_for,
        ManualClock(NOW),
        CountingSignal(),
        chunk_size=2,
        lease=LEASE,
    )
    runs = await claim_all(messages, app_id)
    await asyncio.gather(*(dispatcher.run(run) for run in runs))

    delivered = [d.registration_id for batch in provider.batches for d in batch]
    assert len(delivered) == len(set(delivered)) == REGISTRATIONS
    status = await messages.status(app_id, broadcast.message_id)
    assert status is not None
    assert (status.state, status.sent, status.run_count) == (
        MessageState.PUBLISHED,
        REGISTRATIONS,
        1,
    )


async def test_a_channel_is_cut_by_its_subscriptions_and_a_list_of_ids_not_at_all(
    db: Database, messages: SqlMessageRepository, app_id: str, audience_ids: list[str]
) -> None:
    news = Audience(channel="news")
    listed = Audience(registration_ids=tuple(audience_ids))
    for audience, expected in ((news, [3, 3, 3, 1]), (listed, [REGISTRATIONS])):
        item = Message(
            new_id(), app_id, NotificationContent(message="x"), audience, Schedule(NOW), NOW
        )
        await messages.create(item)
        runs = await claim_all(messages, app_id)
        reader = SqlAudienceReader(db)
        pages = [
            await reader.page(app_id, audience, r.cursor, 100, NOW, last_id=r.partition.last_id)
            for r in runs
        ]
        assert [len(page) for page in pages] == expected
        assert sorted(r.registration_id for page in pages for r in page) == audience_ids
        await messages.cancel(app_id, item.message_id, NOW)
