"""Fixtures shared by every suite.

The database comes from PUSHHUB_TEST_DATABASE_URL (scripts/run-tests.sh sets
it for the PostgreSQL pass) or a fresh SQLite file. The suite drops every
table of that database, so it refuses one whose name does not say it is for
tests, and creates a missing PostgreSQL one. Server and database fixtures
share the session event loop (pyproject: loop scope "session").
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from pushhub_server.core.clock import ManualClock
from pushhub_server.store import Database, migrate

ADMIN_TOKEN = "test-admin-token"


def named_for_tests(url: str) -> bool:
    """A word of the database's name (a SQLite file's, without suffix) is test or tests."""
    name = Path(sa.make_url(url).database or "").stem.lower()
    return bool({"test", "tests"} & set(re.split(r"[^a-z0-9]+", name)))


async def create_database_if_missing(url: str) -> None:
    target = sa.make_url(url)
    maintenance = create_async_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    try:
        async with maintenance.connect() as conn:
            exists = await conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            )
            if not exists:
                quoted = (target.database or "").replace('"', '""')
                await conn.execute(sa.text(f'CREATE DATABASE "{quoted}"'))
    finally:
        await maintenance.dispose()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-only",
        action="store_true",
        help="run only the tests that use the test database: scripts/run-tests.sh's "
        "PostgreSQL pass, so the tests that need no database run once per make test",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --database-only, deselects every test that does not use database_url
    (directly or through a fixture), and those marked without_database."""
    if not config.getoption("--database-only"):
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        uses = "database_url" in getattr(item, "fixturenames", ())
        (kept if uses and not item.get_closest_marker("without_database") else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    url = os.environ.get("PUSHHUB_TEST_DATABASE_URL")
    if not url:
        return
    if not named_for_tests(url):
        database = sa.make_url(url).database
        raise pytest.UsageError(
            f"PUSHHUB_TEST_DATABASE_URL names the database {database!r}, whose tables the "
            "suite drops: refusing it. Use one whose name has the word test or tests "
            "(test, test_alice, pushhub_test)."
        )
    if url.startswith("postgresql"):
        asyncio.run(create_database_if_missing(url))


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


@pytest_asyncio.fixture(scope="session")
async def db(empty_database: str) -> AsyncIterator[Database]:
    """The test database, migrated, for the store tests (integration and contract)."""
    await migrate(empty_database)
    database = Database.from_url(empty_database)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def clock() -> ManualClock:
    return ManualClock()
