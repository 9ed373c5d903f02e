"""Repository and delivery Protocols. `store` and `delivery` implement them.

Every method is scoped by app_id where data belongs to an app, so no call
can read or change another app's rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from .delivery_metrics import NotificationCounts
from .errors import PushHubError
from .messages import (
    Audience,
    ChunkOutcome,
    Claims,
    Delivery,
    DeliveryResult,
    InboxEntry,
    Message,
    MessageState,
    MessageStatus,
    Recipient,
    Run,
)
from .models import (
    ApiKey,
    App,
    CleanupTarget,
    DeviceActor,
    FailureReason,
    Page,
    Platform,
    Registration,
    RegistrationFilter,
    RegistrationInput,
    RequestState,
    TrackedRequest,
    UpsertResult,
)
from .web_push import WebPushKeys


class AppRepository(Protocol):
    async def create_app(self, app: App, keys: Sequence[tuple[ApiKey, str]]) -> None:
        """Stores the app with its keys (each with its hash) in one transaction.

        Raises PushHubError ALREADY_EXISTS when the name is taken.
        """

    async def get_app(self, app_id: str) -> App | None: ...

    async def find_app(self, id_or_name: str) -> App | None: ...

    async def list_apps(self, limit: int, after_id: str | None) -> list[App]: ...

    async def delete_app(self, app_id: str) -> bool: ...

    async def add_key(self, key: ApiKey, key_hash: str) -> None: ...

    async def list_keys(self, app_id: str) -> list[ApiKey]: ...

    async def revoke_key(self, app_id: str, key_id: str, at: datetime) -> ApiKey | None: ...

    async def active_key(self, key_hash: str) -> tuple[ApiKey, App] | None:
        """The unrevoked key with this hash, and its app."""

    async def set_credentials(
        self, app_id: str, platform: Platform, sealed: str | None, public: str | None = None
    ) -> bool:
        """Stores (or clears) an app's sealed credentials for a platform; False if no such app.

        ``public`` is the part that is no secret and that App shows (Web Push's VAPID
        public key), stored in the clear beside them."""

    async def replace_credentials(
        self, app_id: str, platform: Platform, expected: str, sealed: str
    ) -> bool:
        """Stores `sealed` only while the stored value is still `expected`; True if it did."""

    async def credentials(self, app_id: str) -> dict[Platform, str]:
        """The app's sealed credentials by platform; a platform without any is absent."""

    async def set_signing_secret(self, app_id: str, sealed: str) -> bool:
        """Replaces the app's sealed user-token signing secret; False if no such app."""

    async def replace_signing_secret(self, app_id: str, expected: str, sealed: str) -> bool:
        """Stores `sealed` only while the stored secret is still `expected`; True if it did."""


class RegistrationRepository(Protocol):
    async def reserve_id(self, app_id: str, registration_id: str, at: datetime) -> None: ...

    async def upsert_many(
        self, app_id: str, items: Sequence[RegistrationInput], now: datetime
    ) -> list[UpsertResult | PushHubError]:
        """Creates or replaces registrations in one transaction, set-based.

        Items without registration_id upsert on (platform, device_token).
        Items with one update that registration (an invalidated one is
        revived; an expired one is gone), or create it when the
        id was reserved; otherwise that item's result is REGISTRATION_GONE.
        An item with a device_actor that would change or delete a registration
        its actor may not take is NOT_DEVICE_OWNER, and changes nothing.
        Channels are created on first use; subscription ids stay stable.
        """

    async def get(self, app_id: str, registration_id: str, now: datetime) -> Registration | None:
        """A live (unexpired, not invalidated) registration, or None."""

    async def find_by_token(
        self, app_id: str, platform: Platform, device_token: str, now: datetime
    ) -> Registration | None: ...

    async def list(
        self,
        app_id: str,
        where: RegistrationFilter,
        limit: int,
        after_id: str | None,
        now: datetime,
    ) -> Page: ...

    async def update_tags(
        self,
        app_id: str,
        registration_id: str | None,
        where: RegistrationFilter,
        add: Sequence[str],
        remove: Sequence[str],
        max_tags: int,
        now: datetime,
    ) -> int:
        """Adds and removes tags on the chosen live registrations; returns how many.

        When adding would leave one of them with more than max_tags tags, raises
        TOO_MANY_VALUES and changes none of them.
        """

    async def delete(
        self, app_id: str, registration_id: str, actor: DeviceActor | None, now: datetime
    ) -> int:
        """Deletes the registration, live or not; returns 1 if it was live, else 0.

        With an actor, a live registration the actor may not take raises
        NOT_DEVICE_OWNER and stays: decided by the delete itself, in one transaction.
        """

    async def delete_by_token(
        self,
        app_id: str,
        platform: Platform,
        device_token: str,
        actor: DeviceActor | None,
        now: datetime,
    ) -> int:
        """As delete, for the registration holding the token."""

    async def cleanup(self, app_id: str, targets: Sequence[CleanupTarget], now: datetime) -> int:
        """Deletes the targets' registrations; returns how many of them were live."""

    async def delete_stale(self, now: datetime, invalidated_before: datetime) -> int:
        """Deletes registrations expired by now or invalidated before invalidated_before."""


