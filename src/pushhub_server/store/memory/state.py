"""What the in-memory repositories share, as the SQL ones share a database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pushhub_server.core.messages import Message, MessageState
from pushhub_server.core.models import (
    ApiKey,
    App,
    Platform,
    Registration,
    TokenKey,
    TrackedRequest,
)


@dataclass
class StoredApp:
    app: App
    credentials: dict[Platform, str] = field(default_factory=dict)


@dataclass
class StoredKey:
    key: ApiKey
    key_hash: str


@dataclass
class StoredRegistration:
    # As a read answers it; channel_registration_ids holds the subscription ids.
    registration: Registration
    token_key: TokenKey
    # "" once tags changed outside upsert, so no item's fingerprint matches it.
    fingerprint: str
    invalidated_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        """Unexpired and not invalidated: anything else is gone to clients."""
        expires_at = self.registration.expires_at
        unexpired = expires_at is None or expires_at > now
        return unexpired and self.invalidated_at is None


@dataclass
class StoredMessage:
    message: Message
    state: MessageState
    next_run_at: datetime | None
    # The claim number of the latest run (Run.claim).
    run_number: int = 0
    run_count: int = 0
    run_at: datetime | None = None
    lease_until: datetime | None = None
    cursor: str | None = None
    error_message: str | None = None
    # platform → [targeted, sent, failed]
    counts: dict[Platform, list[int]] = field(default_factory=dict)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass
class MemoryStore:
    """One "database": every repository built on the same store sees the same rows."""

    apps: dict[str, StoredApp] = field(default_factory=dict)
    keys: dict[str, StoredKey] = field(default_factory=dict)
    # registration id → row; ids are unique across apps, as in the SQL store.
    registrations: dict[str, StoredRegistration] = field(default_factory=dict)
    # reserved registration id → app id
    reserved_ids: dict[str, str] = field(default_factory=dict)
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    tracked: dict[str, TrackedRequest] = field(default_factory=dict)

    def app_registrations(self, app_id: str) -> list[StoredRegistration]:
        """The app's registrations in id order, the order every listing uses."""
        rows = (row for row in self.registrations.values() if row.registration.app_id == app_id)
        return sorted(rows, key=lambda row: row.registration.registration_id)

    def delete_app(self, app_id: str) -> None:
        """Everything of the app goes with it, as the SQL store's cascades do."""
        for table in (self.registrations, self.messages, self.keys, self.tracked):
            for row_id in [row_id for row_id, row in table.items() if _app_of(row) == app_id]:
                del table[row_id]
        for reserved in [rid for rid, owner in self.reserved_ids.items() if owner == app_id]:
            del self.reserved_ids[reserved]
        del self.apps[app_id]


def _app_of(row: object) -> str:
    if isinstance(row, StoredRegistration):
        return row.registration.app_id
    if isinstance(row, StoredMessage):
        return row.message.app_id
    if isinstance(row, StoredKey):
        return row.key.app_id
    assert isinstance(row, TrackedRequest)
    return row.app_id
