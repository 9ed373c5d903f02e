"""Database.write_batch: one transaction, all or nothing, on both databases."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pushhub_server.core.ids import new_id
from pushhub_server.store import Database
from pushhub_server.store.schema import reserved_ids
from pushhub_server.store.sql import BulkInsert, Prepared

_INSERT = BulkInsert(reserved_ids, "id", "app_id", "created_at")
_COUNT = Prepared(
    lambda _dialect: sa.select(sa.func.count()).where(reserved_ids.c.app_id == sa.bindparam("app"))
)


async def _count(db: Database, app_id: str) -> int:
    async with db.read() as conn:
        [(count,)] = await _COUNT.rows(conn, app=app_id)
        return int(count)


async def test_a_batch_commits_its_statements_together(db: Database, app_id: str) -> None:
    async def work(conn: AsyncConnection) -> int:
        await _INSERT.run(conn, [(new_id(), app_id, 1), (new_id(), app_id, 2)])
        [(count,)] = await _COUNT.rows(conn, app=app_id)
        return count

    assert await db.write_batch(work) == 2
    assert await _count(db, app_id) == 2


async def test_a_failing_batch_leaves_nothing_behind(db: Database, app_id: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        await _INSERT.run(conn, [(new_id(), app_id, 1)])
        raise ValueError("half-way")

    with pytest.raises(ValueError):
        await db.write_batch(work)
    assert await _count(db, app_id) == 0


async def test_a_batch_may_await_only_statements(db: Database, app_id: str) -> None:
    """On SQLite the batch runs on the driver's thread, where nothing else can be awaited."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL runs the batch on the event loop")

    async def work(conn: AsyncConnection) -> None:
        await _INSERT.run(conn, [(new_id(), app_id, 1)])
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other than a statement"):
        await db.write_batch(work)
    assert await _count(db, app_id) == 0


async def test_database_errors_do_not_carry_the_statement_parameters(
    db: Database, app_id: str
) -> None:
    # Such errors end in the server log (with message and device data in them).
    row = {"id": new_id(), "app_id": app_id, "created_at": 1}
    async with db.write() as conn:
        await conn.execute(reserved_ids.insert().values(row))
    with pytest.raises(sa.exc.IntegrityError) as raised:
        async with db.write() as conn:
            await conn.execute(reserved_ids.insert().values(row))
    assert row["id"] not in str(raised.value)
    assert "parameters hidden" in str(raised.value)
