"""The simulator provider's record of every notification it "delivered"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from pushhub_server.core.clock import from_micros, to_micros
from pushhub_server.core.messages import Delivery, InboxEntry

from .database import Database
from .platforms import PLATFORM_CODES, PLATFORMS_BY_CODE
from .schema import inbox
from .sql import BulkInsert

_INSERT = BulkInsert(
    inbox, "app_id", "message_id", "registration_id", "platform", "payload", "delivered_at"
)


class SqlInbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, deliveries: Sequence[Delivery], at: datetime) -> None:
        delivered_at = to_micros(at)
        rows = [
            (
                d.app_id,
                d.message_id,
                d.registration_id,
                PLATFORM_CODES[d.platform],
                d.payload.decode(),
                delivered_at,
            )
            for d in deliveries
        ]
        async with self._db.write() as conn:
            await _INSERT.run(conn, rows)

    async def list(
        self,
        app_id: str | None,
        registration_id: str | None,
        message_id: str | None,
        limit: int,
    ) -> list[InboxEntry]:
        filters = {"app_id": app_id, "registration_id": registration_id, "message_id": message_id}
        query = (
            sa.select(inbox)
            .where(*(inbox.c[name] == value for name, value in filters.items() if value))
            .order_by(inbox.c.id.desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_entry(row) for row in await conn.execute(query)]


def _entry(row: Any) -> InboxEntry:
    return InboxEntry(
        message_id=row.message_id,
        app_id=row.app_id,
        registration_id=row.registration_id,
        platform=PLATFORMS_BY_CODE[row.platform],
        payload=row.payload,
        delivered_at=from_micros(row.delivered_at),
    )
