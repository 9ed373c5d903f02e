"""A cache of API-key lookups in front of an AppRepository (a decorator of the port).

Authentication would otherwise cost a database round trip on every RPC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .models import ApiKey, App, Platform
from .ports import AppRepository

# Key lookups that reach the database at once.
_DATABASE_LOOKUPS = 8


@dataclass(frozen=True)
class _CachedKey:
    expires: float
    key: ApiKey
    app: App


class KeyCachingAppRepository:
    """An AppRepository that remembers successful key lookups for a few seconds.

    Revoking a key, deleting an app or changing its signing secret through this
    repository (so through any AppService of this process) forgets the affected
    entries at once. Another process's changes reach it through the change feed
    (forget_key, forget_app, forget_all; docs/fleet.md); while the feed is down,
    a key revoked, or a secret rotated, by another process stays usable here for
    at most `seconds`.
    """

    def __init__(self, inner: AppRepository, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds
        self._cache: dict[str, _CachedKey] = {}
        # Bumped on each invalidation, so a lookup that raced with one is not cached.
        self._generation = 0
        # Unknown keys are never cached: a flood of made-up keys waits here
        # instead of taking every database connection.
        self._lookups = asyncio.Semaphore(_DATABASE_LOOKUPS)

    async def active_key(self, key_hash: str) -> tuple[ApiKey, App] | None:
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached.expires > now:
            return cached.key, cached.app
        generation = self._generation
        async with self._lookups:
            found = await self._inner.active_key(key_hash)
        if found is not None and generation == self._generation:
            self._cache[key_hash] = _CachedKey(now + self._seconds, *found)
        return found

    async def revoke_key(self, app_id: str, key_id: str, at: datetime) -> ApiKey | None:
        revoked = await self._inner.revoke_key(app_id, key_id, at)
        self.forget_key(key_id)
        return revoked

    async def delete_app(self, app_id: str) -> bool:
        deleted = await self._inner.delete_app(app_id)
        self.forget_app(app_id)
        return deleted

    async def set_credentials(
        self, app_id: str, platform: Platform, sealed: str | None, public: str | None = None
    ) -> bool:
        stored = await self._inner.set_credentials(app_id, platform, sealed, public)
        # Cached apps carry <platform>_configured and the Web Push public key.
        self.forget_app(app_id)
        return stored

    async def set_signing_secret(self, app_id: str, sealed: str) -> bool:
        stored = await self._inner.set_signing_secret(app_id, sealed)
        # Cached apps carry the signing secret: a token signed with the old one
        # must be refused from now on.
        self.forget_app(app_id)
        return stored

    async def replace_signing_secret(self, app_id: str, expected: str, sealed: str) -> bool:
        replaced = await self._inner.replace_signing_secret(app_id, expected, sealed)
        self.forget_app(app_id)
        return replaced

    def forget_key(self, key_id: str) -> None:
        """Forgets the key's cached lookups (revoked here or by another process)."""
        self._forget(lambda entry: entry.key.key_id == key_id)

    def forget_app(self, app_id: str) -> None:
        """Forgets the app's cached keys: it was deleted, or what a cached app carries changed."""
        self._forget(lambda entry: entry.app.app_id == app_id)

    def forget_all(self) -> None:
        """Changes may have gone unheard (the change feed was down)."""
        self._forget(lambda entry: True)

    def _forget(self, matches: Callable[[_CachedKey], bool]) -> None:
        self._generation += 1
        for key_hash in [h for h, entry in self._cache.items() if matches(entry)]:
            del self._cache[key_hash]

    # The rest passes straight through.

    async def create_app(self, app: App, keys: Sequence[tuple[ApiKey, str]]) -> None:
        await self._inner.create_app(app, keys)

    async def get_app(self, app_id: str) -> App | None:
        return await self._inner.get_app(app_id)

    async def find_app(self, id_or_name: str) -> App | None:
        return await self._inner.find_app(id_or_name)

    async def list_apps(self, limit: int, after_id: str | None) -> list[App]:
        return await self._inner.list_apps(limit, after_id)

    async def add_key(self, key: ApiKey, key_hash: str) -> None:
        await self._inner.add_key(key, key_hash)

    async def list_keys(self, app_id: str) -> list[ApiKey]:
        return await self._inner.list_keys(app_id)

    async def credentials(self, app_id: str) -> dict[Platform, str]:
        return await self._inner.credentials(app_id)

    async def replace_credentials(
        self, app_id: str, platform: Platform, expected: str, sealed: str
    ) -> bool:
        return await self._inner.replace_credentials(app_id, platform, expected, sealed)
