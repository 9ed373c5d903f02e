"""What the suite does with PUSHHUB_TEST_DATABASE_URL, seen by running pytest.

It drops every table of that database, so it refuses one whose name does not
say it is for tests before connecting to it; a missing PostgreSQL one it creates.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.conftest import REPO


async def collect_with(url: str) -> subprocess.CompletedProcess[str]:
    """`pytest --collect-only` of one small file, given `url` as the test database."""
    env = {**os.environ, "PUSHHUB_TEST_DATABASE_URL": url}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q"]
    return await asyncio.to_thread(
        subprocess.run,
        [*command, "tests/unit/test_ids.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "url",
    [
        # Port 1: nothing listens there, so a refusal proves no connection was tried.
        "postgresql+asyncpg://postgres@127.0.0.1:1/contest",
        "sqlite+aiosqlite:///{tmp}/pushhub.db",
    ],
)
async def test_refuses_a_database_not_named_for_tests(url: str, tmp_path) -> None:
    done = await collect_with(url.format(tmp=tmp_path))
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "whose tables the suite drops: refusing it" in done.stderr, done.stderr


async def test_creates_a_missing_postgresql_database(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("runs in the PostgreSQL pass")
    name = f"pushhub_created_test_{os.getpid()}"
    url = sa.make_url(database_url)
    maintenance = create_async_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    query = sa.text("SELECT count(*) FROM pg_database WHERE datname = :name")
    try:
        async with maintenance.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        done = await collect_with(url.set(database=name).render_as_string(hide_password=False))
        assert done.returncode == 0, done.stdout + done.stderr
        async with maintenance.connect() as conn:
            assert await conn.scalar(query, {"name": name}) == 1
    finally:
        async with maintenance.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        await maintenance.dispose()