class TrackingRepository(Protocol):
    async def record(self, requests: Sequence[TrackedRequest], at: datetime) -> None: ...

    async def get_many(
        self, app_id: str, request_ids: Sequence[str]
    ) -> Mapping[str, TrackedRequest]: ...

    async def finish(
        self,
        app_id: str,
        request_id: str,
        state: RequestState,
        reason: FailureReason | None,
    ) -> None:
        """Ends a PENDING request (after its dry-run verification)."""


class RegistrationVerifier(Protocol):
    """Customer Insights - Journeys' dry run: a silent send proves a token works."""

    async def applies(self, app_id: str, platform: Platform) -> bool:
        """True when the app delivers to this platform through a real provider."""

    async def verify(
        self,
        app_id: str,
        platform: Platform,
        device_token: str,
        web_push_keys: WebPushKeys | None = None,
    ) -> bool:
        """Sends a notification the user never sees; True when the provider accepted it.
        ``web_push_keys``: a Web Push registration's, which the payload is encrypted to."""


class WebhookSender(Protocol):
    def send(self, url: str, headers: Mapping[str, str], body: Mapping[str, object]) -> None:
        """Queues a POST; never raises, never blocks the caller."""


class MessageRepository(Protocol):
    """Messages and their runs. A run is cut into partitions of its audience, each
    claimed under a lease and a claim number (Run.claim, unique in the message);
    every write of a partition is conditioned on that claim still being the
    partition's, so a dispatcher that lost its claim can change nothing."""

    async def create(self, message: Message) -> tuple[str, bool]:
        """Stores the message SCHEDULED at schedule.first_run_at, in one transaction.

        With a request_id already used in the app, stores nothing and returns
        (that message's id, False); otherwise (message.message_id, True).
        """

    async def find_request(self, app_id: str, request_id: str) -> str | None:
        """The id of the app's message created with this request_id, if any."""

    async def status(self, app_id: str, message_id: str) -> MessageStatus | None: ...

    async def cancel(self, app_id: str, message_id: str, now: datetime) -> bool:
        """Moves a SCHEDULED or PUBLISHING message to CANCELLED; False when terminal."""

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int, exclude: Collection[str] = ()
    ) -> Claims:
        """Claims one partition of each of up to `limit` messages, none in `exclude`
        (those its caller is running): of PUBLISHING runs, a partition never
        claimed or whose lease ran out (its dispatcher is gone); then of the
        SCHEDULED runs with next_run_at <= now, which it starts (PUBLISHING) and
        cuts into partitions. Each claimed partition takes the lease and the
        message's next claim number. A SCHEDULED run that Schedule.expired_by(now,
        lease) says starts too late is not started: the message ends PUBLISHED,
        and its id is in Claims.ended (its claimer counts the end).
        PostgreSQL: FOR UPDATE SKIP LOCKED, so several servers share the work, and
        one message."""

    async def claim_partition(
        self, message: Message, holding: int, now: datetime, lease: timedelta
    ) -> Run | None:
        """Claims one more partition of `message`'s run under way, as claim_due
        does, for the caller already holding the partition claim `holding` names
        (never that one, even if its lease ran out): a dispatcher claims the next
        partition before its current one drains. None when the message is not
        PUBLISHING or none of its partitions is claimable."""

    async def renew_lease(
        self, message_id: str, claim: int, now: datetime, lease: timedelta
    ) -> bool:
        """Extends the partition's lease to now + lease while `claim` is its claim and
        it is not done; False otherwise (cancelled, failed, finished, claimed again)."""

    async def record_chunk(
        self,
        message_id: str,
        claim: int,
        outcome: ChunkOutcome,
        now: datetime,
        lease: timedelta,
    ) -> bool:
        """Adds the chunk's counters to the message's, invalidates its invalid tokens
        and stores the partition's checkpoint, in one transaction, extending the
        lease. True: go on. False: stop, either because the message was cancelled
        meanwhile (the chunk, sent by then, is still recorded) or because `claim` is
        no longer the partition's (nothing is recorded: its new owner resends this
        chunk)."""

    async def finish_run(
        self, message_id: str, claim: int, next_run_at: datetime | None, now: datetime
    ) -> bool:
        """Ends the partition `claim` names, while it is its claim and not done; the
        last partition of the run to end ends the run: run_count + 1, SCHEDULED at
        next_run_at, or PUBLISHED when None. A cancel is never overwritten. True when
        this call ended the run (so a message's end is counted once)."""

    async def fail(self, message_id: str, claim: int, error: str, now: datetime) -> bool:
        """FAILED, ending every partition, but only while `claim` is still its
        partition's claim: a dispatcher whose lease ran out must not fail the run
        another one resumed. True when this call failed the message (not when it
        was cancelled or had failed meanwhile), so a message's end is counted once."""

    async def next_due_at(self, exclude: Collection[str] = ()) -> datetime | None:
        """The earliest next_run_at of a SCHEDULED message, or lease end of a
        partition not done of a message not in `exclude` (0 when never claimed),
        for the scheduler's sleep."""


