"""Published messages: idempotent create, claimed runs with leases, chunk checkpoints.

A run's life: claim_due moves a SCHEDULED message to PUBLISHING under a lease;
the dispatcher renews the lease on a heartbeat (renew_lease); each record_chunk
adds counters, stores the cursor (the last registration id done) and extends
the lease, in one transaction; finish_run schedules the next run or ends the
message. A dispatcher that is gone stops renewing its lease, so once it runs
out claim_due hands the run out again, resuming after the cursor.

Every claim, of a new run or of a resumed one, increments the row's run_number:
it is the claim number (Run.claim), and every write of a run is conditioned on
it. So a dispatcher that lost its claim, to a server that took over its run
while it was still alive, has its next checkpoint refused and stops: at most
the chunk it had in flight is sent twice, as after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.messages import (
    Audience,
    ChunkOutcome,
    Message,
    MessageState,
    MessageStatus,
    PlatformCounts,
    Run,
    Schedule,
)
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent

from .database import Database
from .platforms import PLATFORM_CODES, PLATFORMS_BY_CODE
from .records import micros_or_none, moment_or_none
from .schema import message_failures, message_platform_counts, messages, registrations
from .sql import chunked, one_of

_m = messages.c
_COUNTERS = ("targeted", "sent", "failed")
_LIVE_STATES = (int(MessageState.SCHEDULED), int(MessageState.PUBLISHING))
_ONE_MICROSECOND = timedelta(microseconds=1)


class SqlMessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db
        # The counter upserts of record_chunk, by table name (built on first use).
        self._add_ups: dict[str, Any] = {}

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
            per_platform = await _platform_counts(conn, message_id)
            reasons = await _failure_reasons(conn, message_id)
        return _status(row, per_platform, reasons)

    async def cancel(self, app_id: str, message_id: str, now: datetime) -> bool:
        # A dispatcher mid-run learns of it from its next record_chunk, which still
        # records the chunk in flight (its notifications went out) and says stop.
        stop = (
            sa.update(messages)
            .where(_m.app_id == app_id, _m.id == message_id, _m.state.in_(_LIVE_STATES))
            .values(
                state=int(MessageState.CANCELLED),
                next_run_at=None,
                lease_until=None,
                updated_at=to_micros(now),
            )
        )
        async with self._db.write() as conn:
            return (await conn.execute(stop)).rowcount == 1

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, exclude: Collection[str] = ()
    ) -> list[Run]:
        at, until = to_micros(now), to_micros(now + lease)
        async with self._db.write() as conn:
            # Abandoned runs first: they started earlier than anything still scheduled.
            abandoned = await _lock_due(
                conn, _claimable(MessageState.PUBLISHING, exclude), _m.lease_until, at, limit
            )
            scheduled = await _lock_due(
                conn,
                _claimable(MessageState.SCHEDULED, exclude),
                _m.next_run_at,
                at,
                limit - len(abandoned),
            )
            await _resume_runs(conn, [row.id for row in abandoned], at, until)
            started = await _start_runs(conn, scheduled, now, lease)
        return [_resumed_run(row) for row in abandoned] + started

    async def renew_lease(
        self, message_id: str, claim: int, now: datetime, lease: timedelta
    ) -> bool:
        renew = (
            sa.update(messages)
            .where(*_current_run(message_id, claim))
            .values(lease_until=to_micros(now + lease), updated_at=to_micros(now))
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
            "c_at": at,
            **{f"c_{name}": sum(getattr(outcome, name).values()) for name in _COUNTERS},
        }
        async with self._db.write() as conn:
            row = (await conn.execute(_CHECKPOINT, checkpoint)).one_or_none()
            if row is None:  # failed, finished or claimed again: not ours to record
                return False
            await self._add_platform_counts(conn, message_id, outcome)
            await self._add_failure_reasons(conn, message_id, outcome.failure_reasons)
            await _invalidate(conn, row.app_id, outcome.invalid_registration_ids, at)
        return row.state == int(MessageState.PUBLISHING)

    async def finish_run(
        self, message_id: str, claim: int, next_run_at: datetime | None, now: datetime
    ) -> None:
        state = MessageState.PUBLISHED if next_run_at is None else MessageState.SCHEDULED
        # Conditioned on the claim still being current, so a cancel is never overwritten.
        finish = (
            sa.update(messages)
            .where(*_current_run(message_id, claim))
            .values(
                state=int(state),
                next_run_at=micros_or_none(next_run_at),
                run_count=_m.run_count + 1,
                cursor=None,
                lease_until=None,
                updated_at=to_micros(now),
            )
        )
        async with self._db.write() as conn:
            await conn.execute(finish)

    async def fail(self, message_id: str, claim: int, error: str, now: datetime) -> None:
        failure = (
            sa.update(messages)
            .where(*_current_run(message_id, claim))
            .values(
                state=int(MessageState.FAILED),
                error_message=error,
                next_run_at=None,
                lease_until=None,
                updated_at=to_micros(now),
            )
        )
        async with self._db.write() as conn:
            await conn.execute(failure)

    async def next_due_at(self) -> datetime | None:
        """The earliest scheduled run, or lease expiry (a dispatcher may have died)."""
        scheduled = _earliest(_m.next_run_at, MessageState.SCHEDULED)
        expiring = _earliest(_m.lease_until, MessageState.PUBLISHING)
        async with self._db.read() as conn:
            moments = (await conn.execute(sa.select(scheduled, expiring))).one()
        known = [micros for micros in moments if micros is not None]
        return from_micros(min(known)) if known else None

    async def _add_platform_counts(
        self, conn: AsyncConnection, message_id: str, outcome: ChunkOutcome
    ) -> None:
        platforms = {*outcome.targeted, *outcome.sent, *outcome.failed}
        rows = [
            {
                "message_id": message_id,
                "platform": PLATFORM_CODES[platform],
                **{name: getattr(outcome, name).get(platform, 0) for name in _COUNTERS},
            }
            for platform in platforms
        ]
        await self._add_up(conn, message_platform_counts, ("message_id", "platform"), rows)

    async def _add_failure_reasons(
        self, conn: AsyncConnection, message_id: str, reasons: dict[str, int]
    ) -> None:
        rows = [
            {"message_id": message_id, "reason": reason, "count": count}
            for reason, count in reasons.items()
        ]
        await self._add_up(conn, message_failures, ("message_id", "reason"), rows)

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


# record_chunk's checkpoint: counters added, cursor stored, lease extended, all
# conditioned on the claim still being current. A run cancelled meanwhile still
# takes the counters of its chunk in flight, which was sent; its lease stays NULL.
_CHECKPOINT = (
    sa.update(messages)
    .where(
        _m.id == sa.bindparam("c_message_id"),
        _m.run_number == sa.bindparam("c_claim"),
        _m.state.in_([int(MessageState.PUBLISHING), int(MessageState.CANCELLED)]),
    )
    .values(
        cursor=sa.bindparam("c_cursor"),
        lease_until=sa.case(
            (
                _m.state == int(MessageState.PUBLISHING),
                sa.bindparam("c_lease_until", type_=sa.BigInteger),
            ),
            else_=None,
        ),
        updated_at=sa.bindparam("c_at"),
        **{name: _m[name] + sa.bindparam(f"c_{name}", type_=sa.BigInteger) for name in _COUNTERS},
    )
    .returning(_m.app_id, _m.state)
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


def _claimable(state: MessageState, exclude: Collection[str]) -> sa.ColumnElement[bool]:
    """In `state`, and not one of the messages the claiming scheduler is running."""
    in_state = _m.state == int(state)
    return sa.and_(in_state, _m.id.not_in(list(exclude))) if exclude else in_state


async def _lock_due(
    conn: AsyncConnection,
    in_state: sa.ColumnElement[bool],
    due_at: sa.Column[Any],
    at: int,
    limit: int,
) -> list[Any]:
    """Due rows, oldest first, locked for this transaction.

    PostgreSQL skips rows another server has locked, so servers split the work;
    SQLite renders no FOR UPDATE, and needs none: its one writer holds the lock.
    """
    if limit <= 0:
        return []
    query = (
        sa.select(messages)
        .where(in_state, due_at <= at)
        .order_by(due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await conn.execute(query))


async def _resume_runs(conn: AsyncConnection, ids: list[str], at: int, until: int) -> None:
    """A resumed run keeps its cursor and takes the next claim number."""
    if ids:
        await conn.execute(
            sa.update(messages)
            .where(_m.id.in_(ids))
            .values(run_number=_m.run_number + 1, lease_until=until, updated_at=at)
        )


async def _start_runs(
    conn: AsyncConnection, rows: list[Any], now: datetime, lease: timedelta
) -> list[Run]:
    """New runs start at the top of the audience, at their scheduled time. A repeat
    whose run would start more than a lease (the scheduler's normal lateness)
    after repeat_expires_at has ended instead: PUBLISHED, sending nothing."""
    due = [_new_run(row) for row in rows]
    ended = [run.message.message_id for run in due if run.message.schedule.expired_by(now, lease)]
    starting = [run for run in due if run.message.message_id not in ended]
    at, until = to_micros(now), to_micros(now + lease)
    await _mark_started(conn, [run.message.message_id for run in starting], at, until)
    await _mark_ended(conn, ended, at)
    return starting


async def _mark_started(conn: AsyncConnection, ids: list[str], at: int, until: int) -> None:
    if not ids:
        return
    start = (
        sa.update(messages)
        .where(_m.id.in_(ids))
        .values(
            state=int(MessageState.PUBLISHING),
            run_number=_m.run_number + 1,
            cursor=None,
            # Right-hand sides read the row as it was, so run_at takes the old next_run_at.
            run_at=_m.next_run_at,
            next_run_at=None,
            lease_until=until,
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


def _new_run(row: Any) -> Run:
    return Run(_message(row), row.run_number + 1, from_micros(row.next_run_at), None)


def _resumed_run(row: Any) -> Run:
    return Run(_message(row), row.run_number + 1, from_micros(row.run_at), row.cursor)


def _current_run(message_id: str, claim: int) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        _m.id == message_id,
        _m.run_number == claim,
        _m.state == int(MessageState.PUBLISHING),
    )


async def _invalidate(conn: AsyncConnection, app_id: str, ids: list[str], at: int) -> None:
    reg = registrations.c
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


def _earliest(column: sa.Column[Any], state: MessageState) -> sa.ScalarSelect[Any]:
    return sa.select(sa.func.min(column)).where(_m.state == int(state)).scalar_subquery()


_STATUS = sa.select(messages).where(
    _m.app_id == sa.bindparam("s_app_id"), _m.id == sa.bindparam("s_id")
)
_PLATFORM_COUNTS = sa.select(message_platform_counts).where(
    message_platform_counts.c.message_id == sa.bindparam("s_id")
)
_FAILURE_REASONS = sa.select(message_failures.c.reason, message_failures.c.count).where(
    message_failures.c.message_id == sa.bindparam("s_id")
)


async def _platform_counts(
    conn: AsyncConnection, message_id: str
) -> dict[Platform, PlatformCounts]:
    return {
        PLATFORMS_BY_CODE[row.platform]: PlatformCounts(row.targeted, row.sent, row.failed)
        for row in await conn.execute(_PLATFORM_COUNTS, {"s_id": message_id})
    }


async def _failure_reasons(conn: AsyncConnection, message_id: str) -> dict[str, int]:
    rows = await conn.execute(_FAILURE_REASONS, {"s_id": message_id})
    return {reason: count for reason, count in rows}


def _status(
    row: Any, per_platform: dict[Platform, PlatformCounts], reasons: dict[str, int]
) -> MessageStatus:
    return MessageStatus(
        message_id=row.id,
        state=MessageState(row.state),
        targeted=row.targeted,
        sent=row.sent,
        failed=row.failed,
        per_platform=per_platform,
        failure_reasons=reasons,
        run_count=row.run_count,
        next_run_at=moment_or_none(row.next_run_at),
        error_message=row.error_message,
    )


def _by_request(app_id: str, request_id: str) -> sa.Select[tuple[str]]:
    return sa.select(_m.id).where(_m.app_id == app_id, _m.request_id == request_id)
