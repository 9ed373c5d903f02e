"""Migration 0008 marks existing raw signing secrets as plain, and back.

It runs on a scratch database of its own (a SQLite file, or a PostgreSQL
schema), so downgrading never touches the session's database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pushhub_server.store.migrations import alembic_config
from pushhub_server.store.schema import apps

APP_ID = "app-0008"


@pytest_asyncio.fixture
async def scratch(database_url: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if not database_url.startswith("postgresql"):
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}")
        yield engine
        await engine.dispose()
        return
    schema = f"scratch_{uuid.uuid4().hex}"
    admin = create_async_engine(database_url)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = create_async_engine(
        database_url, connect_args={"server_settings": {"search_path": schema}}
    )
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def migrate_to(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def run(connection: sa.Connection) -> None:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def secret(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        query = sa.select(apps.c.signing_secret).where(apps.c.id == APP_ID)
        return str((await conn.execute(query)).scalar_one())


async def set_secret(engine: AsyncEngine, value: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.update(apps).where(apps.c.id == APP_ID).values(signing_secret=value))


async def app_before_0008(engine: AsyncEngine, raw_secret: str) -> None:
    """An app stored by revision 0007, its signing secret raw; then the schema at 0008."""
    await migrate_to(engine, "0007")
    row = {"id": APP_ID, "name": "before-0008", "signing_secret": raw_secret, "created_at": 1}
    async with engine.begin() as conn:
        await conn.execute(sa.insert(apps).values(row))
    await migrate_to(engine, "0008")


async def test_raw_secrets_become_plain_and_back(scratch: AsyncEngine) -> None:
    await app_before_0008(scratch, "raw-secret")
    assert await secret(scratch) == "plain:raw-secret"

    await migrate_to(scratch, "0007", down=True)
    assert await secret(scratch) == "raw-secret"


async def test_downgrade_refuses_while_a_secret_is_sealed(scratch: AsyncEngine) -> None:
    await app_before_0008(scratch, "raw")
    await set_secret(scratch, "fernet:sealed-value")

    with pytest.raises(RuntimeError, match="1 apps' user-token signing secrets are sealed"):
        await migrate_to(scratch, "0007", down=True)

    assert await secret(scratch) == "fernet:sealed-value"
    async with scratch.connect() as conn:
        version = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == "0008"
