"""Migration 0011 adds the Web Push and HMS columns, keeps every row, and goes back.

On a scratch database of its own (test_migration_0008's), so downgrading never
touches the session's database.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .test_migration_0008 import migrate_to, scratch  # noqa: F401 - the fixture

APP = {"id": "app-0011", "name": "before-0011", "signing_secret": "plain:s", "created_at": 1}
REGISTRATION = {
    "id": "reg-0011",
    "app_id": "app-0011",
    "platform": 2,
    "device_token": "fcm:token",
    "token_hash": "0" * 64,
    "fingerprint": "f" * 32,
    "created_at": 1,
    "updated_at": 1,
}


async def columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: {c["name"] for c in sa.inspect(sync).get_columns(table)}
        )


async def test_the_columns_come_and_go_and_the_rows_stay(scratch: AsyncEngine) -> None:  # noqa: F811
    await migrate_to(scratch, "0008")
    async with scratch.begin() as conn:
        await conn.execute(sa.table("apps", *map(sa.column, APP)).insert().values(APP))
        await conn.execute(
            sa.table("registrations", *map(sa.column, REGISTRATION)).insert().values(REGISTRATION)
        )

    await migrate_to(scratch, "0011")
    assert {"web_push_credentials", "web_push_public_key", "hms_credentials"} <= await columns(
        scratch, "apps"
    )
    assert {"web_push_p256dh", "web_push_auth"} <= await columns(scratch, "registrations")
    async with scratch.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT device_token, web_push_p256dh FROM registrations WHERE id = :id"),
                {"id": "reg-0011"},
            )
        ).one()
    assert tuple(row) == ("fcm:token", None)

    await migrate_to(scratch, "0008", down=True)
    assert "web_push_p256dh" not in await columns(scratch, "registrations")
    assert "hms_credentials" not in await columns(scratch, "apps")
    async with scratch.connect() as conn:
        count = (await conn.execute(sa.text("SELECT count(*) FROM registrations"))).scalar_one()
    assert count == 1
