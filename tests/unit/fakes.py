"""In-memory fakes of the core.ports Protocols, for use-case tests without a database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from pushhub_server.core.errors import (
    PushHubError,
    not_device_owner,
    registration_gone,
    too_many_tags,
)
from pushhub_server.core.ids import new_id
from pushhub_server.core.models import (
    CleanupTarget,
    DeviceActor,
    Page,
    Platform,
    Registration,
    RegistrationFilter,
    RegistrationInput,
    TrackedRequest,
    UpsertResult,
)


class InMemoryRegistrationRepository:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Registration] = {}
        self.fingerprints: dict[tuple[str, str], str] = {}
        self.reserved: set[tuple[str, str]] = set()
        self.subscription_ids: dict[tuple[str, str, str], str] = {}

    @staticmethod
    def _live(row: Registration, now: datetime) -> bool:
        return row.expires_at is None or row.expires_at > now

    async def reserve_id(self, app_id: str, registration_id: str, at: datetime) -> None:
        self.reserved.add((app_id, registration_id))

    async def upsert_many(
        self, app_id: str, items: Sequence[RegistrationInput], now: datetime
    ) -> list[UpsertResult | PushHubError]:
        results: list[UpsertResult | PushHubError] = []
        for item in items:
            refusal = await self._refusal(app_id, item, now)
            if refusal is not None:
                results.append(refusal)
                continue
            if item.registration_id:
                key = (app_id, item.registration_id)
                existing = self.rows.get(key)
                if existing is not None and not self._live(existing, now):
                    existing = None
                if existing is None and key not in self.reserved:
                    results.append(registration_gone(item.registration_id))
                    continue
                registration_id = item.registration_id
            else:
                found = await self.find_by_token(app_id, item.platform, item.device_token, now)
                registration_id = found.registration_id if found else new_id()
                existing = found
            key = (app_id, registration_id)
            unchanged = existing is not None and self.fingerprints.get(key) == item.fingerprint
            channel_ids = {
                channel: self.subscription_ids.setdefault(
                    (app_id, registration_id, channel), new_id()
                )
                for channel in item.channels
            }
            row = Registration(
                registration_id,
                app_id,
                item.platform,
                item.device_token,
                item.channels,
                item.tags,
                item.user_id,
                item.expires_at,
                dict(item.metadata),
                dict(item.templates),
                item.selector,
                existing.created_at if existing else now,
                now,
                channel_ids,
            )
            self.rows[key] = row
            self.fingerprints[key] = item.fingerprint
            results.append(UpsertResult(row, unchanged))
        return results

    async def _refusal(
        self, app_id: str, item: RegistrationInput, now: datetime
    ) -> PushHubError | None:
        actor = item.device_actor
        if actor is None:
            return None
        named = await self.get(app_id, item.registration_id or "", now)
        holder = await self.find_by_token(app_id, item.platform, item.device_token, now)
        for row in (named, holder):
            if row is not None and not actor.may_take(row.user_id):
                return not_device_owner(row.registration_id)
        return None

    async def get(self, app_id: str, registration_id: str, now: datetime) -> Registration | None:
        row = self.rows.get((app_id, registration_id))
        return row if row is not None and self._live(row, now) else None

    async def find_by_token(
        self, app_id: str, platform: Platform, device_token: str, now: datetime
    ) -> Registration | None:
        for (owner, _), row in self.rows.items():
            if (owner, row.platform, row.device_token) == (app_id, platform, device_token):
                return row if self._live(row, now) else None
        return None

    def _matching(self, app_id: str, where: RegistrationFilter, now: datetime):
        for (owner, _), row in sorted(self.rows.items()):
            if owner != app_id or not self._live(row, now):
                continue
            if where.user_id and row.user_id != where.user_id:
                continue
            if where.channel and where.channel not in row.channels:
                continue
            if where.tag and where.tag not in row.tags:
                continue
            if where.platform and row.platform != where.platform:
                continue
            yield row

    async def list(
        self,
        app_id: str,
        where: RegistrationFilter,
        limit: int,
        after_id: str | None,
        now: datetime,
    ) -> Page:
        rows = [
            row
            for row in self._matching(app_id, where, now)
            if after_id is None or row.registration_id > after_id
        ]
        page = rows[:limit]
        return Page(page, page[-1].registration_id if len(rows) > limit else None)

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
        if registration_id:
            found = await self.get(app_id, registration_id, now)
            chosen = [found] if found else []
        else:
            chosen = list(self._matching(app_id, where, now))
        updated = [
            replace(
                row, tags=tuple(dict.fromkeys((*(t for t in row.tags if t not in remove), *add)))
            )
            for row in chosen
        ]
        if add and any(len(row.tags) > max_tags for row in updated):
            raise too_many_tags("add_tags", max_tags)
        for row in updated:
            self.rows[(app_id, row.registration_id)] = row
        return len(updated)

    async def delete(
        self, app_id: str, registration_id: str, actor: DeviceActor | None, now: datetime
    ) -> int:
        return self._delete_as(app_id, self.rows.get((app_id, registration_id)), actor, now)

    async def delete_by_token(
        self,
        app_id: str,
        platform: Platform,
        device_token: str,
        actor: DeviceActor | None,
        now: datetime,
    ) -> int:
        held = [
            row
            for (owner, _), row in self.rows.items()
            if (owner, row.platform, row.device_token) == (app_id, platform, device_token)
        ]
        return self._delete_as(app_id, held[0] if held else None, actor, now)

    def _delete_as(
        self, app_id: str, row: Registration | None, actor: DeviceActor | None, now: datetime
    ) -> int:
        if row is None:
            return 0
        live = self._live(row, now)
        if live and actor is not None and not actor.may_take(row.user_id):
            raise not_device_owner(row.registration_id)
        del self.rows[(app_id, row.registration_id)]
        return int(live)

    async def cleanup(self, app_id: str, targets: Sequence[CleanupTarget], now: datetime) -> int:
        removed = 0
        for key, row in list(self.rows.items()):
            if key[0] != app_id:
                continue
            for target in targets:
                if row.user_id == target.user_id and target.device_token in (
                    None,
                    "",
                    row.device_token,
                ):
                    del self.rows[key]
                    removed += int(self._live(row, now))
                    break
        return removed

    async def delete_stale(self, now: datetime, invalidated_before: datetime) -> int:
        # Rows here are never invalidated: only expiry makes them stale.
        expired = [key for key, row in self.rows.items() if not self._live(row, now)]
        for key in expired:
            del self.rows[key]
        return len(expired)


class InMemoryTrackingRepository:
    def __init__(self) -> None:
        self.requests: dict[str, TrackedRequest] = {}

    async def record(self, requests: Sequence[TrackedRequest], at: datetime) -> None:
        for request in requests:
            self.requests[request.request_id] = request

    async def get_many(
        self, app_id: str, request_ids: Sequence[str]
    ) -> Mapping[str, TrackedRequest]:
        return {
            request_id: self.requests[request_id]
            for request_id in request_ids
            if request_id in self.requests and self.requests[request_id].app_id == app_id
        }


class RecordingWebhookSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str], dict[str, object]]] = []

    def send(self, url: str, headers: Mapping[str, str], body: Mapping[str, object]) -> None:
        self.sent.append((url, dict(headers), dict(body)))
