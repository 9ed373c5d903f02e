"""Fixtures shared by every suite.

The database comes from PUSHHUB_TEST_DATABASE_URL (scripts/run-tests.sh sets
it for the PostgreSQL pass) or a fresh SQLite file. Server and database
fixtures share the session event loop (pyproject: loop scope "session").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from pushhub_server.core.clock import ManualClock

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("PUSHHUB_TEST_DATABASE_URL")
    if url:
        return url
    path: Path = tmp_path_factory.mktemp("db") / "pushhub.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest_asyncio.fixture(scope="session")
async def empty_database(database_url: str) -> str:
    """The test database with every table dropped, so migrations start from zero."""
    if database_url.startswith("postgresql"):
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(sa.text("CREATE SCHEMA public"))
        await engine.dispose()
    return database_url


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock()
