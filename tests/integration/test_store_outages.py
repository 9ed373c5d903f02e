"""An unreachable database is DATABASE_UNAVAILABLE; a bug stays the bug it is.

tests/e2e/test_database_outage.py stops a real PostgreSQL under a running
server; these check the store's side on each backend's own failures.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from pushhub_server.core.errors import ErrorCode, PushHubError
from pushhub_server.store import Database, migrate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def outage_of(url: str) -> tuple[PushHubError, int]:
    """The error a transaction on url raises, and how often the outage listener heard."""
    db = Database.from_url(url)
    heard: list[None] = []
    db.add_outage_listener(lambda: heard.append(None))
    try:
        with pytest.raises(PushHubError) as caught:
            await db.ping()
        with pytest.raises(PushHubError):
            async with db.write() as conn:
                await conn.execute(sa.text("SELECT 1"))
    finally:
        await db.dispose()
    return caught.value, len(heard)


def assert_unavailable(error: PushHubError) -> None:
    assert error.code is ErrorCode.UNAVAILABLE
    assert error.reason == "DATABASE_UNAVAILABLE"
    assert error.message == "the database is not answering; retry later"


async def test_postgresql_refusing_connections_is_unavailable() -> None:
    error, heard = await outage_of(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    assert_unavailable(error)
    assert isinstance(error.__cause__, OSError)  # the driver's error, kept for the log
    assert heard == 2


async def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    error, heard = await outage_of(f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'pushhub.db'}")
    assert_unavailable(error)
    assert heard == 2


async def test_a_bug_is_not_an_outage(db: Database) -> None:
    heard: list[None] = []
    db.add_outage_listener(lambda: heard.append(None))
    with pytest.raises(sa.exc.DBAPIError):
        async with db.read() as conn:
            await conn.execute(sa.text("SELECT * FROM no_such_table"))
    await db.ping()  # the connection that failed is fine
    assert heard == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "postgresql+asyncpg://postgres:s3cret@127.0.0.1:{port}/pushhub",
            "cannot connect to the database postgresql+asyncpg://postgres:***@127.0.0.1:{port}"
            "/pushhub: nothing listens at 127.0.0.1:{port}; is PostgreSQL running there?",
        ),
        (
            "postgresql+asyncpg://postgres@no-such-host.invalid/pushhub",
            "unknown host 'no-such-host.invalid'; check the host name in the URL",
        ),
        (
            "postgres://postgres:s3cret@db.example/pushhub",
            "database URL postgres://postgres:***@db.example/pushhub: PushHub connects through "
            "asyncpg; use postgresql+asyncpg://postgres:***@db.example/pushhub",
        ),
        (
            "postgresql://db.example/pushhub",
            "use postgresql+asyncpg://db.example/pushhub",
        ),
        ("sqlite:///pushhub.db", "use sqlite+aiosqlite:///pushhub.db"),
        ("mysql://db.example/pushhub", "not 'mysql'"),
        ("not a url:s3cret", "database URL is not a URL: use sqlite+aiosqlite:///"),
    ],
)
async def test_migrate_says_in_one_line_what_is_wrong_with_the_url(url: str, says: str) -> None:
    port = free_port()
    with pytest.raises(PushHubError) as caught:
        await migrate(url.format(port=port))
    message = caught.value.message
    assert says.format(port=port) in message
    assert "s3cret" not in message and "\n" not in message


async def test_a_missing_sqlite_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "pushhub.db"
    with pytest.raises(PushHubError) as caught:
        await migrate(f"sqlite+aiosqlite:///{path}")
    assert caught.value.message.endswith(
        f"unable to open database file '{path}'; does its directory exist, and is it writable?"
    )
