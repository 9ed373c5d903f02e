"""Published messages: idempotent create, runs cut into claimed partitions, chunk checkpoints.

A run's life: claim_due moves a SCHEDULED message to PUBLISHING as one
partition (run_partitions: a slice of registration ids), which claims cut into
slices of partition_size recipients as they go (_cut, docs/fleet.md). Each
partition is claimed on its own under
a lease, by any server: on PostgreSQL with FOR UPDATE SKIP LOCKED, so several
servers deliver one message side by side. Its dispatcher renews the lease on a
heartbeat (renew_lease); each record_chunk stores the partition's cursor (the
last registration id done), extends its lease and adds the chunk's counters
to the partition's, in one transaction; finish_run ends the partition, and
the last partition to end adds the partitions' counters to the message's and
schedules the next run or ends the message. Status reads both. A
dispatcher that is gone stops renewing its lease, so once it runs out
claim_due hands the partition out again, resuming after its cursor.

Every claim of a partition increments the message's run_number: it is the
claim number (Run.claim), unique among the message's partitions and runs, and
every write of a partition is conditioned on it. So a dispatcher that lost its
claim, to a server that took over its partition while it was still alive, has
its next checkpoint refused and stops: at most the chunk it had in flight is
sent twice, as after a crash.

Lock order, so that servers never deadlock: a transaction locks partition rows
before the message row, and message rows in id order.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.messages import (
    Audience,
    ChunkOutcome,
    Claims,
    Message,
    MessageState,
    MessageStatus,
    Partition,
    PlatformCounts,
    Run,
    Schedule,
)
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent

from .audience import partition_end_query
from .change_feed import Change, announce
from .database import Database, dialect_insert
from .platforms import PLATFORM_CODES, PLATFORMS_BY_CODE
from .records import micros_or_none, moment_or_none
from .schema import (
    message_failures,
    message_platform_counts,
    messages,
    registrations,
    run_partition_counts,
    run_partition_failures,
    run_partitions,
)
from .sql import chunked, one_of

_m = messages.c
_p = run_partitions.c
_pc = run_partition_counts.c
_pf = run_partition_failures.c
_COUNTERS = ("targeted", "sent", "failed")
_LIVE_STATES = (int(MessageState.SCHEDULED), int(MessageState.PUBLISHING))
_ONE_MICROSECOND = timedelta(microseconds=1)
# Seconds between two progress announcements of one message from one process
# (docs/fleet.md, "The change feed"): a run's chunks would otherwise NOTIFY
# every process, every few milliseconds; state changes are announced at once.
PROGRESS_ANNOUNCEMENT_SECONDS = 1.0
# Entries of _announced past which the stale ones are dropped.
_ANNOUNCED_KEPT = 256


class SqlMessageRepository:
    def __init__(self, db: Database, partition_size: int = 0) -> None:
        """partition_size: recipients per partition of a run; 0 delivers each run
        as one partition."""
        self._db = db
        self._partition_size = partition_size
        # The counter upserts of record_chunk, by table name (built on first use).
        self._add_ups: dict[str, Any] = {}
        # When record_chunk last announced each message's progress (monotonic seconds).
        self._announced: dict[str, float] = {}

    async def create(self, message: Message) -> tuple[str, bool]:
        # DO NOTHING then SELECT: a concurrent twin with the same request_id makes
        # PostgreSQL wait for it to commit, after which the SELECT sees its row.
        insert = (
            self._db.insert(messages)
            .values(_new_row(message))
            .on_conflict_do_nothing(index_elements=["app_id", "request_id"])
            .returning(_m.id)
        )
        async with self._db.write() as conn:
            inserted = await conn.scalar(insert)
            if inserted is not None:
                await announce(conn, Change.DUE)
                return inserted, True
            assert message.request_id is not None  # only a request_id can conflict
            return (
                await conn.execute(_by_request(message.app_id, message.request_id))
            ).scalar_one(), False

    async def find_request(self, app_id: str, request_id: str) -> str | None:
        async with self._db.read() as conn:
            return (await conn.execute(_by_request(app_id, request_id))).scalar_one_or_none()

    async def status(self, app_id: str, message_id: str) -> MessageStatus | None:
        # Watchers ask after every chunk: the statements are prebuilt.
        async with self._db.read() as conn:
            row = (
                await conn.execute(_STATUS, {"s_app_id": app_id, "s_id": message_id})
            ).one_or_none()
            if row is None:
                return None
            per_platform, partitions = await _platform_counts(conn, message_id)
            reasons = await _failure_reasons(conn, message_id)
        return _status(row, per_platform, partitions, reasons)

    async def cancel(self, app_id: str, message_id: str, now: datetime) -> bool:
        # Every partition ends (its next renew_lease says so, which stops its retries);
        # a dispatcher mid-chunk learns of it from its next record_chunk, which still
        # records the chunk in flight (its notifications went out) and says stop.
        live = _m.app_id == app_id, _m.id == message_id, _m.state.in_(_LIVE_STATES)
        end_partitions = (
            sa.update(run_partitions)
            .where(_p.message_id == message_id, _p.message_id.in_(sa.select(_m.id).where(*live)))
            .values(done=True)
        )
        stop = (
            sa.update(messages)
            .where(*live)
            .values(
                state=int(MessageState.CANCELLED),
                next_run_at=None,
                lease_until=None,
                updated_at=to_micros(now),
            )
        )
        async with self._db.write() as conn:
            await conn.execute(end_partitions)
            if (await conn.execute(stop)).rowcount != 1:
                return False
            await announce(conn, Change.STATUS, message_id)
            return True

    async def claim_due(
        self,
        now: datetime,
        lease: timedelta,
        limit: int,
        exclude: Collection[str] = (),
    ) -> Claims:
        at, until = to_micros(now), to_micros(now + lease)
        ended: list[str] = []
        async with self._db.write() as conn:
            # Partitions of runs under way first (abandoned, or not claimed yet): they
            # started earlier than anything still scheduled.
            size = self._partition_size
            runs = await _claim_partitions(conn, at, until, limit, exclude, size)
            room = limit - len(runs)
            if room > 0:
                due = await _lock_due(conn, _m.next_run_at, at, room)
                started, ended = await self._start_runs(conn, due, now, lease)
                if started:
                    running = {*exclude, *(run.message.message_id for run in runs)}
                    runs += await _claim_partitions(conn, at, until, room, running, size)
            # PUBLISHING now or a partition further, or ended (a repeat too late to start).
            for message_id in {*(run.message.message_id for run in runs), *ended}:
                await announce(conn, Change.STATUS, message_id)
        return Claims(runs, ended)

    async def claim_partition(
        self, message: Message, holding: int, now: datetime, lease: timedelta
    ) -> Run | None:
        at, until = to_micros(now), to_micros(now + lease)
        async with self._db.write() as conn:
            return await _claim_one(conn, message, at, until, self._partition_size, holding=holding)

    async def renew_lease(
        self, message_id: str, claim: int, now: datetime, lease: timedelta
    ) -> bool:
        renew = (
            sa.update(run_partitions)
            .where(*_live_partition(message_id, claim))
            .values(lease_until=to_micros(now + lease))
        )
        async with self._db.write() as conn:
            return (await conn.execute(renew)).rowcount == 1

    async def record_chunk(
        self,
        message_id: str,
        claim: int,
        outcome: ChunkOutcome,
        now: datetime,
        lease: timedelta,
    ) -> bool:
        # Prebuilt statements with bound parameters: building and compiling them anew
        # cost more than running them, once per chunk of every fan-out.
        at = to_micros(now)
        checkpoint = {
            "c_message_id": message_id,
            "c_claim": claim,
            "c_cursor": outcome.cursor,
            "c_lease_until": to_micros(now + lease),
        }
        # Only rows of this partition are written: the processes delivering other
        # partitions of the message never wait for this transaction.
        async with self._db.write() as conn:
            partition = (await conn.execute(_CHECKPOINT, checkpoint)).one_or_none()
            if partition is None:  # claimed again: not ours to record
                return False
            key = {"message_id": message_id, "number": partition.number}
            await self._add_platform_counts(conn, key, outcome)
            await self._add_failure_reasons(conn, key, outcome.failure_reasons)
            await _invalidate(conn, message_id, outcome.invalid_registration_ids, at)
            if self._progress_announced(message_id):
                await announce(conn, Change.STATUS, message_id)
        # Cancelled or failed meanwhile: the partition was ended with the message.
        return not partition.done

    async def finish_run(
        self, message_id: str, claim: int, next_run_at: datetime | None, now: datetime
    ) -> bool:
        end = sa.update(run_partitions).where(*_live_partition(message_id, claim)).values(done=True)
        async with self._db.write() as conn:
            if (await conn.execute(end)).rowcount != 1:
                return False  # claimed again, or the message was cancelled or failed
            # Locked before counting, so of two partitions ending at once the second
            # to take the lock sees the first one done, and ends the run.
            state = await conn.scalar(
                sa.select(_m.state).where(_m.id == message_id).with_for_update()
            )
            if state != int(MessageState.PUBLISHING) or await _partitions_left(conn, message_id):
                return False
            await _end_run(conn, message_id, next_run_at, to_micros(now))
            await announce(conn, Change.STATUS, message_id)
            return True

    async def fail(self, message_id: str, claim: int, error: str, now: datetime) -> bool:
        mine = (
            sa.update(run_partitions).where(*_live_partition(message_id, claim)).values(done=True)
        )
        others = (
            sa.update(run_partitions)
            .where(_p.message_id == message_id, _p.done == sa.false())
            .values(done=True)
        )
        failure = (
            sa.update(messages)
            .where(_m.id == message_id, _m.state == int(MessageState.PUBLISHING))
            .values(
                state=int(MessageState.FAILED),
                error_message=error,
                next_run_at=None,
                lease_until=None,
                updated_at=to_micros(now),
            )
        )
        async with self._db.write() as conn:
            # Only while the claim is current: a dispatcher whose lease ran out must
            # not fail the run another one resumed.
            if (await conn.execute(mine)).rowcount != 1:
                return False
            await conn.execute(others)
            if (await conn.execute(failure)).rowcount != 1:
                return False
            await announce(conn, Change.STATUS, message_id)
            return True

    async def next_due_at(self, exclude: Collection[str] = ()) -> datetime | None:
        """The earliest scheduled run, or partition lease expiry (a dispatcher may
        have died; a partition not claimed yet is due at once), but none of the
        messages in `exclude`: the caller claims none of their partitions."""
        scheduled = _earliest(_m.next_run_at, _m.state == int(MessageState.SCHEDULED))
        claimable = _p.done == sa.false()
        if exclude:
            claimable = sa.and_(claimable, _p.message_id.not_in(list(exclude)))
        expiring = _earliest(_p.lease_until, claimable)
        async with self._db.read() as conn:
            moments = (await conn.execute(sa.select(scheduled, expiring))).one()
        known = [micros for micros in moments if micros is not None]
        return from_micros(min(known)) if known else None

    def _progress_announced(self, message_id: str) -> bool:
        """True (and noted) when this message's progress was last announced from here
        at least PROGRESS_ANNOUNCEMENT_SECONDS ago: a run's checkpoints announce
        once a second, not once a chunk."""
        now = time.monotonic()
        if now - self._announced.get(message_id, -math.inf) < PROGRESS_ANNOUNCEMENT_SECONDS:
            return False
        if len(self._announced) >= _ANNOUNCED_KEPT:
            # Older entries throttle nothing any more: only runs under way stay.
            self._announced = {
                other: at
                for other, at in self._announced.items()
                if now - at < PROGRESS_ANNOUNCEMENT_SECONDS
            }
        self._announced[message_id] = now
        return True

    async def _start_runs(
        self, conn: AsyncConnection, rows: list[Any], now: datetime, lease: timedelta
    ) -> tuple[bool, list[str]]:
        """Starts the due runs, each one claimable partition: whether any started,
        and the ids of the messages ended instead. New runs start at the top of
        the audience, at their scheduled time. A repeat whose run would start more
        than a lease (the scheduler's normal lateness) after repeat_expires_at has
        ended instead: PUBLISHED, sending nothing."""
        due = [_message(row) for row in rows]
        ended = [message.message_id for message in due if message.schedule.expired_by(now, lease)]
        starting = [message for message in due if message.message_id not in ended]
        at = to_micros(now)
        await _mark_started(conn, [message.message_id for message in starting], at)
        await _mark_ended(conn, ended, at)
        for message in starting:
            await conn.execute(sa.delete(run_partitions).where(_p.message_id == message.message_id))
        if starting:
            # One partition, the whole audience: claims cut it as they go (_claim_one).
            await conn.execute(
                sa.insert(run_partitions),
                [_partition_row(message.message_id, 0, None) for message in starting],
            )
        return bool(starting), ended

    async def _add_platform_counts(
        self, conn: AsyncConnection, partition: dict[str, Any], outcome: ChunkOutcome
    ) -> None:
        platforms = {*outcome.targeted, *outcome.sent, *outcome.failed}
        rows = [
            {
                **partition,
                "platform": PLATFORM_CODES[platform],
                **{name: getattr(outcome, name).get(platform, 0) for name in _COUNTERS},
            }
            for platform in platforms
        ]
        key = ("message_id", "number", "platform")
        await self._add_up(conn, run_partition_counts, key, rows)

    async def _add_failure_reasons(
        self, conn: AsyncConnection, partition: dict[str, Any], reasons: dict[str, int]
    ) -> None:
        rows = [
            {**partition, "reason": reason, "count": count} for reason, count in reasons.items()
        ]
        key = ("message_id", "number", "reason")
        await self._add_up(conn, run_partition_failures, key, rows)

    async def _add_up(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        key: Sequence[str],
        rows: list[dict[str, Any]],
    ) -> None:
        """Inserts counter rows, or adds them to the rows already there."""
        if not rows:
            return
        upsert = self._add_ups.get(table.name)
        if upsert is None:
            insert = self._db.insert(table)
            counters = [column for column in table.c if column.name not in key]
            upsert = self._add_ups[table.name] = insert.on_conflict_do_update(
                index_elements=list(key),
                set_={column.name: column + insert.excluded[column.name] for column in counters},
            )
        await conn.execute(upsert, rows)


# record_chunk's checkpoint: cursor stored and lease extended, conditioned on the
# claim still being the partition's. A partition ended meanwhile (the message was
# cancelled) still takes the cursor and counters of its chunk in flight, which was sent.
_CHECKPOINT = (
    sa.update(run_partitions)
    .where(
        _p.message_id == sa.bindparam("c_message_id"),
        _p.claim == sa.bindparam("c_claim"),
    )
    .values(
        cursor=sa.bindparam("c_cursor"),
        lease_until=sa.case(
            (_p.done == sa.false(), sa.bindparam("c_lease_until", type_=sa.BigInteger)),
            else_=_p.lease_until,
        ),
    )
    .returning(_p.number, _p.done)
)


def _new_row(message: Message) -> dict[str, Any]:
    schedule = message.schedule
    created_at = to_micros(message.created_at)
    repeat_every = schedule.repeat_every
    return {
        "id": message.message_id,
        "app_id": message.app_id,
        "request_id": message.request_id,
        "state": int(MessageState.SCHEDULED),
        "content_json": message.content.to_json(),
        "audience_json": _dump_audience(message.audience),
        "first_run_at": to_micros(schedule.first_run_at),
        "repeat_every_us": None if repeat_every is None else repeat_every // _ONE_MICROSECOND,
        "repeat_expires_at": micros_or_none(schedule.repeat_expires_at),
        "next_run_at": to_micros(schedule.first_run_at),
        "run_number": 0,
        "run_count": 0,
        **dict.fromkeys(_COUNTERS, 0),
        "created_at": created_at,
        "updated_at": created_at,
        "trace_context": message.trace_context,
    }


def _dump_audience(audience: Audience) -> str:
    values = {
        "channel": audience.channel,
        "broadcast": audience.broadcast,
        "tag_expression": audience.tag_expression,
        "user_ids": list(audience.user_ids),
        "registration_ids": list(audience.registration_ids),
        "platforms": [PLATFORM_CODES[platform] for platform in audience.platforms],
    }
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def _load_audience(text: str) -> Audience:
    values = json.loads(text)
    return Audience(
        channel=values["channel"],
        broadcast=values["broadcast"],
        tag_expression=values["tag_expression"],
        user_ids=tuple(values["user_ids"]),
        registration_ids=tuple(values["registration_ids"]),
        platforms=tuple(PLATFORMS_BY_CODE[code] for code in values["platforms"]),
    )


def _message(row: Any) -> Message:
    repeat_every = row.repeat_every_us
    schedule = Schedule(
        first_run_at=from_micros(row.first_run_at),
        repeat_every=None if repeat_every is None else timedelta(microseconds=repeat_every),
        repeat_expires_at=moment_or_none(row.repeat_expires_at),
    )
    return Message(
        message_id=row.id,
        app_id=row.app_id,
        content=NotificationContent.from_json(row.content_json),
        audience=_load_audience(row.audience_json),
        schedule=schedule,
        created_at=from_micros(row.created_at),
        request_id=row.request_id,
        trace_context=row.trace_context,
    )


async def _lock_due(
    conn: AsyncConnection, due_at: sa.Column[Any], at: int, limit: int
) -> list[Any]:
    """Due SCHEDULED messages, oldest first, locked for this transaction.

    PostgreSQL skips rows another server has locked, so servers split the work;
    SQLite renders no FOR UPDATE, and needs none: its one writer holds the lock.
    """
    query = (
        sa.select(messages)
        .where(_m.state == int(MessageState.SCHEDULED), due_at <= at)
        .order_by(due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await conn.execute(query))


async def _claim_partitions(
    conn: AsyncConnection,
    at: int,
    until: int,
    limit: int,
    exclude: Collection[str],
    size: int,
) -> list[Run]:
    """Claims one claimable partition (lease passed, not done) of each of up to
    `limit` PUBLISHING messages, none in `exclude`; each takes the next claim
    number of its message. PostgreSQL skips partitions another server is claiming.

    One partition per message and claim: a process that took them all at once
    would leave nothing for the others, while each partition is small enough
    that one process goes through them one after the other at the same speed."""
    if limit <= 0:
        return []
    conditions = [
        _p.done == sa.false(),
        _p.lease_until <= at,
        _m.state == int(MessageState.PUBLISHING),
    ]
    if exclude:
        conditions.append(_p.message_id.not_in(list(exclude)))
    candidates = (
        sa.select(_p.message_id)
        .select_from(run_partitions.join(messages, _m.id == _p.message_id))
        .where(*conditions)
        .group_by(_p.message_id)
        .order_by(sa.func.min(_p.lease_until))
        .limit(limit)
    )
    message_ids = list((await conn.execute(candidates)).scalars())
    if not message_ids:
        return []
    found = await conn.execute(sa.select(messages).where(_m.id.in_(message_ids)))
    rows = {row.id: _message(row) for row in found}
    runs = []
    # In message id order, as the lock order says (module docstring).
    for message_id in sorted(rows):
        claimed = await _claim_one(conn, rows[message_id], at, until, size)
        if claimed is not None:
            runs.append(claimed)
    return runs


async def _claim_one(
    conn: AsyncConnection,
    message: Message,
    at: int,
    until: int,
    size: int,
    *,
    holding: int | None = None,
) -> Run | None:
    """Locks the message's claimable partition with the oldest lease (SKIP LOCKED:
    None when other servers are claiming all of them) and claims it, while the
    message is PUBLISHING; never the partition claim `holding` names (its
    caller's). A partition open to the end of the audience is cut first (_cut)."""
    message_id = message.message_id
    conditions = [
        _p.message_id == message_id,
        _p.done == sa.false(),
        _p.lease_until <= at,
        _m.state == int(MessageState.PUBLISHING),
    ]
    if holding is not None:
        conditions.append(_p.claim != holding)
    partition = (
        await conn.execute(
            sa.select(_p.number, _p.last_id, _p.cursor, messages.c.run_at)
            .join(messages, _m.id == _p.message_id)
            .where(*conditions)
            .order_by(_p.lease_until, _p.number)
            .limit(1)
            .with_for_update(skip_locked=True, of=run_partitions)
        )
    ).one_or_none()
    if partition is None:
        return None
    last_id = partition.last_id
    if last_id is None and size > 0:
        last_id = await _cut(conn, message, partition.number, partition.cursor, size)
    claim = await _claim(conn, message_id, partition.number, until)
    return Run(
        message,
        claim,
        from_micros(partition.run_at),
        partition.cursor,
        Partition(partition.number, last_id),
    )


async def _cut(
    conn: AsyncConnection, message: Message, number: int, cursor: str | None, size: int
) -> str | None:
    """Cuts the partition open to the end of the audience after `size` recipients:
    it ends there, and a new one takes the rest. So a run is cut as it is
    claimed, one index-only scan of `size` entries per partition, and a process
    alone never waits for the whole audience to be scanned first. Returns the
    partition's new end, or None when fewer than `size` are left (it runs to
    the end, taking what registers meanwhile)."""
    query = partition_end_query(message.app_id, message.audience, cursor, size)
    end = None if query is None else await conn.scalar(query)
    if end is None:
        return None
    message_id = message.message_id
    await conn.execute(
        sa.update(run_partitions)
        .where(_p.message_id == message_id, _p.number == number)
        .values(last_id=end)
    )
    await conn.execute(
        sa.insert(run_partitions).values(_partition_row(message_id, number + 1, end))
    )
    await announce(conn, Change.DUE)  # the next partition is there for others to claim
    return str(end)


def _partition_row(message_id: str, number: int, cursor: str | None) -> dict[str, Any]:
    """A new partition from after `cursor` to the end of the audience, claimable."""
    return {
        "message_id": message_id,
        "number": number,
        "cursor": cursor,
        "last_id": None,
        "claim": 0,
        "lease_until": 0,
        "done": False,
    }


async def _claim(conn: AsyncConnection, message_id: str, number: int, until: int) -> int:
    """Gives the partition the message's next claim number, and the lease."""
    claim = await conn.scalar(
        sa.update(messages)
        .where(_m.id == message_id)
        .values(run_number=_m.run_number + 1)
        .returning(_m.run_number)
    )
    await conn.execute(
        sa.update(run_partitions)
        .where(_p.message_id == message_id, _p.number == number)
        .values(claim=claim, lease_until=until)
    )
    assert claim is not None  # the partition's message, joined by the claim query
    return int(claim)


async def _mark_started(conn: AsyncConnection, ids: list[str], at: int) -> None:
    if not ids:
        return
    start = (
        sa.update(messages)
        .where(_m.id.in_(ids))
        .values(
            state=int(MessageState.PUBLISHING),
            cursor=None,
            # Right-hand sides read the row as it was, so run_at takes the old next_run_at.
            run_at=_m.next_run_at,
            next_run_at=None,
            lease_until=None,
            updated_at=at,
        )
    )
    await conn.execute(start)


async def _mark_ended(conn: AsyncConnection, ids: list[str], at: int) -> None:
    if ids:
        await conn.execute(
            sa.update(messages)
            .where(_m.id.in_(ids))
            .values(state=int(MessageState.PUBLISHED), next_run_at=None, updated_at=at)
        )


def _live_partition(message_id: str, claim: int) -> tuple[sa.ColumnElement[bool], ...]:
    """The partition `claim` names, while it is not done: not ended, cancelled or failed."""
    return (_p.message_id == message_id, _p.claim == claim, _p.done == sa.false())


async def _partitions_left(conn: AsyncConnection, message_id: str) -> bool:
    left = sa.select(_p.number).where(_p.message_id == message_id, _p.done == sa.false())
    return await conn.scalar(left.limit(1)) is not None


async def _end_run(
    conn: AsyncConnection, message_id: str, next_run_at: datetime | None, at: int
) -> None:
    """The run's last partition is done: the next run is SCHEDULED, or the message
    PUBLISHED, and the partitions go."""
    state = MessageState.PUBLISHED if next_run_at is None else MessageState.SCHEDULED
    partition_totals = {
        name: sa.select(sa.func.coalesce(sa.func.sum(_pc[name]), 0))
        .where(_pc.message_id == message_id)
        .scalar_subquery()
        for name in _COUNTERS
    }
    await conn.execute(
        sa.update(messages)
        .where(_m.id == message_id)
        .values(
            state=int(state),
            next_run_at=micros_or_none(next_run_at),
            run_count=_m.run_count + 1,
            cursor=None,
            lease_until=None,
            updated_at=at,
            **{name: _m[name] + total for name, total in partition_totals.items()},
        )
    )
    await _fold(conn, message_id, run_partition_counts, message_platform_counts, "platform")
    await _fold(conn, message_id, run_partition_failures, message_failures, "reason")
    # The partitions' counters go with them (ON DELETE CASCADE).
    await conn.execute(sa.delete(run_partitions).where(_p.message_id == message_id))


async def _fold(
    conn: AsyncConnection, message_id: str, source: sa.Table, target: sa.Table, key: str
) -> None:
    """Adds the partitions' counters up into the message's, per `key`."""
    counters = [column.name for column in target.c if column.name not in ("message_id", key)]
    summed = (
        sa.select(
            source.c.message_id,
            source.c[key],
            *(sa.func.sum(source.c[name]).label(name) for name in counters),
        )
        .where(source.c.message_id == message_id)
        .group_by(source.c.message_id, source.c[key])
    )
    insert = dialect_insert(conn.dialect.name, target)
    upsert = insert.from_select(["message_id", key, *counters], summed).on_conflict_do_update(
        index_elements=["message_id", key],
        set_={name: target.c[name] + insert.excluded[name] for name in counters},
    )
    await conn.execute(upsert)


async def _invalidate(conn: AsyncConnection, message_id: str, ids: list[str], at: int) -> None:
    """Marks the message's app's registrations among `ids` invalid: never another app's."""
    reg = registrations.c
    app_id = sa.select(_m.app_id).where(_m.id == message_id).scalar_subquery()
    for chunk in chunked(ids):
        await conn.execute(
            sa.update(registrations)
            .where(
                reg.app_id == app_id,
                one_of(reg.id, chunk, conn.dialect.name),
                # The first invalidation's time is kept.
                reg.invalidated_at.is_(None),
            )
            .values(invalidated_at=at)
        )


def _earliest(column: sa.Column[Any], where: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
    return sa.select(sa.func.min(column)).where(where).scalar_subquery()


_STATUS = sa.select(messages).where(
    _m.app_id == sa.bindparam("s_app_id"), _m.id == sa.bindparam("s_id")
)
# A message's counts: the runs ended (the message's own rows) and its partitions'
# (a run under way, or cancelled or failed), read together.
_mc, _mf = message_platform_counts.c, message_failures.c
_PLATFORM_COUNTS = sa.union_all(
    sa.select(sa.false(), _mc.platform, _mc.targeted, _mc.sent, _mc.failed).where(
        _mc.message_id == sa.bindparam("s_id")
    ),
    sa.select(sa.true(), _pc.platform, _pc.targeted, _pc.sent, _pc.failed).where(
        _pc.message_id == sa.bindparam("s_id")
    ),
)
_FAILURE_REASONS = sa.union_all(
    sa.select(_mf.reason, _mf.count).where(_mf.message_id == sa.bindparam("s_id")),
    sa.select(_pf.reason, _pf.count).where(_pf.message_id == sa.bindparam("s_id")),
)


async def _platform_counts(
    conn: AsyncConnection, message_id: str
) -> tuple[dict[Platform, PlatformCounts], PlatformCounts]:
    """Per platform, the ended runs' counts and the partitions' added up; and the
    partitions' totals, which the message's row does not hold yet."""
    counts: dict[Platform, PlatformCounts] = {}
    partitions = PlatformCounts()
    rows = await conn.execute(_PLATFORM_COUNTS, {"s_id": message_id})
    for of_partition, code, targeted, sent, failed in rows:
        platform = PLATFORMS_BY_CODE[code]
        counts[platform] = _added(counts.get(platform, PlatformCounts()), targeted, sent, failed)
        if of_partition:
            partitions = _added(partitions, targeted, sent, failed)
    return counts, partitions


def _added(counts: PlatformCounts, targeted: int, sent: int, failed: int) -> PlatformCounts:
    return PlatformCounts(counts.targeted + targeted, counts.sent + sent, counts.failed + failed)


async def _failure_reasons(conn: AsyncConnection, message_id: str) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for reason, count in await conn.execute(_FAILURE_REASONS, {"s_id": message_id}):
        reasons[reason] = reasons.get(reason, 0) + count
    return reasons


def _status(
    row: Any,
    per_platform: dict[Platform, PlatformCounts],
    partitions: PlatformCounts,
    reasons: dict[str, int],
) -> MessageStatus:
    return MessageStatus(
        message_id=row.id,
        state=MessageState(row.state),
        targeted=row.targeted + partitions.targeted,
        sent=row.sent + partitions.sent,
        failed=row.failed + partitions.failed,
        per_platform=per_platform,
        failure_reasons=reasons,
        run_count=row.run_count,
        next_run_at=moment_or_none(row.next_run_at),
        error_message=row.error_message,
    )


def _by_request(app_id: str, request_id: str) -> sa.Select[tuple[str]]:
    return sa.select(_m.id).where(_m.app_id == app_id, _m.request_id == request_id)
