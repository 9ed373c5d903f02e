"""Alembic migrations, configured in code so no alembic.ini ships or is needed."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..database import connect_args
from ..database_url import parse_database_url
from ..outages import connect_error

_SCRIPTS = Path(__file__).parent

# The PostgreSQL advisory lock migrations hold: processes and hosts starting at
# once on one database (docs/processes.md) migrate one after the other, and all
# but the first find the schema current. Any constant works; this spells "pushhub".
_MIGRATION_LOCK = 0x7075736868756200


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    # ConfigParser interpolation would read a "%" in a password as a placeholder.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def migrate(url: str) -> None:
    """Upgrades the database to the newest schema; a no-op when it is current.

    It is the first thing a server or command does with the database, so a URL
    or connection it cannot use is reported here in one line (PushHubError)."""
    parsed = parse_database_url(url)
    engine = create_async_engine(parsed, connect_args=connect_args(parsed))
    try:
        conn = await _connect(engine)
        try:
            async with conn.begin():
                if conn.dialect.name == "postgresql":  # released with the transaction
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
                await conn.run_sync(_upgrade, alembic_config(url))
        finally:
            await conn.close()
    finally:
        await engine.dispose()


async def _connect(engine: AsyncEngine) -> AsyncConnection:
    try:
        return await engine.connect()
    except Exception as error:
        raise connect_error(engine.url, error) from error


def _upgrade(connection: sa.Connection, config: Config) -> None:
    # Alembic is synchronous; env.py runs on this connection instead of its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
