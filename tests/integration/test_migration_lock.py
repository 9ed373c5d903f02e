"""Processes starting at once on a new PostgreSQL database migrate one after the other.

api and delivery processes, or hosts, often start together (docs/processes.md):
each migrates first. Without a lock they contend on the same CREATE TABLE
statements; with it, all but the first find the schema current.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from pushhub_server.store import migrate
from tests.own_database import own_database

MIGRATING = 3


async def test_concurrent_migrations_of_a_new_database_all_succeed(
    database_url: str, tmp_path: Path
) -> None:
    async with own_database(database_url, tmp_path, "pushhub_migrate_race") as url:
        if url.startswith("sqlite"):  # one process: nothing to race
            return
        await asyncio.wait_for(asyncio.gather(*(migrate(url) for _ in range(MIGRATING))), 120)
        engine = create_async_engine(url, poolclass=sa.NullPool)
        try:
            async with engine.connect() as conn:
                versions = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                assert len(versions.all()) == 1
        finally:
            await engine.dispose()
