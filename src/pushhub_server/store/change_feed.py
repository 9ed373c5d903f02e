"""The change feed (core.ports.ChangeFeed) on PostgreSQL LISTEN/NOTIFY (docs/fleet.md).

Writers call `announce` inside their transaction: PostgreSQL delivers a NOTIFY
when the transaction commits, and never when it rolls back. Each process
listens on one dedicated asyncpg connection outside the pool, and wakes its
in-process signals. Polling stays the safety net: while the listening
connection is down, the scheduler, Watch streams and the key cache carry on as
without it, and the feed reconnects in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from enum import StrEnum
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from ..core.ports import ChangeFeed, ChangeListener
from .database import CONNECT_TIMEOUT
from .database_url import masked, parse_database_url

_log = logging.getLogger(__name__)

CHANNEL = "pushhub_changes"
# Shown in pg_stat_activity, so an operator (or a test) can tell the feed's
# connection from the pool's.
APPLICATION_NAME = "pushhub-change-feed"
# This process's mark on what it announces: its own feed ignores the echo (its
# own writes already woke its in-process signals). Each worker has its own.
SENDER = secrets.token_hex(4)
# Seconds between reconnection attempts, doubling up to the last.
_FIRST_RETRY, _LAST_RETRY = 0.5, 10.0
# An idle connection whose host vanished says nothing: probe it this often.
_PROBE_SECONDS, _PROBE_TIMEOUT = 30.0, 5.0

_SQLALCHEMY_ONLY_OPTIONS = ("prepared_statement_cache_size", "prepared_statement_name_func")

_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")


class Change(StrEnum):
    """What a notification says changed; its subject is an id (or nothing)."""

    DUE = "due"
    STATUS = "status"
    KEY = "key"
    APP = "app"


async def announce(conn: AsyncConnection, change: Change, subject: str = "") -> None:
    """Notifies the other processes when the caller's transaction commits (never if
    it rolls back); nothing on SQLite, one process. The payload is ids only, a
    few dozen bytes (PostgreSQL allows 8,000); identical ones in one transaction
    are delivered once."""
    if conn.dialect.name != "postgresql":
        return
    await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": f"{SENDER} {change} {subject}"})


def change_feed(database_url: str) -> ChangeFeed:
    """The feed for the database: LISTEN/NOTIFY on PostgreSQL; on SQLite, one
    process, none is needed."""
    url = parse_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        return LocalChangeFeed()
    return PostgresChangeFeed(url)


class LocalChangeFeed:
    """One process: its writes wake its in-process signals directly."""

    def start(self, listener: ChangeListener) -> None:
        return None

    async def stop(self) -> None:
        return None


class PostgresChangeFeed:
    """LISTEN on a connection of its own, reconnecting after an outage."""

    def __init__(self, url: sa.URL) -> None:
        _, options = PGDialect_asyncpg().create_connect_args(url)
        # SQLAlchemy's own URL options (behind pgbouncer, say): asyncpg.connect
        # would refuse them, and the feed would never connect.
        for name in _SQLALCHEMY_ONLY_OPTIONS:
            options.pop(name, None)
        self._options: dict[str, Any] = {
            **options,
            "timeout": CONNECT_TIMEOUT,
            "server_settings": {"application_name": APPLICATION_NAME},
        }
        self._name = masked(url)
        self._task: asyncio.Task[None] | None = None

    def start(self, listener: ChangeListener) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(listener))

    async def stop(self) -> None:
        """Cancels the listening task; its connection is dropped without a round trip."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self, listener: ChangeListener) -> None:
        delay, was_down = _FIRST_RETRY, False
        while True:
            try:
                connection = await asyncpg.connect(**self._options)
            except Exception as error:  # refused, timed out, unknown database...
                if not was_down:
                    _log.warning("change feed: cannot connect (%s); polling meanwhile", error)
                was_down = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LAST_RETRY)
                continue
            was_down = False
            connected_at = asyncio.get_running_loop().time()
            try:
                await self._listen(connection, listener)
            except Exception as error:
                was_down = True
                _log.warning("change feed: connection lost (%s); polling meanwhile", error)
            finally:
                connection.terminate()  # never waits: a stop must not hang on the network
            if asyncio.get_running_loop().time() - connected_at < _PROBE_SECONDS:
                # Lost at once (LISTEN refused, say): back off as for a refused connect.
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LAST_RETRY)
            else:
                delay = _FIRST_RETRY

    async def _listen(self, connection: asyncpg.Connection, listener: ChangeListener) -> None:
        """Returns (or raises) once the connection is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(CHANNEL, _Receiver(listener))
        _log.info("change feed: listening on %s", self._name)
        # Whatever was committed before LISTEN took effect went unheard.
        listener.changes_missed()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), _PROBE_SECONDS)
                raise ConnectionError("the server closed the connection")
            await connection.fetchval("SELECT 1", timeout=_PROBE_TIMEOUT)


class _Receiver:
    """asyncpg's notification callback: parses the payload and wakes the listener."""

    __slots__ = ("_listener",)

    def __init__(self, listener: ChangeListener) -> None:
        self._listener = listener

    def __call__(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        sender, _, rest = payload.partition(" ")
        if sender == SENDER:
            return
        change, _, subject = rest.partition(" ")
        listener = self._listener
        if change == Change.DUE:
            listener.messages_due()
        elif change == Change.STATUS:
            listener.status_changed(subject)
        elif change == Change.KEY:
            listener.key_revoked(subject)
        elif change == Change.APP:
            listener.app_changed(subject)
        # Anything else comes from a newer version during a rolling upgrade: ignored.
