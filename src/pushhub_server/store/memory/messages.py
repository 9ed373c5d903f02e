"""MessageRepository in memory: the runs, leases and claim numbers of store/messages.py."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from pushhub_server.core.messages import (
    ChunkOutcome,
    Claims,
    Message,
    MessageState,
    MessageStatus,
    PlatformCounts,
    Run,
)

from .state import MemoryStore, StoredMessage

_LIVE_STATES = (MessageState.SCHEDULED, MessageState.PUBLISHING)


class MemoryMessageRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def create(self, message: Message) -> tuple[str, bool]:
        if message.request_id is not None:
            earlier = await self.find_request(message.app_id, message.request_id)
            if earlier is not None:
                return earlier, False
        first_run_at = message.schedule.first_run_at
        self._store.messages[message.message_id] = StoredMessage(
            message, MessageState.SCHEDULED, first_run_at, updated_at=message.created_at
        )
        return message.message_id, True

    async def find_request(self, app_id: str, request_id: str) -> str | None:
        for message_id, row in self._store.messages.items():
            if (row.message.app_id, row.message.request_id) == (app_id, request_id):
                return message_id
        return None

    async def status(self, app_id: str, message_id: str) -> MessageStatus | None:
        row = self._mine(app_id, message_id)
        if row is None:
            return None
        per_platform = {
            platform: PlatformCounts(*counts) for platform, counts in row.counts.items()
        }
        return MessageStatus(
            message_id=message_id,
            state=row.state,
            targeted=sum(counts.targeted for counts in per_platform.values()),
            sent=sum(counts.sent for counts in per_platform.values()),
            failed=sum(counts.failed for counts in per_platform.values()),
            per_platform=per_platform,
            failure_reasons=dict(row.failure_reasons),
            run_count=row.run_count,
            next_run_at=row.next_run_at,
            error_message=row.error_message,
        )

    async def cancel(self, app_id: str, message_id: str, now: datetime) -> bool:
        row = self._mine(app_id, message_id)
        if row is None or row.state not in _LIVE_STATES:
            return False
        row.state, row.next_run_at, row.lease_until = MessageState.CANCELLED, None, None
        row.updated_at = now
        return True

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, exclude: Collection[str] = ()
    ) -> Claims:
        # Abandoned runs first: they started earlier than anything still scheduled.
        abandoned = self._due(MessageState.PUBLISHING, now, exclude, limit)
        scheduled = self._due(MessageState.SCHEDULED, now, exclude, limit - len(abandoned))
        runs: list[Run] = []
        ended: list[str] = []
        for row in abandoned:
            # A resumed run keeps its cursor and takes the next claim number.
            row.run_number += 1
            row.lease_until, row.updated_at = now + lease, now
            assert row.run_at is not None
            runs.append(Run(row.message, row.run_number, row.run_at, row.cursor))
        for row in scheduled:
            row.updated_at = now
            if row.message.schedule.expired_by(now, lease):
                # Starts too late after repeat_expires_at: ends, sending nothing.
                row.state, row.next_run_at = MessageState.PUBLISHED, None
                ended.append(row.message.message_id)
                continue
            row.run_number += 1
            row.state, row.cursor, row.lease_until = MessageState.PUBLISHING, None, now + lease
            row.run_at, row.next_run_at = row.next_run_at, None
            assert row.run_at is not None
            runs.append(Run(row.message, row.run_number, row.run_at, None))
        return Claims(runs, ended)

    async def renew_lease(
        self, message_id: str, claim: int, now: datetime, lease: timedelta
    ) -> bool:
        row = self._current_run(message_id, claim)
        if row is None:
            return False
        row.lease_until, row.updated_at = now + lease, now
        return True

    async def record_chunk(
        self,
        message_id: str,
        claim: int,
        outcome: ChunkOutcome,
        now: datetime,
        lease: timedelta,
    ) -> bool:
        row = self._store.messages.get(message_id)
        recordable = (MessageState.PUBLISHING, MessageState.CANCELLED)
        if row is None or row.run_number != claim or row.state not in recordable:
            return False  # failed, finished or claimed again: not ours to record
        # A run cancelled meanwhile still takes the counters of its chunk in flight,
        # which was sent; its lease stays unset.
        publishing = row.state is MessageState.PUBLISHING
        row.cursor, row.updated_at = outcome.cursor, now
        row.lease_until = now + lease if publishing else None
        for platform in {*outcome.targeted, *outcome.sent, *outcome.failed}:
            counts = row.counts.setdefault(platform, [0, 0, 0])
            for index, counter in enumerate((outcome.targeted, outcome.sent, outcome.failed)):
                counts[index] += counter.get(platform, 0)
        for reason, count in outcome.failure_reasons.items():
            row.failure_reasons[reason] = row.failure_reasons.get(reason, 0) + count
        self._invalidate(row.message.app_id, outcome.invalid_registration_ids, now)
        return publishing

    async def finish_run(
        self, message_id: str, claim: int, next_run_at: datetime | None, now: datetime
    ) -> bool:
        # One partition per run here (SQLite's default too): its end ends the run.
        row = self._current_run(message_id, claim)
        if row is None:
            return False  # a cancel is never overwritten
        row.state = MessageState.PUBLISHED if next_run_at is None else MessageState.SCHEDULED
        row.next_run_at, row.run_count = next_run_at, row.run_count + 1
        row.cursor, row.lease_until, row.updated_at = None, None, now
        return True

    async def fail(self, message_id: str, claim: int, error: str, now: datetime) -> bool:
        row = self._current_run(message_id, claim)
        if row is None:
            return False
        row.state, row.error_message = MessageState.FAILED, error
        row.next_run_at, row.lease_until, row.updated_at = None, None, now
        return True

    async def next_due_at(self, exclude: Collection[str] = ()) -> datetime | None:
        moments = [
            row.next_run_at if row.state is MessageState.SCHEDULED else row.lease_until
            for row in self._store.messages.values()
            if row.state in _LIVE_STATES and row.message.message_id not in exclude
        ]
        return min((moment for moment in moments if moment is not None), default=None)

    def _mine(self, app_id: str, message_id: str) -> StoredMessage | None:
        row = self._store.messages.get(message_id)
        return row if row is not None and row.message.app_id == app_id else None

    def _current_run(self, message_id: str, claim: int) -> StoredMessage | None:
        row = self._store.messages.get(message_id)
        if row is None or row.run_number != claim or row.state is not MessageState.PUBLISHING:
            return None
        return row

    def _due(
        self, state: MessageState, now: datetime, exclude: Collection[str], limit: int
    ) -> list[StoredMessage]:
        """Rows in state whose run (SCHEDULED) or lease (PUBLISHING) is due, oldest first."""
        if limit <= 0:
            return []
        due: list[tuple[datetime, StoredMessage]] = []
        for message_id, row in self._store.messages.items():
            at = row.next_run_at if state is MessageState.SCHEDULED else row.lease_until
            if row.state is state and message_id not in exclude and at is not None and at <= now:
                due.append((at, row))
        due.sort(key=lambda pair: pair[0])
        return [row for _, row in due[:limit]]

    def _invalidate(self, app_id: str, registration_ids: list[str], now: datetime) -> None:
        for registration_id in registration_ids:
            row = self._store.registrations.get(registration_id)
            # The first invalidation's time is kept.
            if row is not None and row.registration.app_id == app_id and row.invalidated_at is None:
                row.invalidated_at = now
