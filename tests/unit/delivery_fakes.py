"""In-memory fakes of the delivery-side ports: messages, audience, inbox, providers, signal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pushhub_server.core.messages import (
    Audience,
    ChunkOutcome,
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    InboxEntry,
    Message,
    MessageState,
    MessageStatus,
    PlatformCounts,
    Recipient,
    Run,
    Schedule,
)
from pushhub_server.core.models import Platform
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import DeliveryProvider

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
APP = "app-1"
SENT = DeliveryResult(DeliveryOutcome.SENT)
_Key = TypeVar("_Key")


def message(
    message_id: str = "m-1",
    *,
    content: NotificationContent | None = None,
    first_run_at: datetime = START,
    repeat_every: timedelta | None = None,
    repeat_expires_at: datetime | None = None,
) -> Message:
    return Message(
        message_id=message_id,
        app_id=APP,
        content=content or NotificationContent(message="hello"),
        audience=Audience(broadcast=True),
        schedule=Schedule(first_run_at, repeat_every, repeat_expires_at),
        created_at=START,
    )


def recipients(count: int, *, token_prefix: str = "tok-") -> list[Recipient]:
    """r0000, r0001, ...: ids sort in creation order, as the keyset pages need."""
    return [
        Recipient(f"r{i:04d}", Platform.APNS if i % 2 else Platform.FCM, f"{token_prefix}{i}")
        for i in range(count)
    ]


class FakeAudience:
    """The app's recipients, in id order; invalidated ones are left out, as the store does."""

    def __init__(self, members: Sequence[Recipient] = ()) -> None:
        self.members = sorted(members, key=lambda r: r.registration_id)
        self.invalid: set[str] = set()
        self.reads: list[str | None] = []
        # Raised instead of the read with that number (0-based), as a database
        # going away would.
        self.errors: dict[int, Exception] = {}

    async def page(
        self,
        app_id: str,
        audience: Audience,
        after_id: str | None,
        limit: int,
        now: datetime,
        *,
        with_metadata: bool = True,
        with_templates: bool = True,
        last_id: str | None = None,
    ) -> list[Recipient]:
        error = self.errors.pop(len(self.reads), None)
        if error is not None:
            raise error
        self.reads.append(after_id)
        live = (r for r in self.members if r.registration_id not in self.invalid)
        page = [
            r
            for r in live
            if (after_id is None or r.registration_id > after_id)
            and (last_id is None or r.registration_id <= last_id)
        ][:limit]
        return [
            replace(
                r,
                metadata=r.metadata if with_metadata else {},
                templates=r.templates if with_templates else {},
            )
            for r in page
        ]


