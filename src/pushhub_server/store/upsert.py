"""The bulk write path of upsert_many: a plan applied with set-based statements.

Per batch: one SELECT of the rows the items could touch, one of reserved ids,
one of the subscriptions of pre-existing rows, then executemany DELETE, UPDATE
and INSERT statements. No statement runs once per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.errors import PushHubError
from pushhub_server.core.ids import new_ids
from pushhub_server.core.models import Registration, RegistrationInput, TokenKey, UpsertResult
from pushhub_server.core.registration_upsert_plan import ItemOutcome, Plan, StoredRow, plan_upsert

from .children import DELETE_TAGS_OF, delete_children
from .platforms import PLATFORMS_BY_CODE
from .records import CONTENT_COLUMNS, content_values
from .schema import channels, registration_tags, registrations, reserved_ids, subscriptions
from .sql import (
    COPY_MIN_ROWS,
    BulkInsert,
    BulkUpdate,
    Prepared,
    chunked,
    one_of_list,
    postgres_driver,
)

# StoredRow's fields, in order; the planner decides what invalidation means.
_STORED_COLUMNS = (
    registrations.c.id,
    registrations.c.platform,
    registrations.c.token_hash,
    registrations.c.fingerprint,
    registrations.c.expires_at,
    registrations.c.created_at,
    registrations.c.updated_at,
    registrations.c.user_id,
    registrations.c.invalidated_at.is_not(None).label("invalidated"),
)

# channel name → (subscription id, position), per registration id
StoredSubscriptions = dict[str, dict[str, tuple[str, int]]]


def _stored_rows_by(column: sa.ColumnElement[str]) -> Prepared:
    """Rows holding one of :values in column. On PostgreSQL they stay locked until commit."""

    def build(dialect: str) -> sa.Select[tuple[object, ...]]:
        query = sa.select(*_STORED_COLUMNS).where(
            registrations.c.app_id == sa.bindparam("app_id"),
            one_of_list(column, "values", dialect),
        )
        if dialect != "postgresql":
            # SQLite has one writer and no row locks. ORDER BY id made it walk
            # the (app_id, id) index over every registration of the app per batch.
            return query
        # One lock order for every writer keeps deadlocks rare.
        return query.order_by(registrations.c.id).with_for_update()

    return Prepared(build)


ROWS_BY_TOKEN = _stored_rows_by(registrations.c.token_hash)
_ROWS_BY_ID = _stored_rows_by(registrations.c.id)
_RESERVED = Prepared(
    lambda dialect: sa.select(reserved_ids.c.id).where(
        reserved_ids.c.app_id == sa.bindparam("app_id"),
        one_of_list(reserved_ids.c.id, "values", dialect),
    )
)
_SUBSCRIPTIONS = Prepared(
    lambda dialect: (
        sa.select(
            subscriptions.c.registration_id,
            channels.c.name,
            subscriptions.c.id,
            subscriptions.c.position,
        )
        .join(channels, channels.c.id == subscriptions.c.channel_id)
        .where(one_of_list(subscriptions.c.registration_id, "values", dialect))
    )
)
_CHANNELS = Prepared(
    lambda dialect: sa.select(channels.c.name, channels.c.id).where(
        channels.c.app_id == sa.bindparam("app_id"),
        one_of_list(channels.c.name, "values", dialect),
    )
)
_DELETE_REGISTRATIONS = Prepared(
    lambda dialect: sa.delete(registrations).where(
        one_of_list(registrations.c.id, "values", dialect)
    )
)
_DELETE_RESERVATIONS = Prepared(
    lambda dialect: sa.delete(reserved_ids).where(one_of_list(reserved_ids.c.id, "values", dialect))
)
_DELETE_SUBSCRIPTIONS = Prepared(
    lambda dialect: sa.delete(subscriptions).where(
        one_of_list(subscriptions.c.id, "values", dialect)
    )
)
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
    registrations, *CONTENT_COLUMNS, "token_hash", "fingerprint", "invalidated_at", "updated_at"
)
_PARK_TOKEN = BulkUpdate(registrations, "token_hash")
# No ON CONFLICT: a batch holds the row locks of the registrations it changes
# (new ones are its own), and it has read their subscriptions, so it adds only
# missing ones. Without a conflict clause PostgreSQL can take the rows by COPY.
_INSERT_SUBSCRIPTION = BulkInsert(subscriptions, "id", "registration_id", "channel_id", "position")
# PostgreSQL, fewer rows than COPY takes: the INSERT finds the channel ids by
# name itself, one round trip where a lookup and an INSERT took two. It returns
# the rows it wrote; the others name channels still to create.
_INSERT_SUBSCRIPTION_BY_NAME = """\
INSERT INTO subscriptions (id, registration_id, channel_id, position)
SELECT new.id, new.registration_id, channels.id, new.position
FROM unnest($1::VARCHAR(64)[], $2::VARCHAR(64)[], $3::VARCHAR(255)[], $4::SMALLINT[])
    AS new (id, registration_id, name, position)