class AudienceReader(Protocol):
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
        """Live, valid recipients with registration_id > after_id, and <= last_id
        unless None (a partition's end), ascending, at most limit.

        One parameterised query over the registration indexes; never the whole audience.
        Without with_metadata (with_templates) the recipients' metadata (templates) are
        left empty and never read: a registration may hold hundreds of KiB of them."""


class DeliveryProvider(Protocol):
    async def send(
        self, deliveries: Sequence[Delivery], *, validate_only: bool = False
    ) -> list[DeliveryResult]:
        """One result per delivery, in order. Never raises for a single bad delivery.

        With validate_only (a registration's dry run), nothing is shown to anyone:
        the deliveries are checked as a send would check them, by the push service
        itself where it has a validate-only mode (FCM, Huawei). APNs has none, so
        there only silent background pushes are sent, and others refused unsent.
        """


class Inbox(Protocol):
    """The simulator's record of what it delivered."""

    async def record(self, deliveries: Sequence[Delivery], at: datetime) -> None: ...

    async def list(
        self,
        app_id: str | None,
        registration_id: str | None,
        message_id: str | None,
        limit: int,
    ) -> list[InboxEntry]: ...


class StatusListener(Protocol):
    """One watcher's subscription to a message's changes."""

    async def wait(self, timeout: float) -> None:
        """Returns at once if notified since the last wait (or since listen), else on
        the next notify, or after timeout seconds."""
        ...

    def close(self) -> None: ...


class StatusSignal(Protocol):
    """Wakes watchers when a message's status may have changed."""

    def notify(self, message_id: str) -> None: ...

    def notify_all(self) -> None:
        """Wakes every watcher (changes may have been missed), so each reads again."""

    async def wait(self, message_id: str, timeout: float) -> None: ...

    def listen(self, message_id: str) -> StatusListener:
        """Starts listening now, so a change made while the watcher reads the status
        is not lost before its next wait."""
        ...


class ChangeListener(Protocol):
    """What a process does when another process commits a change (the change feed,
    docs/fleet.md). Each call is cheap and never blocks: it only wakes the existing
    in-process signals (the scheduler's wake-up, a StatusSignal, the key cache)."""

    def messages_due(self) -> None:
        """A message was published or fell due, or a run was cut into a partition
        that another process may claim: look for due runs now."""

    def status_changed(self, message_id: str) -> None:
        """The message's status changed: wake its watchers."""

    def key_revoked(self, key_id: str) -> None:
        """Forget the cached lookups of this key."""

    def app_changed(self, app_id: str) -> None:
        """The app was deleted, or its credentials or signing secret changed:
        forget its cached keys."""

    def changes_missed(self) -> None:
        """The feed (re)connected: changes committed while it was away were not
        heard, so act as if everything changed."""


class ChangeFeed(Protocol):
    """Tells this process of the changes other processes commit (PostgreSQL
    LISTEN/NOTIFY). Polling stays the safety net: a feed that is down costs
    latency, never correctness. One process alone (SQLite, memory) needs none:
    its own writes already wake its in-process signals."""

    def start(self, listener: ChangeListener) -> None:
        """Starts listening in the background; never waits for the database."""

    async def stop(self) -> None:
        """Stops listening, at once (never waits for the database)."""


class DeliveryMetrics(Protocol):
    """What delivery tells an operator's metrics (core.delivery_metrics has the
    no-op default). Every call is cheap and never raises."""

    def chunk_counted(self, counts: NotificationCounts) -> None:
        """One chunk's notifications, counted once per chunk."""

    def provider_request(self, platform: Platform, seconds: float) -> None:
        """One send to a platform's provider (a chunk's share, or a retry) took `seconds`."""

    def message_ended(self, state: MessageState) -> None:
        """A message reached a terminal state."""

    def run_claimed(self, lag_seconds: float) -> None:
        """A run was claimed `lag_seconds` after it fell due."""

    def run_started(self) -> None: ...

    def run_ended(self) -> None: ...


class DeliveryTracing(Protocol):
    """Spans around a run, each of its chunks and each provider send, linked to
    the Publish that stored the message (core.delivery_tracing: the no-op one)."""

    def run(self, message: Message, claim: int) -> AbstractContextManager[object]: ...

    def chunk(self, message: Message, recipients: int) -> AbstractContextManager[object]: ...

    def provider_send(
        self, platform: Platform, deliveries: int
    ) -> AbstractContextManager[object]: ...
