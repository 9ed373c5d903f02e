"""Deleting registrations with their subscriptions and tags.

Those rows have no foreign keys (migrations 0005 and 0006), so no cascade
removes them: every delete of registrations by the store goes through here, in
the transaction of the delete, deleting an app included (store.apps). Whoever
adds children holds the registration's row lock first (the upsert,
update_tags), so a delete never misses children added concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import channels, registration_tags, registrations, subscriptions
from .sql import Prepared, chunked, one_of_list

_DELETE_SUBSCRIPTIONS_OF = Prepared(
    lambda dialect: sa.delete(subscriptions).where(
        one_of_list(subscriptions.c.registration_id, "values", dialect)
    )
)
DELETE_TAGS_OF = Prepared(
    lambda dialect: sa.delete(registration_tags).where(
        one_of_list(registration_tags.c.registration_id, "values", dialect)
    )
)


async def delete_registrations(conn: AsyncConnection, *conditions: sa.ColumnElement[bool]) -> int:
    """Registrations matching conditions, with their children; returns how many.

    Parents go first and name themselves (RETURNING). A concurrent writer that
    was adding children to one of them held its row lock, so it has committed
    by then, and the children's delete, a later statement, sees what it added.
    """
    deleted = await conn.execute(
        sa.delete(registrations).where(*conditions).returning(registrations.c.id)
    )
    ids = list(deleted.scalars())
    await delete_children(conn, ids)
    return len(ids)


async def delete_children(conn: AsyncConnection, registration_ids: Sequence[str]) -> None:
    """The subscriptions and tags of registrations deleted in this transaction."""
    for chunk in chunked(registration_ids):
        await _DELETE_SUBSCRIPTIONS_OF.execute(conn, values=list(chunk))
        await DELETE_TAGS_OF.execute(conn, values=list(chunk))


async def delete_app_registrations(conn: AsyncConnection, app_id: str) -> None:
    """All of an app's registrations and children, set-based (an app may hold millions).

    The caller holds the app row's lock. Registrations go first, so writers
    holding one of their row locks have committed before the children's
    deletes (later statements) run, as in delete_registrations.
    """
    await conn.execute(sa.delete(registrations).where(registrations.c.app_id == app_id))
    app_channels = sa.select(channels.c.id).where(channels.c.app_id == app_id)
    await conn.execute(sa.delete(subscriptions).where(subscriptions.c.channel_id.in_(app_channels)))
    await conn.execute(sa.delete(registration_tags).where(registration_tags.c.app_id == app_id))
