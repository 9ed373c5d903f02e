from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pushhub_server.store import Database, migrate
from pushhub_server.store.schema import metadata


def _differences(connection: sa.Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrations_match_schema_and_rerun_cleanly(empty_database: str, db: Database) -> None:
    await migrate(empty_database)  # already at head: a no-op
    async with db.read() as conn:
        assert await conn.run_sync(_differences) == []
