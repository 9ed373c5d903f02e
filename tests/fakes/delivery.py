"""In-memory doubles of the delivery-side ports: messages and audience (store/memory
with test hooks), inbox, providers, signal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pushhub_server.core.messages import (
    Audience,
    ChunkOutcome,
    Claims,
    Delivery,
    DeliveryOutcome,
    DeliveryResult,
    InboxEntry,
    Message,
    MessageState,
    Recipient,
    Schedule,
)
from pushhub_server.core.models import Platform, RegistrationInput, UpsertResult
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.ports import DeliveryProvider
from pushhub_server.store.memory import (
    MemoryAudienceReader,
    MemoryMessageRepository,
    MemoryRegistrationRepository,
    MemoryStore,
)

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


class ObservedAudience(MemoryAudienceReader):
    """The in-memory AudienceReader (proved like the SQL one by tests/contract), with
    the hooks the delivery tests need: the reads it answered, and errors to raise."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
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
        return await super().page(
            app_id,
            audience,
            after_id,
            limit,
            now,
            with_metadata=with_metadata,
            with_templates=with_templates,
            last_id=last_id,
        )


async def register(store: MemoryStore, members: Sequence[Recipient]) -> None:
    """Registers each member in APP under its registration id (reserved first, as
    CreateRegistrationId does), through the in-memory RegistrationRepository."""
    registrations = MemoryRegistrationRepository(store)
    for member in members:
        await registrations.reserve_id(APP, member.registration_id, START)
    items = [_registration(member) for member in members]
    for result in await registrations.upsert_many(APP, items, START):
        assert isinstance(result, UpsertResult), result


def _registration(member: Recipient) -> RegistrationInput:
    return RegistrationInput(
        platform=member.platform,
        device_token=member.device_token,
        channels=(),
        tags=(),
        user_id=None,
        expires_at=None,
        metadata=member.metadata,
        templates=member.templates,
        selector=member.selector,
        registration_id=member.registration_id,
        web_push_keys=member.web_push_keys,
    )


class FakeMessages(MemoryMessageRepository):
    """The in-memory MessageRepository (proved like the SQL one by tests/contract), with
    the hooks the delivery tests need. Tokens it invalidates leave the store's audience."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        super().__init__(store)
        # The chunks recorded (not those refused to a stale claim).
        self.chunks: list[ChunkOutcome] = []
        self.claims = 0
        # Raised by the next claim_due, as a database going away would.
        self.claim_error: Exception | None = None
        # Awaited inside record_chunk before it writes, to interleave a cancel or an error.
        self.before_record: Callable[[], Awaitable[None]] = nothing

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, exclude: Collection[str] = ()
    ) -> Claims:
        self.claims += 1
        if self.claim_error is not None:
            error, self.claim_error = self.claim_error, None
            raise error
        return await super().claim_due(now, lease, limit, exclude)

    async def record_chunk(
        self,
        message_id: str,
        claim: int,
        outcome: ChunkOutcome,
        now: datetime,
        lease: timedelta,
    ) -> bool:
        await self.before_record()
        row = self.store.messages[message_id]
        # The store records a chunk of the latest claim, of a run going on or cancelled.
        recorded = row.run_number == claim and row.state in _RECORDABLE
        going_on = await super().record_chunk(message_id, claim, outcome, now, lease)
        if recorded:
            self.chunks.append(outcome)
        return going_on


_RECORDABLE = (MessageState.PUBLISHING, MessageState.CANCELLED)


async def nothing() -> None:
    return None


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

    def notify_all(self) -> None:
        raise NotImplementedError

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
