"""The change feed's NOTIFYs (store.change_feed, docs/fleet.md), PostgreSQL pass.

A plain LISTEN connection stands for another process: it hears what a
committed transaction announced, and nothing of a rolled-back one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio

from pushhub_server.core.ids import new_id
from pushhub_server.core.models import ApiKey, App, KeyKind
from pushhub_server.store import Database, SqlAppRepository
from pushhub_server.store.change_feed import CHANNEL, Change, PostgresChangeFeed, announce
from pushhub_server.store.database_url import parse_database_url

NOW = datetime(2061, 4, 1, tzinfo=UTC)
# Bounded: a notification is delivered on commit, in milliseconds when all is well.
TIMEOUT = 10.0


@pytest.fixture
def postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite is one process")
    return database_url


@pytest_asyncio.fixture
async def heard(postgres: str) -> AsyncIterator[asyncio.Queue[str]]:
    """The payloads another process's feed would receive, in commit order."""
    payloads: asyncio.Queue[str] = asyncio.Queue()
    connection = await asyncpg.connect(postgres.replace("postgresql+asyncpg", "postgresql"))
    await connection.add_listener(CHANNEL, lambda *args: payloads.put_nowait(args[-1]))
    yield payloads
    await connection.close()


async def test_a_rolled_back_write_announces_nothing(
    db: Database, heard: asyncio.Queue[str]
) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await announce(conn, Change.STATUS, "rolled-back")
            raise RuntimeError("rolled back")
    async with db.write() as conn:
        await announce(conn, Change.STATUS, "committed")

    # Commit order: had the first been delivered, it would come first.
    first = await next_about(heard, "rolled-back", "committed")
    assert first.split(" ")[1:] == ["status", "committed"]


async def test_revoking_a_key_and_deleting_an_app_announce_their_ids(
    db: Database, heard: asyncio.Queue[str]
) -> None:
    repository = SqlAppRepository(db)
    app = App(new_id(), f"feed-{new_id()}", NOW, signing_secret="secret")
    key = ApiKey(new_id(), app.app_id, KeyKind.SERVER, "prefix", NOW)
    await repository.create_app(app, [(key, f"hash-{key.key_id}")])

    await repository.revoke_key(app.app_id, key.key_id, NOW)
    await repository.delete_app(app.app_id)

    revoked = await next_about(heard, key.key_id)
    deleted = await next_about(heard, app.app_id)
    assert revoked.split(" ")[1:] == ["key", key.key_id]
    assert deleted.split(" ")[1:] == ["app", app.app_id]
    # Ids only: far below PostgreSQL's 8,000 bytes.
    assert len(revoked.encode()) < 100


async def test_a_feed_whose_database_is_unreachable_still_stops(postgres: str) -> None:
    # A port nobody listens on: the feed keeps retrying in the background.
    url = parse_database_url(postgres).set(host="127.0.0.1", port=1)
    feed = PostgresChangeFeed(url)
    feed.start(_NoListener())
    await asyncio.sleep(0.2)
    await asyncio.wait_for(feed.stop(), TIMEOUT)


async def next_about(heard: asyncio.Queue[str], *subjects: str) -> str:
    """The next payload about one of subjects (the database is the whole suite's)."""
    while True:
        payload = await asyncio.wait_for(heard.get(), TIMEOUT)
        if payload.rsplit(" ", 1)[-1] in subjects:
            return payload


class _NoListener:
    """A ChangeListener that must never be called: nothing connects."""

    def messages_due(self) -> None:
        raise AssertionError("not connected")

    def status_changed(self, message_id: str) -> None:
        raise AssertionError("not connected")

    def key_revoked(self, key_id: str) -> None:
        raise AssertionError("not connected")

    def app_changed(self, app_id: str) -> None:
        raise AssertionError("not connected")

    def changes_missed(self) -> None:
        raise AssertionError("not connected")
