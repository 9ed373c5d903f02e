"""Device registrations: the bulk upsert, reads with their children, deletes, tags."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pushhub_server.core.clock import to_micros
from pushhub_server.core.errors import PushHubError, not_device_owner, too_many_tags
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

from .children import delete_registrations
from .database import Database
from .platforms import PLATFORM_CODES
from .records import live_registration, registration_from_row
from .schema import channels, registration_tags, registrations, reserved_ids, subscriptions
from .sql import DATABASE_ERRORS, chunked, is_write_conflict, one_of
from .upsert import BulkUpsert

# Concurrent batches on PostgreSQL inserting the same new token, or locking
# rows in crossing orders, make one fail; replanning sees the winner's rows.
_UPSERT_ATTEMPTS = 5
# Marks a registration whose tags changed outside upsert, so no fingerprint matches it.
_STALE_FINGERPRINT = ""

_reg = registrations.c


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return live_registration(to_micros(now))


class SqlRegistrationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve_id(self, app_id: str, registration_id: str, at: datetime) -> None:
        row = {"id": registration_id, "app_id": app_id, "created_at": to_micros(at)}
        async with self._db.write() as conn:
            await conn.execute(reserved_ids.insert().values(row))

    async def upsert_many(
        self, app_id: str, items: Sequence[RegistrationInput], now: datetime
    ) -> list[UpsertResult | PushHubError]:
        if not items:
            return []
        for attempt in range(1, _UPSERT_ATTEMPTS + 1):
            try:
                upsert = BulkUpsert(app_id, now)
                plan = await self._db.write_batch(partial(upsert.run, items=items))
                return upsert.results(plan)
            except DATABASE_ERRORS as error:
                if attempt == _UPSERT_ATTEMPTS or not is_write_conflict(error):
                    raise
        raise AssertionError("unreachable")

    async def get(self, app_id: str, registration_id: str, now: datetime) -> Registration | None:
        found = await self._select(app_id, now, None, _reg.id == registration_id)
        return found[0] if found else None

    async def find_by_token(
        self, app_id: str, platform: Platform, device_token: str, now: datetime
    ) -> Registration | None:
        condition = sa.and_(
            _reg.platform == PLATFORM_CODES[platform], _reg.token_hash == token_digest(device_token)
        )
        found = await self._select(app_id, now, None, condition)
        return found[0] if found else None

    async def list(
        self,
        app_id: str,
        where: RegistrationFilter,
        limit: int,
        after_id: str | None,
        now: datetime,
    ) -> Page:
        conditions = _filter_conditions(app_id, where)
        if after_id is not None:
            conditions.append(_reg.id > after_id)
        # One row beyond the page tells whether another page exists.
        items = await self._select(app_id, now, limit + 1, *conditions)
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
            chosen = [_reg.id == registration_id]
        else:
            chosen = _filter_conditions(app_id, where)
        # Locked before their tags change, in the upsert's lock order: a concurrent
        # delete then either waits for these tags or is seen to have won
        # (tags have no foreign key to hold the registration; store.children).
        query = (
            sa.select(_reg.id)
            .where(_reg.app_id == app_id, _live(now), *chosen)
            .order_by(_reg.id)
            .with_for_update()
        )
        async with self._db.write() as conn:
            ids = list(await conn.scalars(query))
            if await _would_exceed(conn, ids, add, remove, max_tags):
                # Raised before any change; the transaction ends with nothing written.
                raise too_many_tags("add_tags", max_tags)
            for chunk in chunked(ids):
                await _change_tags(self._db, conn, app_id, chunk, add, remove, to_micros(now))
        return len(ids)

    async def delete(
        self, app_id: str, registration_id: str, actor: DeviceActor | None, now: datetime
    ) -> int:
        async with self._db.write() as conn:
            return await _delete_counting_live(
                conn, now, _reg.app_id == app_id, _reg.id == registration_id, actor=actor
            )

    async def delete_by_token(
        self,
        app_id: str,
        platform: Platform,
        device_token: str,
        actor: DeviceActor | None,
        now: datetime,
    ) -> int:
        token = (
            _reg.platform == PLATFORM_CODES[platform],
            _reg.token_hash == token_digest(device_token),
        )
        async with self._db.write() as conn:
            return await _delete_counting_live(
                conn, now, _reg.app_id == app_id, *token, actor=actor
            )

    async def cleanup(self, app_id: str, targets: Sequence[CleanupTarget], now: datetime) -> int:
        """Removes every registration of each target's user, or only its device token."""
        whole_users = list({t.user_id for t in targets if t.device_token is None})
        devices = list(
            {(t.user_id, token_digest(t.device_token)) for t in targets if t.device_token}
        )
        removed = 0
        async with self._db.write() as conn:
            for users in chunked(whole_users):
                by_user = one_of(_reg.user_id, users, conn.dialect.name)
                removed += await _delete_counting_live(conn, now, _reg.app_id == app_id, by_user)
            for pairs in chunked(devices):
                pair = sa.tuple_(_reg.user_id, _reg.token_hash)
                removed += await _delete_counting_live(
                    conn, now, _reg.app_id == app_id, pair.in_(pairs)
                )
        return removed

    async def delete_stale(self, now: datetime, invalidated_before: datetime) -> int:
        # Two deletes, each seeking its partial index (expires_at, invalidated_at).
        async with self._db.write() as conn:
            expired = await delete_registrations(conn, _reg.expires_at <= to_micros(now))
            invalidated = await delete_registrations(
                conn, _reg.invalidated_at < to_micros(invalidated_before)
            )
        return expired + invalidated

    async def _select(
        self,
        app_id: str,
        now: datetime,
        limit: int | None,
        *conditions: sa.ColumnElement[bool],
    ) -> list[Registration]:
        query = (
            sa.select(registrations)
            .where(_reg.app_id == app_id, _live(now), *conditions)
            .order_by(_reg.id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            rows = list(await conn.execute(query))
            ids = [row.id for row in rows]
            channel_ids = await _channel_ids(conn, ids)
            tags = await _tags(conn, ids)
        return [
            registration_from_row(row, channel_ids.get(row.id, {}), tuple(tags.get(row.id, ())))
            for row in rows
        ]


def _filter_conditions(app_id: str, where: RegistrationFilter) -> list[sa.ColumnElement[bool]]:
    """AND of the filters given; channel and tag match through their indexes."""
    conditions: list[sa.ColumnElement[bool]] = []
    if where.user_id is not None:
        conditions.append(_reg.user_id == where.user_id)
    if where.platform is not None:
        conditions.append(_reg.platform == PLATFORM_CODES[where.platform])
    if where.channel is not None:
        channel = sa.select(channels.c.id).where(
            channels.c.app_id == app_id, channels.c.name == where.channel
        )
        subscribed = sa.select(subscriptions.c.registration_id).where(
            subscriptions.c.channel_id == channel.scalar_subquery()
        )
        conditions.append(_reg.id.in_(subscribed))
    if where.tag is not None:
        tagged = sa.select(registration_tags.c.registration_id).where(
            registration_tags.c.app_id == app_id, registration_tags.c.tag == where.tag
        )
        conditions.append(_reg.id.in_(tagged))
    return conditions


async def _channel_ids(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, str]]:
    """channel name → subscription id, in channel order, per registration."""
    found: dict[str, dict[str, str]] = {}
    for chunk in chunked(ids):
        query = (
            sa.select(subscriptions.c.registration_id, channels.c.name, subscriptions.c.id)
            .join(channels, channels.c.id == subscriptions.c.channel_id)
            .where(one_of(subscriptions.c.registration_id, chunk, conn.dialect.name))
            .order_by(subscriptions.c.registration_id, subscriptions.c.position)
        )
        for registration_id, name, subscription_id in await conn.execute(query):
            found.setdefault(registration_id, {})[name] = subscription_id
    return found


async def _tags(conn: AsyncConnection, ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    tags = registration_tags.c
    for chunk in chunked(ids):
        query = (
            sa.select(tags.registration_id, tags.tag)
            .where(one_of(tags.registration_id, chunk, conn.dialect.name))
            .order_by(tags.registration_id, tags.position, tags.tag)
        )
        for registration_id, tag in await conn.execute(query):
            found.setdefault(registration_id, []).append(tag)
    return found


async def _delete_counting_live(
    conn: AsyncConnection,
    now: datetime,
    *conditions: sa.ColumnElement[bool],
    actor: DeviceActor | None = None,
) -> int:
    """Deletes the matching registrations; counts only the live ones, since clients
    already see the others as gone. Expired and invalidated ones go too: a user
    cleaned up leaves nothing behind, and a dead registration is nobody's.

    With an actor, a live registration it may not take stays: NOT_DEVICE_OWNER.
    The delete's own condition decides, under the row's lock, so a registration
    that has just become another user's is never deleted by a stale check.

    Two deletes rather than one counting RETURNING: SQLite 3.40 answers
    `column IS NULL` in a DELETE's RETURNING wrongly.
    """
    live = await delete_registrations(conn, *conditions, _live(now), *_takeable(actor))
    if not live and actor is not None:
        kept = await conn.scalar(sa.select(_reg.id).where(*conditions, _live(now)).limit(1))
        if kept is not None:
            raise not_device_owner(kept)
    await delete_registrations(conn, *conditions, sa.not_(_live(now)))
    return live


def _takeable(actor: DeviceActor | None) -> list[sa.ColumnElement[bool]]:
    """DeviceActor.may_take as SQL: anonymous registrations, or the actor's user's."""
    if actor is None:
        return []
    return [sa.or_(_reg.user_id.is_(None), _reg.user_id == actor.user_id)]


async def _would_exceed(
    conn: AsyncConnection,
    ids: Sequence[str],
    add: Sequence[str],
    remove: Sequence[str],
    max_tags: int,
) -> bool:
    """Whether adding would leave one of ids with more than max_tags tags: all of add,
    plus its tags neither added nor removed. Removing alone only shrinks, so it passes."""
    if not add or not ids:
        return False
    room = max_tags - len(add)
    if room < 0:
        return True
    tags = registration_tags.c
    for chunk in chunked(ids):
        query = (
            sa.select(tags.registration_id)
            .where(
                one_of(tags.registration_id, chunk, conn.dialect.name),
                tags.tag.not_in([*add, *remove]),
            )
            .group_by(tags.registration_id)
            .having(sa.func.count() > room)
            .limit(1)
        )
        if (await conn.execute(query)).first() is not None:
            return True
    return False


async def _change_tags(
    db: Database,
    conn: AsyncConnection,
    app_id: str,
    ids: Sequence[str],
    add: Sequence[str],
    remove: Sequence[str],
    now: int,
) -> None:
    tags = registration_tags.c
    if remove:
        await conn.execute(
            sa.delete(registration_tags).where(
                one_of(tags.registration_id, ids, conn.dialect.name), tags.tag.in_(remove)
            )
        )
    for tag in add:
        # Appended after the registration's current tags, so reads keep their order.
        next_position = (
            sa.select(sa.func.coalesce(sa.func.max(tags.position) + 1, 0))
            .where(tags.registration_id == _reg.id)
            .scalar_subquery()
        )
        source = sa.select(_reg.id, sa.literal(tag), sa.literal(app_id), next_position).where(
            one_of(_reg.id, ids, conn.dialect.name)
        )
        columns = ["registration_id", "tag", "app_id", "position"]
        await conn.execute(
            db.insert(registration_tags).from_select(columns, source).on_conflict_do_nothing()
        )
    await conn.execute(
        sa.update(registrations)
        .where(one_of(_reg.id, ids, conn.dialect.name))
        .values(fingerprint=_STALE_FINGERPRINT, updated_at=now)
    )
