"""A database of a suite's own, on the backend the test run uses.

The in-process servers of the acceptance suite share the test database; a suite
whose server must not meet theirs (a subprocess, other providers, a server that
is killed) takes one of its own: a SQLite file in `directory`, or, on the
PostgreSQL pass (PUSHHUB_TEST_DATABASE_URL), a database created here and
dropped afterwards. Callers pass the database_url fixture, which also tells
--database-only (tests/conftest.py) that their tests follow the database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine


@asynccontextmanager
async def own_database(shared: str, directory: Path, prefix: str) -> AsyncIterator[str]:
    """Yields the URL of a new, empty database named after `prefix`, on the backend
    of `shared` (the database_url fixture)."""
    if not shared.startswith("postgresql"):
        yield f"sqlite+aiosqlite:///{directory / f'{prefix}.db'}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    base = sa.make_url(shared)
    maintenance = create_async_engine(
        base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        async with maintenance.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            async with maintenance.connect() as conn:
                await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await maintenance.dispose()
