"""The bulk write path of upsert_many: a plan applied with set-based statements.

Per batch: one SELECT of the rows the items could touch, one of reserved ids,
one of the subscriptions of pre-existing rows, then executemany DELETE, UPDATE
and INSERT statements. No statement runs once per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.errors import PushHubError
from pushhub_server.core.ids import new_ids
from pushhub_server.core.models import Registration, RegistrationInput, UpsertResult

from .records import CONTENT_COLUMNS, content_values
from .schema import channels, registration_tags, registrations, reserved_ids, subscriptions
from .sql import BulkInsert, BulkUpdate, chunked, one_of
from .upsert_plan import ItemOutcome, Plan, StoredRow, TokenKey, item_key, plan_upsert

_STORED_COLUMNS = (
    registrations.c.id,
    registrations.c.platform,
    registrations.c.token_hash,
    registrations.c.fingerprint,
    registrations.c.expires_at,
    registrations.c.created_at,
    registrations.c.updated_at,
)

# channel name → (subscription id, position), per registration id
StoredSubscriptions = dict[str, dict[str, tuple[str, int]]]


_INSERT_REGISTRATION = BulkInsert(
    registrations,
    "id",
    "app_id",
    *CONTENT_COLUMNS,
    "token_hash",
    "fingerprint",
    "created_at",
    "updated_at",
)
_UPDATE_REGISTRATION = BulkUpdate(
    registrations, *CONTENT_COLUMNS, "token_hash", "fingerprint", "updated_at"
)
_PARK_TOKEN = BulkUpdate(registrations, "token_hash")
_INSERT_SUBSCRIPTION = BulkInsert(
    subscriptions,
    "id",
    "registration_id",
    "channel_id",
    "position",
    unique=("registration_id", "channel_id"),
)
_MOVE_SUBSCRIPTION = BulkUpdate(subscriptions, "position")
_INSERT_CHANNEL = BulkInsert(
    channels, "id", "app_id", "name", "created_at", unique=("app_id", "name")
)
_INSERT_TAG = BulkInsert(registration_tags, "registration_id", "tag", "app_id", "position")


class BulkUpsert:
    """One upsert_many call inside one write transaction."""

    def __init__(self, conn: AsyncConnection, app_id: str, now: datetime) -> None:
        self._conn = conn
        self._app_id = app_id
        self._now = now
        self._now_micros = to_micros(now)
        # Subscription ids per live registration, in channel order.
        self._channel_ids: dict[str, dict[str, str]] = {}

    def _one_of(
        self, column: sa.ColumnElement[Any], values: Sequence[Any]
    ) -> sa.ColumnElement[bool]:
        return one_of(column, values, self._conn.dialect.name)

    async def run(self, items: Sequence[RegistrationInput]) -> list[UpsertResult | PushHubError]:
        keys = [item_key(item) for item in items]
        stored = await self._stored_rows(items, keys)
        reserved = await self._reserved(items)
        plan = plan_upsert(items, keys, stored, reserved, self._now_micros)
        subscribed = await self._stored_subscriptions(plan.stored_ids)
        await self._write_registrations(plan)
        await self._write_subscriptions(plan, subscribed)
        await self._write_tags(plan)
        return [self._result(outcome) for outcome in plan.outcomes]

    async def _stored_rows(
        self, items: Sequence[RegistrationInput], keys: Sequence[TokenKey]
    ) -> list[StoredRow]:
        """Rows holding an item's token or id. On PostgreSQL they stay locked until commit."""
        hashes = list({token_hash for _, token_hash in keys})
        ids = list({item.registration_id for item in items if item.registration_id})
        found: dict[str, StoredRow] = {}
        for column, values in ((registrations.c.token_hash, hashes), (registrations.c.id, ids)):
            for chunk in chunked(values):
                query = (
                    sa.select(*_STORED_COLUMNS)
                    .where(registrations.c.app_id == self._app_id, self._one_of(column, chunk))
                    # One lock order for every writer keeps deadlocks rare.
                    .order_by(registrations.c.id)
                    .with_for_update()
                )
                for row in await self._conn.execute(query):
                    found[row.id] = StoredRow(*row)
        return list(found.values())

    async def _reserved(self, items: Sequence[RegistrationInput]) -> set[str]:
        ids = list({item.registration_id for item in items if item.registration_id})
        reserved: set[str] = set()
        for chunk in chunked(ids):
            query = sa.select(reserved_ids.c.id).where(
                reserved_ids.c.app_id == self._app_id, self._one_of(reserved_ids.c.id, chunk)
            )
            reserved.update(await self._conn.scalars(query))
        return reserved

    async def _stored_subscriptions(self, registration_ids: list[str]) -> StoredSubscriptions:
        found: StoredSubscriptions = {}
        for chunk in chunked(registration_ids):
            query = (
                sa.select(
                    subscriptions.c.registration_id,
                    channels.c.name,
                    subscriptions.c.id,
                    subscriptions.c.position,
                )
                .join(channels, channels.c.id == subscriptions.c.channel_id)
                .where(self._one_of(subscriptions.c.registration_id, chunk))
            )
            for registration_id, name, subscription_id, position in await self._conn.execute(query):
                found.setdefault(registration_id, {})[name] = (subscription_id, position)
        return found

    async def _write_registrations(self, plan: Plan) -> None:
        conn, table = self._conn, registrations
        for chunk in chunked(sorted(plan.deleted)):
            await conn.execute(sa.delete(table).where(self._one_of(table.c.id, chunk)))
        updates = plan.updates
        # Park moved rows on a key no token digest can equal, so the final
        # UPDATE cannot collide with a key another row gives up later.
        await _PARK_TOKEN.run(conn, [(slot.id, slot.id) for slot in updates if slot.moved])
        now = self._now_micros
        await _UPDATE_REGISTRATION.run(
            conn,
            [
                (*content_values(slot.item), slot.key[1], slot.fingerprint, now, slot.id)
                for slot in updates
            ],
        )
        await _INSERT_REGISTRATION.run(
            conn,
            [
                (slot.id, self._app_id, *content_values(slot.item), slot.key[1])
                + (slot.fingerprint, now, now)
                for slot in plan.inserts
            ],
        )
        for chunk in chunked(sorted(plan.consumed_reservations)):
            await conn.execute(
                sa.delete(reserved_ids).where(self._one_of(reserved_ids.c.id, chunk))
            )

    async def _write_subscriptions(self, plan: Plan, stored: StoredSubscriptions) -> None:
        """Keeps the subscriptions (and ids) of channels still wanted, adds and drops the rest."""
        obsolete: list[str] = []
        repositioned: list[tuple[int, str]] = []
        added: list[tuple[str, str, str, int]] = []  # (id, registration id, channel, position)
        live = list(plan.live.values())
        fresh_ids = iter(new_ids(sum(len(slot.item.channels) for slot in live)))
        for slot in live:
            current = stored.get(slot.id, {})
            ids = self._channel_ids[slot.id] = {}
            for position, name in enumerate(slot.item.channels):
                if name not in current:
                    ids[name] = next(fresh_ids)
                    added.append((ids[name], slot.id, name, position))
                    continue
                ids[name], old_position = current[name]
                if slot.changed and old_position != position:
                    repositioned.append((position, ids[name]))
            if slot.changed:
                obsolete += [sid for name, (sid, _) in current.items() if name not in ids]
        for chunk in chunked(obsolete):
            await self._conn.execute(
                sa.delete(subscriptions).where(self._one_of(subscriptions.c.id, chunk))
            )
        await _MOVE_SUBSCRIPTION.run(self._conn, repositioned)
        if added:
            channel_ids = await self._ensure_channels({name for _, _, name, _ in added})
            rows = [(sid, rid, channel_ids[name], pos) for sid, rid, name, pos in added]
            await _INSERT_SUBSCRIPTION.run(self._conn, rows)

    async def _ensure_channels(self, names: set[str]) -> dict[str, str]:
        """Channel ids by name, creating the missing ones (a race simply finds them)."""
        found = await self._channel_ids_by_name(names)
        missing = sorted(names - found.keys())
        if missing:
            rows = [
                (channel_id, self._app_id, name, self._now_micros)
                for channel_id, name in zip(new_ids(len(missing)), missing, strict=True)
            ]
            await _INSERT_CHANNEL.run(self._conn, rows)
            found.update(await self._channel_ids_by_name(missing))
        return found

    async def _channel_ids_by_name(self, names: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunked(sorted(names)):
            query = sa.select(channels.c.name, channels.c.id).where(
                channels.c.app_id == self._app_id, self._one_of(channels.c.name, chunk)
            )
            found.update({name: channel_id for name, channel_id in await self._conn.execute(query)})
        return found

    async def _write_tags(self, plan: Plan) -> None:
        """Tags of changed registrations are replaced as a whole."""
        tags = registration_tags.c
        for chunk in chunked([slot.id for slot in plan.updates]):
            await self._conn.execute(
                sa.delete(registration_tags).where(self._one_of(tags.registration_id, chunk))
            )
        rows = [
            (slot.id, tag, self._app_id, position)
            for slot in plan.live.values()
            if slot.changed
            for position, tag in enumerate(slot.item.tags)
        ]
        await _INSERT_TAG.run(self._conn, rows)

    def _result(self, outcome: ItemOutcome | PushHubError) -> UpsertResult | PushHubError:
        if isinstance(outcome, PushHubError):
            return outcome
        slot, item = outcome.slot, outcome.slot.item
        created_at, updated_at = self._now, self._now
        if slot.stored is not None:
            created_at = from_micros(slot.stored.created_at)
            if not slot.changed:
                updated_at = from_micros(slot.stored.updated_at)
        channel_ids = self._channel_ids.get(slot.id, {})
        registration = Registration(
            registration_id=slot.id,
            app_id=self._app_id,
            platform=item.platform,
            device_token=item.device_token,
            channels=tuple(channel_ids) or item.channels,
            tags=item.tags,
            user_id=item.user_id,
            expires_at=item.expires_at,
            metadata=dict(item.metadata),
            templates=dict(item.templates),
            selector=item.selector,
            created_at=created_at,
            updated_at=updated_at,
            channel_registration_ids=dict(channel_ids),
        )
        return UpsertResult(registration, outcome.unchanged)
