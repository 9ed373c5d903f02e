"""Repository and delivery Protocols. `store` and `delivery` implement them.

Every method is scoped by app_id where data belongs to an app, so no call
can read or change another app's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from .errors import PushHubError
from .models import (
    ApiKey,
    App,
    CleanupTarget,
    Page,
    Platform,
    Registration,
    RegistrationFilter,
    RegistrationInput,
    TrackedRequest,
    UpsertResult,
)


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


class RegistrationRepository(Protocol):
    async def reserve_id(self, app_id: str, registration_id: str, at: datetime) -> None: ...

    async def upsert_many(
        self, app_id: str, items: Sequence[RegistrationInput], now: datetime
    ) -> list[UpsertResult | PushHubError]:
        """Creates or replaces registrations in one transaction, set-based.

        Items without registration_id upsert on (platform, device_token).
        Items with one update that live registration, or create it when the
        id was reserved; otherwise that item's result is REGISTRATION_GONE.
        Channels are created on first use; subscription ids stay stable.
        """

    async def get(self, app_id: str, registration_id: str, now: datetime) -> Registration | None:
        """A live (unexpired) registration, or None."""

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
        now: datetime,
    ) -> int:
        """Adds and removes tags on the chosen live registrations; returns how many."""

    async def delete(self, app_id: str, registration_id: str) -> int: ...

    async def delete_by_token(self, app_id: str, platform: Platform, device_token: str) -> int: ...

    async def cleanup(self, app_id: str, targets: Sequence[CleanupTarget]) -> int: ...

    async def delete_expired(self, now: datetime) -> int: ...


class TrackingRepository(Protocol):
    async def record(self, requests: Sequence[TrackedRequest], at: datetime) -> None: ...

    async def get_many(
        self, app_id: str, request_ids: Sequence[str]
    ) -> Mapping[str, TrackedRequest]: ...


class WebhookSender(Protocol):
    def send(self, url: str, headers: Mapping[str, str], body: Mapping[str, object]) -> None:
        """Queues a POST; never raises, never blocks the caller."""
