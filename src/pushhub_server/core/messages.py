"""Message records: what was published, to whom, when, and how it went."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .models import Platform, Template
from .notifications import NotificationContent
from .web_push import WebPushKeys


class MessageState(enum.IntEnum):
    SCHEDULED = 1
    PUBLISHING = 2
    PUBLISHED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def terminal(self) -> bool:
        return self in (MessageState.PUBLISHED, MessageState.FAILED, MessageState.CANCELLED)


@dataclass(frozen=True)
class Audience:
    """Every filter given is ANDed. broadcast ignores channels; channel None means any."""

    channel: str | None = None
    broadcast: bool = False
    tag_expression: str | None = None
    user_ids: tuple[str, ...] = ()
    registration_ids: tuple[str, ...] = ()
    platforms: tuple[Platform, ...] = ()


@dataclass(frozen=True)
class Schedule:
    first_run_at: datetime
    repeat_every: timedelta | None = None
    repeat_expires_at: datetime | None = None

    def next_run_after(self, run_at: datetime, now: datetime) -> datetime | None:
        """The next slot after run_at that is still due in the future; missed slots merge."""
        if self.repeat_every is None:
            return None
        # Catch-up: the slots missed while down (or during a long run) merged into
        # the run just done, so the next one is the first slot after now.
        slot = self._latest_slot(run_at, now) + self.repeat_every
        return None if self._expired(slot) else slot

    def expired_by(self, now: datetime, grace: timedelta) -> bool:
        """Whether a run starting at now comes too late: after repeat_expires_at, give
        or take `grace` (how late the scheduler normally is to start a run).

        Judged by when the run starts, never by its slot, so after downtime past
        repeat_expires_at (and its grace) nothing goes out, whatever the grid.
        """
        expires = self.repeat_expires_at
        return self.repeat_every is not None and expires is not None and now > expires + grace

    def _latest_slot(self, run_at: datetime, now: datetime) -> datetime:
        """The last slot of run_at's grid that is due at now (run_at itself at least)."""
        if self.repeat_every is None or now <= run_at:
            return run_at
        return run_at + self.repeat_every * ((now - run_at) // self.repeat_every)

    def _expired(self, slot: datetime) -> bool:
        return self.repeat_expires_at is not None and slot > self.repeat_expires_at


@dataclass(frozen=True)
class Message:
    message_id: str
    app_id: str
    content: NotificationContent
    audience: Audience
    schedule: Schedule
    created_at: datetime
    request_id: str | None = None
    # The Publish's W3C traceparent, opaque here: delivery's spans link to it.
    trace_context: str | None = None


@dataclass(frozen=True)
class PlatformCounts:
    targeted: int = 0
    sent: int = 0
    failed: int = 0


@dataclass(frozen=True)
class MessageStatus:
    message_id: str
    state: MessageState
    targeted: int
    sent: int
    failed: int
    per_platform: dict[Platform, PlatformCounts]
    failure_reasons: dict[str, int]
    run_count: int
    next_run_at: datetime | None
    error_message: str | None = None


@dataclass(frozen=True)
class Partition:
    """One slice of a run's audience: the registration ids after the run's cursor
    up to last_id (inclusive; None: to the end). Partitions of one run are
    claimed, leased and checkpointed each on their own (docs/fleet.md)."""

    number: int = 0
    last_id: str | None = None


# The one partition of a run that is not cut: the whole audience.
WHOLE_AUDIENCE = Partition()


@dataclass(frozen=True)
class Run:
    """A claimed partition of a run of a message: the dispatcher resumes after
    `cursor` and stops after partition.last_id.

    `claim` numbers the claims of the message: every claim of one of its
    partitions, of a new run or of one resumed after its lease ran out, takes
    the next number, and the store refuses any write from an older one (a
    fencing token). A claim number names one partition of one run.
    """

    message: Message
    claim: int
    run_at: datetime
    cursor: str | None
    partition: Partition = WHOLE_AUDIENCE


@dataclass(frozen=True)
class Claims:
    """What one claim_due did: the partitions it claimed, and the messages it ended
    instead of starting (a repeat too late after repeat_expires_at ends PUBLISHED,
    sending nothing), so that the caller counts every message's end."""

    runs: list[Run]
    ended: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Recipient:
    registration_id: str
    platform: Platform
    device_token: str
    metadata: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    selector: str | None = None
    # Web Push only: the subscription's keys, which its payload is encrypted to.
    web_push_keys: WebPushKeys | None = None


# The longest failure reason kept (the store's column). Providers' reasons have no limit.
FAILURE_REASON_LENGTH = 255


@dataclass
class ChunkOutcome:
    """What one chunk did; stored with its checkpoint in one transaction."""

    cursor: str
    targeted: dict[Platform, int] = field(default_factory=dict)
    sent: dict[Platform, int] = field(default_factory=dict)
    failed: dict[Platform, int] = field(default_factory=dict)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    invalid_registration_ids: list[str] = field(default_factory=list)

    def count_failure(self, platform: Platform, reason: str) -> None:
        """Counts one failed delivery under its reason, cut to FAILURE_REASON_LENGTH:
        a longer one could never be stored, so the chunk's checkpoint would fail and
        the chunk be resent on every resume. Reasons equal once cut count as one."""
        self.failed[platform] = self.failed.get(platform, 0) + 1
        kept = reason[:FAILURE_REASON_LENGTH]
        self.failure_reasons[kept] = self.failure_reasons.get(kept, 0) + 1


@dataclass(frozen=True)
class Delivery:
    """One notification for one device, rendered."""

    message_id: str
    app_id: str
    registration_id: str
    platform: Platform
    device_token: str
    payload: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    # Web Push only: the subscription's keys, which the provider encrypts payload to.
    web_push_keys: WebPushKeys | None = None


def new_delivery(
    message_id: str,
    app_id: str,
    registration_id: str,
    platform: Platform,
    device_token: str,
    payload: bytes,
    headers: Mapping[str, str],
    web_push_keys: WebPushKeys | None = None,
) -> Delivery:
    """Delivery(...) for a fan-out's per-recipient loop: the same frozen object.

    A frozen dataclass's __init__ sets each field through object.__setattr__;
    filling the new instance's dict at once costs a third of that.
    """
    delivery = object.__new__(Delivery)
    delivery.__dict__.update(
        message_id=message_id,
        app_id=app_id,
        registration_id=registration_id,
        platform=platform,
        device_token=device_token,
        payload=payload,
        headers=headers,
        web_push_keys=web_push_keys,
    )
    return delivery


class DeliveryOutcome(enum.Enum):
    SENT = "sent"
    INVALID_TOKEN = "invalid_token"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    # The provider's reason string (e.g. "Unregistered", "BadDeviceToken").
    reason: str | None = None
    # Seconds the provider asked us to wait (Retry-After).
    retry_after: float | None = None


@dataclass(frozen=True)
class InboxEntry:
    """A delivery the simulator recorded."""

    message_id: str
    app_id: str
    registration_id: str
    platform: Platform
    payload: str
    delivered_at: datetime
