"""RegistrationRepository in memory, written through the core upsert planner."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.errors import PushHubError, not_device_owner, too_many_tags
from pushhub_server.core.ids import new_id
from pushhub_server.core.models import (
    CleanupTarget,
    DeviceActor,
    Page,
    Platform,
    Registration,
    RegistrationFilter,
    RegistrationInput,
    UpsertResult,
    token_digest,
)
from pushhub_server.core.registration_upsert_plan import (
    ItemOutcome,
    Plan,
    Slot,
    StoredRow,
    plan_upsert,
)

from .state import MemoryStore, StoredRegistration


class MemoryRegistrationRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def reserve_id(self, app_id: str, registration_id: str, at: datetime) -> None:
        self._store.reserved_ids[registration_id] = app_id

    async def upsert_many(
        self, app_id: str, items: Sequence[RegistrationInput], now: datetime
    ) -> list[UpsertResult | PushHubError]:
        keys = [item.token_key for item in items]
        named = {item.registration_id for item in items if item.registration_id}
        wanted = set(keys)
        stored = [
            _stored_row(row)
            for row in self._store.app_registrations(app_id)
            if row.token_key in wanted or row.registration.registration_id in named
        ]
        reserved = {rid for rid in named if self._store.reserved_ids.get(rid) == app_id}
        plan = plan_upsert(items, keys, stored, reserved, to_micros(now))
        self._apply(app_id, plan, now)
        return [self._result(app_id, outcome, plan, now) for outcome in plan.outcomes]

    def _apply(self, app_id: str, plan: Plan, now: datetime) -> None:
        rows = self._store.registrations
        for registration_id in plan.deleted:
            del rows[registration_id]
        for registration_id in plan.consumed_reservations:
            del self._store.reserved_ids[registration_id]
        for slot in plan.live.values():
            if slot.changed:
                rows[slot.id] = _written(app_id, slot, rows.get(slot.id), now)

    def _result(
        self, app_id: str, outcome: ItemOutcome | PushHubError, plan: Plan, now: datetime
    ) -> UpsertResult | PushHubError:
        if isinstance(outcome, PushHubError):
            return outcome
        slot, item = outcome.slot, outcome.item
        if plan.live.get(slot.id) is not slot:
            return UpsertResult(_removed_later(app_id, slot, item, now), outcome.unchanged)
        stored = self._store.registrations[slot.id].registration
        channel_ids = stored.channel_registration_ids
        if item is not slot.item:
            # A later item of the batch rewrote this registration: name only the
            # subscriptions of this item's channels that it kept.
            channel_ids = {name: channel_ids[name] for name in item.channels if name in channel_ids}
        registration = replace(
            _content(stored.app_id, slot.id, item),
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            channel_registration_ids=dict(channel_ids),
        )
        return UpsertResult(registration, outcome.unchanged)

    async def get(self, app_id: str, registration_id: str, now: datetime) -> Registration | None:
        row = self._store.registrations.get(registration_id)
        if row is None or row.registration.app_id != app_id or not row.live(now):
            return None
        return row.registration

    async def find_by_token(
        self, app_id: str, platform: Platform, device_token: str, now: datetime
    ) -> Registration | None:
        key = (platform, token_digest(device_token))
        for row in self._live(app_id, now):
            if row.token_key == key:
                return row.registration
        return None

    async def list(
        self,
        app_id: str,
        where: RegistrationFilter,
        limit: int,
        after_id: str | None,
        now: datetime,
    ) -> Page:
        items = [
            row.registration
            for row in self._matching(app_id, where, now)
            if after_id is None or row.registration.registration_id > after_id
        ]
        return Page.of(items, limit)

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
        if registration_id is not None:
            chosen = [
                row
                for row in self._live(app_id, now)
                if row.registration.registration_id == registration_id
            ]
        else:
            chosen = list(self._matching(app_id, where, now))
        changed = [_retagged(row.registration.tags, add, remove) for row in chosen]
        if add and any(len(tags) > max_tags for tags in changed):
            raise too_many_tags("add_tags", max_tags)
        for row, tags in zip(chosen, changed, strict=True):
            row.registration = replace(row.registration, tags=tags, updated_at=now)
            row.fingerprint = ""
        return len(chosen)

    async def delete(
        self, app_id: str, registration_id: str, actor: DeviceActor | None, now: datetime
    ) -> int:
        return self._delete_counting_live(
            app_id, now, lambda row: row.registration.registration_id == registration_id, actor
        )

    async def delete_by_token(
        self,
        app_id: str,
        platform: Platform,
        device_token: str,
        actor: DeviceActor | None,
        now: datetime,
    ) -> int:
        key = (platform, token_digest(device_token))
        return self._delete_counting_live(app_id, now, lambda row: row.token_key == key, actor)

    async def cleanup(self, app_id: str, targets: Sequence[CleanupTarget], now: datetime) -> int:
        whole_users = {t.user_id for t in targets if t.device_token is None}
        devices = {(t.user_id, token_digest(t.device_token)) for t in targets if t.device_token}

        def targeted(row: StoredRegistration) -> bool:
            user_id = row.registration.user_id
            return user_id in whole_users or (user_id, row.token_key[1]) in devices

        return self._delete_counting_live(app_id, now, targeted, None)

    async def delete_stale(self, now: datetime, invalidated_before: datetime) -> int:
        rows = self._store.registrations
        stale = [
            registration_id
            for registration_id, row in rows.items()
            if (row.registration.expires_at is not None and row.registration.expires_at <= now)
            or (row.invalidated_at is not None and row.invalidated_at < invalidated_before)
        ]
        for registration_id in stale:
            del rows[registration_id]
        return len(stale)

    def _live(self, app_id: str, now: datetime) -> Iterator[StoredRegistration]:
        return (row for row in self._store.app_registrations(app_id) if row.live(now))

    def _matching(
        self, app_id: str, where: RegistrationFilter, now: datetime
    ) -> Iterator[StoredRegistration]:
        for row in self._live(app_id, now):
            registration = row.registration
            if where.user_id is not None and registration.user_id != where.user_id:
                continue
            if where.platform is not None and registration.platform != where.platform:
                continue
            if where.channel is not None and where.channel not in registration.channels:
                continue
            if where.tag is not None and where.tag not in registration.tags:
                continue
            yield row

    def _delete_counting_live(
        self,
        app_id: str,
        now: datetime,
        chosen: Callable[[StoredRegistration], bool],
        actor: DeviceActor | None,
    ) -> int:
        """As the SQL store: deletes the chosen rows, live or not, but a live one the
        actor may not take stays; NOT_DEVICE_OWNER when no live one could go."""
        rows = [row for row in self._store.app_registrations(app_id) if chosen(row)]
        live = [row for row in rows if row.live(now)]
        taken = [row for row in live if actor is None or actor.may_take(row.registration.user_id)]
        if live and not taken:
            raise not_device_owner(live[0].registration.registration_id)
        taken_ids = {row.registration.registration_id for row in taken}
        for row in rows:
            registration_id = row.registration.registration_id
            if registration_id in taken_ids or not row.live(now):
                del self._store.registrations[registration_id]
        return len(taken)


def _stored_row(row: StoredRegistration) -> StoredRow:
    registration = row.registration
    expires_at = registration.expires_at
    return StoredRow(
        id=registration.registration_id,
        platform=registration.platform,
        token_hash=row.token_key[1],
        fingerprint=row.fingerprint,
        expires_at=None if expires_at is None else to_micros(expires_at),
        created_at=to_micros(registration.created_at),
        updated_at=to_micros(registration.updated_at),
        user_id=registration.user_id,
        invalidated=row.invalidated_at is not None,
    )


def _removed_later(app_id: str, slot: Slot, item: RegistrationInput, now: datetime) -> Registration:
    """An item whose registration a later item of the batch removed, by taking its
    token (two reserved ids on one token, say): answered as a call of its own
    would have been, as the SQL store answers it, but naming no subscription,
    since none of its channels stays subscribed."""
    created_at, updated_at = map(from_micros, slot.answered_times(to_micros(now)))
    return replace(_content(app_id, slot.id, item), created_at=created_at, updated_at=updated_at)


def _written(
    app_id: str, slot: Slot, previous: StoredRegistration | None, now: datetime
) -> StoredRegistration:
    """The row a changed slot leaves: subscriptions of channels still wanted keep their ids."""
    kept = previous.registration.channel_registration_ids if previous is not None else {}
    channel_ids = {name: kept.get(name) or new_id() for name in slot.item.channels}
    created_at = now if slot.stored is None else from_micros(slot.stored.created_at)
    registration = replace(
        _content(app_id, slot.id, slot.item),
        created_at=created_at,
        updated_at=now,
        channel_registration_ids=channel_ids,
    )
    # Writing clears invalidated_at: re-registering a dead token revives it.
    return StoredRegistration(registration, slot.key, slot.fingerprint)


def _content(app_id: str, registration_id: str, item: RegistrationInput) -> Registration:
    """An item as stored; its maps are copied, so the caller's later changes stay theirs."""
    return Registration(
        registration_id=registration_id,
        app_id=app_id,
        platform=item.platform,
        device_token=item.device_token,
        channels=item.channels,
        tags=item.tags,
        user_id=item.user_id,
        expires_at=item.expires_at,
        metadata=dict(item.metadata),
        templates=dict(item.templates),
        selector=item.selector,
        created_at=from_micros(0),
        updated_at=from_micros(0),
        channel_registration_ids={},
        web_push_keys=item.web_push_keys,
    )


def _retagged(tags: Sequence[str], add: Sequence[str], remove: Sequence[str]) -> tuple[str, ...]:
    """Removed ones go; added ones not already there are appended, in order."""
    kept = [tag for tag in tags if tag not in remove]
    return tuple(dict.fromkeys([*kept, *add]))
