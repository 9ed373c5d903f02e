"""AppRepository in memory: apps, their keys (by hash) and sealed credentials."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.core.models import ApiKey, App, Platform

from .state import MemoryStore, StoredApp, StoredKey


class MemoryAppRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def create_app(self, app: App, keys: Sequence[tuple[ApiKey, str]]) -> None:
        if any(stored.app.name == app.name for stored in self._store.apps.values()):
            raise PushHubError(
                ErrorCode.ALREADY_EXISTS,
                "APP_ALREADY_EXISTS",
                f"an app named {app.name!r} already exists",
                {"name": app.name},
            )
        # Credentials are set through set_credentials only, as in the SQL store.
        self._store.apps[app.app_id] = StoredApp(
            replace(app, apns_configured=False, fcm_configured=False)
        )
        for key, key_hash in keys:
            await self.add_key(key, key_hash)

    async def get_app(self, app_id: str) -> App | None:
        stored = self._store.apps.get(app_id)
        return None if stored is None else _app(stored)

    async def find_app(self, id_or_name: str) -> App | None:
        for stored in self._store.apps.values():
            if id_or_name in (stored.app.app_id, stored.app.name):
                return _app(stored)
        return None

    async def list_apps(self, limit: int, after_id: str | None) -> list[App]:
        ids = sorted(app_id for app_id in self._store.apps if after_id is None or app_id > after_id)
        return [_app(self._store.apps[app_id]) for app_id in ids[:limit]]

    async def delete_app(self, app_id: str) -> bool:
        if app_id not in self._store.apps:
            return False
        self._store.delete_app(app_id)
        return True

    async def add_key(self, key: ApiKey, key_hash: str) -> None:
        self._store.keys[key.key_id] = StoredKey(key, key_hash)

    async def list_keys(self, app_id: str) -> list[ApiKey]:
        keys = (stored.key for stored in self._store.keys.values() if stored.key.app_id == app_id)
        return sorted(keys, key=lambda key: key.key_id)

    async def revoke_key(self, app_id: str, key_id: str, at: datetime) -> ApiKey | None:
        """Revoking twice keeps the first revocation time."""
        stored = self._store.keys.get(key_id)
        if stored is None or stored.key.app_id != app_id:
            return None
        if stored.key.revoked_at is None:
            stored.key = replace(stored.key, revoked_at=at)
        return stored.key

    async def active_key(self, key_hash: str) -> tuple[ApiKey, App] | None:
        for stored in self._store.keys.values():
            if stored.key_hash == key_hash and stored.key.revoked_at is None:
                return stored.key, _app(self._store.apps[stored.key.app_id])
        return None

    async def set_credentials(self, app_id: str, platform: Platform, sealed: str | None) -> bool:
        stored = self._store.apps.get(app_id)
        if stored is None:
            return False
        if sealed is None:
            stored.credentials.pop(platform, None)
        else:
            stored.credentials[platform] = sealed
        return True

    async def replace_credentials(
        self, app_id: str, platform: Platform, expected: str, sealed: str
    ) -> bool:
        stored = self._store.apps.get(app_id)
        if stored is None or stored.credentials.get(platform) != expected:
            return False
        stored.credentials[platform] = sealed
        return True

    async def credentials(self, app_id: str) -> dict[Platform, str]:
        stored = self._store.apps.get(app_id)
        return {} if stored is None else dict(stored.credentials)

    async def set_signing_secret(self, app_id: str, sealed: str) -> bool:
        stored = self._store.apps.get(app_id)
        if stored is None:
            return False
        stored.app = replace(stored.app, signing_secret=sealed)
        return True

    async def replace_signing_secret(self, app_id: str, expected: str, sealed: str) -> bool:
        stored = self._store.apps.get(app_id)
        if stored is None or stored.app.signing_secret != expected:
            return False
        stored.app = replace(stored.app, signing_secret=sealed)
        return True


def _app(stored: StoredApp) -> App:
    return replace(
        stored.app,
        apns_configured=Platform.APNS in stored.credentials,
        fcm_configured=Platform.FCM in stored.credentials,
    )