@dataclass
class _Row:
    message: Message
    state: MessageState = MessageState.SCHEDULED
    next_run_at: datetime | None = None
    lease_until: datetime | None = None
    cursor: str | None = None
    run_at: datetime | None = None
    claim: int = 0
    run_count: int = 0
    targeted: dict[Platform, int] = field(default_factory=dict)
    sent: dict[Platform, int] = field(default_factory=dict)
    failed: dict[Platform, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class FakeMessages:
    """MessageRepository with the store's run and lease rules, in memory."""

    def __init__(self, audience: FakeAudience) -> None:
        self.audience = audience
        self.rows: dict[str, _Row] = {}
        self.chunks: list[ChunkOutcome] = []
        self.claims = 0
        # Raised by the next claim_due, as a database going away would.
        self.claim_error: Exception | None = None
        # Called inside record_chunk before it answers, to interleave a cancel.
        self.before_record: Callable[[], None] = lambda: None

    async def create(self, message: Message) -> tuple[str, bool]:
        self.rows[message.message_id] = _Row(message, next_run_at=message.schedule.first_run_at)
        return message.message_id, True

    async def find_request(self, app_id: str, request_id: str) -> str | None:
        return next(
            (
                message_id
                for message_id, row in self.rows.items()
                if (row.message.app_id, row.message.request_id) == (app_id, request_id)
            ),
            None,
        )

    async def status(self, app_id: str, message_id: str) -> MessageStatus | None:
        row = self.rows[message_id]
        platforms = {*row.targeted, *row.sent, *row.failed}
        return MessageStatus(
            message_id=message_id,
            state=row.state,
            targeted=sum(row.targeted.values()),
            sent=sum(row.sent.values()),
            failed=sum(row.failed.values()),
            per_platform={
                p: PlatformCounts(row.targeted.get(p, 0), row.sent.get(p, 0), row.failed.get(p, 0))
                for p in platforms
            },
            failure_reasons=dict(row.reasons),
            run_count=row.run_count,
            next_run_at=row.next_run_at,
            error_message=row.error,
        )

    async def cancel(self, app_id: str, message_id: str, now: datetime) -> bool:
        row = self.rows[message_id]
        if row.state.terminal:
            return False
        row.state, row.next_run_at, row.lease_until = MessageState.CANCELLED, None, None
        return True

    async def claim_due(
        self,
        now: datetime,
        lease: timedelta,
        limit: int,
        exclude: Collection[str] = (),
    ) -> list[Run]:
        """Claims as the store does with one partition per run."""
        self.claims += 1
        if self.claim_error is not None:
            error, self.claim_error = self.claim_error, None
            raise error
        due = [
            row
            for row in self.rows.values()
            if _due(row, now) and row.message.message_id not in exclude
        ][:limit]
        return [run for row in due if (run := _claim(row, now, lease)) is not None]

    async def renew_lease(
        self, message_id: str, claim: int, now: datetime, lease: timedelta
    ) -> bool:
        row = self.rows[message_id]
        if not _current(row, claim):
            return False
        row.lease_until = now + lease
        return True

    async def record_chunk(
        self,
        message_id: str,
        claim: int,
        outcome: ChunkOutcome,
        now: datetime,
        lease: timedelta,
    ) -> bool:
        self.before_record()
        row = self.rows[message_id]
        cancelled = row.state is MessageState.CANCELLED
        if row.claim != claim or not (cancelled or row.state is MessageState.PUBLISHING):
            return False
        self.chunks.append(outcome)
        _add_up(row.targeted, outcome.targeted)
        _add_up(row.sent, outcome.sent)
        _add_up(row.failed, outcome.failed)
        _add_up(row.reasons, outcome.failure_reasons)
        self.audience.invalid.update(outcome.invalid_registration_ids)
        row.cursor = outcome.cursor
        row.lease_until = None if cancelled else now + lease
        return not cancelled

    async def finish_run(
        self, message_id: str, claim: int, next_run_at: datetime | None, now: datetime
    ) -> None:
        row = self.rows[message_id]
        if not _current(row, claim):
            return
        row.run_count += 1
        row.cursor, row.lease_until, row.next_run_at = None, None, next_run_at
        row.state = MessageState.PUBLISHED if next_run_at is None else MessageState.SCHEDULED

    async def fail(self, message_id: str, claim: int, error: str, now: datetime) -> None:
        row = self.rows[message_id]
        if not _current(row, claim):
            return
        row.state, row.error, row.next_run_at = MessageState.FAILED, error, None

    async def next_due_at(self, exclude: Collection[str] = ()) -> datetime | None:
        moments = [
            row.next_run_at if row.state is MessageState.SCHEDULED else row.lease_until
            for row in self.rows.values()
            if row.state in (MessageState.SCHEDULED, MessageState.PUBLISHING)
            and row.message.message_id not in exclude
        ]
        return min((m for m in moments if m is not None), default=None)


def _add_up(totals: dict[_Key, int], counts: Mapping[_Key, int]) -> None:
    for key, count in counts.items():
        totals[key] = totals.get(key, 0) + count


def _claim(row: _Row, now: datetime, lease: timedelta) -> Run | None:
    """Claims a due row as the store does: None when the repeat has expired."""
    if row.state is MessageState.SCHEDULED:
        assert row.next_run_at is not None
        if row.message.schedule.expired_by(now, lease):
            row.state, row.next_run_at = MessageState.PUBLISHED, None
            return None
        row.run_at, row.next_run_at, row.cursor = row.next_run_at, None, None
    row.claim += 1
    row.state, row.lease_until = MessageState.PUBLISHING, now + lease
    assert row.run_at is not None
    return Run(row.message, row.claim, row.run_at, row.cursor)


def _current(row: _Row, claim: int) -> bool:
    return row.state is MessageState.PUBLISHING and row.claim == claim


def _due(row: _Row, now: datetime) -> bool:
    if row.state is MessageState.SCHEDULED:
        return row.next_run_at is not None and row.next_run_at <= now
    return row.state is MessageState.PUBLISHING and (row.lease_until or now) <= now


class FakeInbox:
    def __init__(self) -> None:
        self.recorded: list[tuple[Delivery, datetime]] = []

    async def record(self, deliveries: Sequence[Delivery], at: datetime) -> None:
        self.recorded.extend((delivery, at) for delivery in deliveries)

    async def list(
        self,
        app_id: str | None,
        registration_id: str | None,
        message_id: str | None,
        limit: int,
    ) -> list[InboxEntry]:
        raise NotImplementedError  # the delivery side only writes


class ScriptedProvider:
    """Answers each delivery with answer(delivery)."""

    def __init__(self, answer: Callable[[Delivery], DeliveryResult] = lambda d: SENT) -> None:
        self.answer = answer

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        return [self.answer(delivery) for delivery in deliveries]


class RecordingProvider:
    """Passes every batch to inner (by default: all sent) and remembers it."""

    def __init__(self, inner: DeliveryProvider | None = None) -> None:
        self.inner = inner or ScriptedProvider()
        self.batches: list[list[Delivery]] = []

    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        self.batches.append(list(deliveries))
        return await self.inner.send(deliveries, validate_only=validate_only)

    @property
    def tokens(self) -> list[str]:
        return [d.device_token for batch in self.batches for d in batch]


class CountingSignal:
    def __init__(self) -> None:
        self.notified: list[str] = []

    def notify(self, message_id: str) -> None:
        self.notified.append(message_id)

    async def wait(self, message_id: str, timeout: float) -> None:
        raise NotImplementedError

    def listen(self, message_id: str):
        raise NotImplementedError


class NoSleep:
    """RetryPolicy.sleep that records the delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        # Runs in place of the sleep, e.g. to move a ManualClock across it.
        self.meanwhile: Callable[[float], Awaitable[None]] | None = None

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.meanwhile is not None:
            await self.meanwhile(seconds)