JOIN channels ON channels.app_id = $5 AND channels.name = new.name
RETURNING subscriptions.id"""
_MOVE_SUBSCRIPTION = BulkUpdate(subscriptions, "position")
_INSERT_CHANNEL = BulkInsert(
    channels, "id", "app_id", "name", "created_at", unique=("app_id", "name")
)
_INSERT_TAG = BulkInsert(registration_tags, "registration_id", "tag", "app_id", "position")


class BulkUpsert:
    """One upsert_many attempt: written in one transaction, answered after it."""

    def __init__(self, app_id: str, now: datetime) -> None:
        self._conn: AsyncConnection
        self._app_id = app_id
        self._now_micros = to_micros(now)
        # Subscription ids per live registration, in channel order.
        self._channel_ids: dict[str, dict[str, str]] = {}

    async def run(self, conn: AsyncConnection, items: Sequence[RegistrationInput]) -> Plan:
        """Writes the batch in conn's transaction; results() answers it once that has ended."""
        self._conn = conn
        # write_batch may run this again after a lost connection: nothing of the
        # rolled-back attempt may reach the answers.
        self._channel_ids = {}
        keys = [item.token_key for item in items]
        stored = await self._stored_rows(items, keys)
        reserved = await self._reserved(items)
        plan = plan_upsert(items, keys, stored, reserved, self._now_micros)
        subscribed = await self._stored_subscriptions(plan.stored_ids)
        await self._write_registrations(plan)
        await self._write_subscriptions(plan, subscribed)
        await self._write_tags(plan)
        return plan

    def results(self, plan: Plan) -> list[UpsertResult | PushHubError]:
        """Built outside the transaction, so the next batch's write need not wait for it."""
        return [self._result(outcome) for outcome in plan.outcomes]

    async def _stored_rows(
        self, items: Sequence[RegistrationInput], keys: Sequence[TokenKey]
    ) -> list[StoredRow]:
        """Rows holding an item's token or id."""
        hashes = list({token_hash for _, token_hash in keys})
        ids = list({item.registration_id for item in items if item.registration_id})
        found: dict[str, StoredRow] = {}
        for query, values in ((ROWS_BY_TOKEN, hashes), (_ROWS_BY_ID, ids)):
            for chunk in chunked(values):
                for row in await query.rows(self._conn, app_id=self._app_id, values=list(chunk)):
                    found[row[0]] = StoredRow(
                        row[0], PLATFORMS_BY_CODE[row[1]], *row[2:-1], invalidated=bool(row[-1])
                    )
        return list(found.values())

    async def _reserved(self, items: Sequence[RegistrationInput]) -> set[str]:
        ids = list({item.registration_id for item in items if item.registration_id})
        reserved: set[str] = set()
        for chunk in chunked(ids):
            rows = await _RESERVED.rows(self._conn, app_id=self._app_id, values=list(chunk))
            reserved.update(row[0] for row in rows)
        return reserved

    async def _stored_subscriptions(self, registration_ids: list[str]) -> StoredSubscriptions:
        found: StoredSubscriptions = {}
        for chunk in chunked(registration_ids):
            rows = await _SUBSCRIPTIONS.rows(self._conn, values=list(chunk))
            for registration_id, name, subscription_id, position in rows:
                found.setdefault(registration_id, {})[name] = (subscription_id, position)
        return found

    async def _write_registrations(self, plan: Plan) -> None:
        conn = self._conn
        deleted = sorted(plan.deleted)
        for chunk in chunked(deleted):
            await _DELETE_REGISTRATIONS.execute(conn, values=list(chunk))
        # This transaction holds the deleted rows' locks: nobody adds children meanwhile.
        await delete_children(conn, deleted)
        updates = plan.updates
        # Park moved rows on a key no token digest can equal, so the final
        # UPDATE cannot collide with a key another row gives up later.
        await _PARK_TOKEN.run(conn, [(slot.id, slot.id) for slot in updates if slot.moved])
        now = self._now_micros
        await _UPDATE_REGISTRATION.run(
            conn,
            [
                (*content_values(slot.item), slot.key[1], slot.fingerprint, None, now, slot.id)
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
            await _DELETE_RESERVATIONS.execute(conn, values=list(chunk))

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
            await _DELETE_SUBSCRIPTIONS.execute(self._conn, values=list(chunk))
        await _MOVE_SUBSCRIPTION.run(self._conn, repositioned)
        if added and self._conn.dialect.name == "postgresql" and len(added) < COPY_MIN_ROWS:
            added = await self._add_to_existing_channels(added)
        if added:
            channel_ids = await self._ensure_channels({name for _, _, name, _ in added})
            rows = [(sid, rid, channel_ids[name], pos) for sid, rid, name, pos in added]
            await _INSERT_SUBSCRIPTION.run(self._conn, rows)

    async def _add_to_existing_channels(
        self, added: list[tuple[str, str, str, int]]
    ) -> list[tuple[str, str, str, int]]:
        """Inserts the subscriptions to channels that exist; returns the others."""
        driver = await postgres_driver(self._conn)
        columns = [list(column) for column in zip(*added, strict=True)]
        written = await driver.fetch(_INSERT_SUBSCRIPTION_BY_NAME, *columns, self._app_id)
        inserted = {row[0] for row in written}
        return [row for row in added if row[0] not in inserted]

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
            rows = await _CHANNELS.rows(self._conn, app_id=self._app_id, values=list(chunk))
            found.update({name: channel_id for name, channel_id in rows})
        return found

    async def _write_tags(self, plan: Plan) -> None:
        """Tags of changed registrations are replaced as a whole."""
        for chunk in chunked([slot.id for slot in plan.updates]):
            await DELETE_TAGS_OF.execute(self._conn, values=list(chunk))
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
        slot, item = outcome.slot, outcome.item
        created_at, updated_at = map(from_micros, slot.answered_times(self._now_micros))
        channel_ids = self._channel_ids.get(slot.id, {})
        if item is not slot.item:
            # A later item of the batch rewrote this registration: name only the
            # subscriptions of this item's channels that it kept.
            channel_ids = {name: channel_ids[name] for name in item.channels if name in channel_ids}
        # The item's maps and channel ids are built per call and never mutated,
        # so the result shares them: copies cost more than the rest of a bulk row.
        registration = Registration(
            registration_id=slot.id,
            app_id=self._app_id,
            platform=item.platform,
            device_token=item.device_token,
            channels=item.channels,
            tags=item.tags,
            user_id=item.user_id,
            expires_at=item.expires_at,
            metadata=item.metadata,
            templates=item.templates,
            selector=item.selector,
            created_at=created_at,
            updated_at=updated_at,
            channel_registration_ids=channel_ids,
            web_push_keys=item.web_push_keys,
        )
        return UpsertResult(registration, outcome.unchanged)
