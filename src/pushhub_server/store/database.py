"""Engines, connection settings and transactions for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..core.errors import PushHubError
from .database_url import parse_database_url
from .outages import as_unavailable, unreachable

_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # Readers wait for a checkpoint instead of failing; writers never wait (one writer).
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
    # Durable at each checkpoint, not each commit: the usual WAL trade-off.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
    # Checkpoint every 10,000 pages (40 MB) rather than 1,000: index pages a bulk
    # import rewrites in each commit are copied back once, not once per commit
    # (docs/performance.md, "SQLite writes").
    "PRAGMA wal_autocheckpoint=10000",
)

UpsertInsert = sqlite.Insert | postgresql.Insert
T = TypeVar("T")
# A transaction's statements, written against AsyncConnection (see Database.write_batch).
BatchWork = Callable[[AsyncConnection], Coroutine[Any, Any, T]]
# Seconds asyncpg waits for a new connection: a host that drops packets must not
# hold an RPC (or the start) for asyncpg's default of a minute.
CONNECT_TIMEOUT = 10.0


class Database:
    """One write transaction at a time on SQLite; a shared pool on PostgreSQL.

    SQLite allows one writer. A deferred transaction that later writes gets
    SQLITE_BUSY at once, ignoring busy_timeout, so every write goes through a
    single connection, behind a lock, inside BEGIN IMMEDIATE. That connection
    stays checked out: a pool checkout and check-in (with its rollback, a
    thread hop) cost more than a small transaction's statements.

    Every transaction turns a lost or refused connection into core's
    DATABASE_UNAVAILABLE error (store.outages) and tells the outage listeners,
    so the health service need not wait for its next probe.
    """

    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader
        self.dialect: str = writer.dialect.name
        sqlite = self.dialect == "sqlite"
        self._write_lock = asyncio.Lock() if sqlite else None
        self._read_begin = "BEGIN" if sqlite else None
        self._held_writer: AsyncConnection | None = None
        self._outage_listeners: list[Callable[[], None]] = []
        self._outages = _OutageGuard(self._outage_listeners)

    @classmethod
    def from_url(cls, text: str) -> Database:
        url = parse_database_url(text)
        if url.get_backend_name() != "sqlite":
            # No pool_pre_ping: its ping is three round trips (BEGIN, ';', ROLLBACK)
            # per checkout. _drop_closed_connections and write_batch's retry recover
            # from a PostgreSQL restart instead (docs/performance.md, "Unary writes").
            engine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                hide_parameters=True,
                connect_args=connect_args(url),
            )
            _drop_closed_connections(engine)
            return cls(engine, engine)
        # aiosqlite logs each statement with its parameters at DEBUG, and credentials
        # are stored unsealed without PUSHHUB_SECRET_KEY: keep them out of the log.
        # (hide_parameters does the same for SQLAlchemy's errors, on both dialects:
        # a traceback in the log shows the statement, not message or device data.)
        logging.getLogger("aiosqlite").setLevel(logging.INFO)
        writer = create_async_engine(url, pool_size=1, max_overflow=0, hide_parameters=True)
        reader = create_async_engine(url, pool_size=4, max_overflow=4, hide_parameters=True)
        _configure_sqlite(writer)
        _configure_sqlite(reader)
        return cls(writer, reader)

    def add_outage_listener(self, listener: Callable[[], None]) -> None:
        """listener() is called whenever a transaction finds the database unreachable."""
        self._outage_listeners.append(listener)

    async def ping(self) -> None:
        """One cheap round trip on the pool the RPCs use; DATABASE_UNAVAILABLE when it fails."""
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on success, rolled back on error."""
        with self._outages:
            if self._write_lock is None:
                async with self._writer.begin() as conn:
                    yield conn
                return
            async with self._write_lock:
                conn = await self._sqlite_writer()
                async with conn.begin():
                    await _begin_sqlite(conn, "BEGIN IMMEDIATE")
                    yield conn

    async def write_batch(self, work: BatchWork[T]) -> T:
        """work(conn) in one write transaction; on SQLite, all of it in the driver's thread.

        aiosqlite runs each statement in its thread: a hop of the event loop,
        and a GIL hand-off, per statement, which were most of a small
        transaction's cost. Here BEGIN, the statements and COMMIT take one hop.
        work may await only sql.Prepared and sql.BulkWrite statements: on the
        driver's thread they run at once, so the coroutine never suspends.
        A caller cancelled meanwhile does not stop it: the transaction still
        commits, and the next write queues behind it on the same thread.
        """
        if self.dialect != "sqlite":
            return await self._write_batch_postgres(work)
        assert self._write_lock is not None
        with self._outages:
            async with self._write_lock:
                conn = await self._sqlite_writer()
                driver = (await conn.get_raw_connection()).driver_connection
                # aiosqlite's own way to run a function on its thread (used by all its
                # methods; private, so pyproject bounds the version and
                # tests/integration/test_store_transactions.py exercises it).
                result = await driver._execute(_transaction_in_thread, driver._conn, work)
                return cast(T, result)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction (one snapshot on SQLite)."""
        with self._outages:
            async with self._reader.begin() as conn:
                if self._read_begin is not None:
                    await _begin_sqlite(conn, self._read_begin)
                yield conn

    def insert(self, table: sa.Table) -> UpsertInsert:
        return dialect_insert(self.dialect, table)

    async def dispose(self) -> None:
        if self._held_writer is not None:
            await self._held_writer.close()
            self._held_writer = None
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()

    async def _write_batch_postgres(self, work: BatchWork[T]) -> T:
        """work in one transaction; once more on a new connection if the first was lost.

        A pooled connection can die unseen (PostgreSQL restarted while the event
        loop had not yet read the socket's end). PostgreSQL rolls back the
        transaction of a lost connection, so one that failed before COMMIT was
        sent wrote nothing and is safe to run again; SQLAlchemy has meanwhile
        invalidated the pool. A failure during COMMIT is never retried: the
        commit may have happened. Nor is a failure to connect (an outage).
        """
        with self._outages:
            for attempt in (1, 2):
                connected = committing = False
                try:
                    async with self._writer.begin() as conn:
                        connected = True
                        result = await work(conn)
                        committing = True
                    return result
                except Exception as error:
                    lost = connected and not committing and unreachable(error) is not None
                    if attempt == 2 or not lost:
                        raise
        raise AssertionError("unreachable")

    async def _sqlite_writer(self) -> AsyncConnection:
        """The writer's one connection, checked out at first use (call under the lock)."""
        if self._held_writer is None:
            self._held_writer = await self._writer.connect()
        return self._held_writer


class _OutageGuard:
    """Raises DATABASE_UNAVAILABLE in place of a connection failure; other errors pass.

    A class rather than @contextmanager: it wraps every transaction, and its
    enter and exit cost a fraction of a generator's.
    """

    __slots__ = ("_listeners",)

    def __init__(self, listeners: list[Callable[[], None]]) -> None:
        self._listeners = listeners

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None or not isinstance(error, Exception) or isinstance(error, PushHubError):
            return  # success, cancellation, or already said (a nested transaction, the domain)
        unavailable = as_unavailable(error)
        if unavailable is None:
            return
        if unreachable(error) is not None:
            for listener in self._listeners:
                listener()
        raise unavailable from error


def connect_args(url: sa.URL) -> dict[str, Any]:
    """The driver's connect options for url: a bounded wait on PostgreSQL."""
    return {} if url.get_backend_name() == "sqlite" else {"timeout": CONNECT_TIMEOUT}


def dialect_insert(dialect: str, table: sa.Table) -> UpsertInsert:
    """An INSERT that supports ON CONFLICT on the given dialect."""
    if dialect == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)


async def _begin_sqlite(conn: AsyncConnection, begin: str) -> None:
    """The driver's own transaction handling is off, so BEGIN is ours to choose.

    Sent by aiosqlite directly: one thread hop, where SQLAlchemy's cursor takes three.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    await driver.execute(begin)


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """A pooled connection PostgreSQL has closed is replaced at checkout, with no round trip.

    When PostgreSQL stops or restarts, each backend closes its socket; the event
    loop reads the end, and asyncpg marks the connection closed. Checking that
    flag costs nothing, where pool_pre_ping costs three round trips per checkout.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise sa.exc.DisconnectionError("the connection was closed by the server")


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Pragmas on every new connection, in autocommit mode: _begin_sqlite opens transactions."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()


def _transaction_in_thread(connection: sqlite3.Connection, work: BatchWork[T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = _complete(work(cast(AsyncConnection, _ThreadConnection(connection))))
    except BaseException:
        # SQLite has already rolled back by itself after some errors (a full disk):
        # a ROLLBACK then would fail and hide the error that caused it.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


def _complete(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, driven without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return cast(T, finished.value)
    coroutine.close()
    raise RuntimeError("a write_batch transaction awaited something other than a statement")


class _ThreadConnection:
    """What sql.Prepared and sql.BulkWrite use of an AsyncConnection, on the driver's thread."""

    dialect = sqlite.dialect()

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.driver_connection = _ThreadDriver(connection)

    async def get_raw_connection(self) -> _ThreadConnection:
        return self


class _ThreadDriver:
    """aiosqlite's statement methods, run directly (this is its thread)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, parameters: Any = ()) -> None:
        self._connection.execute(sql, parameters)

    async def execute_fetchall(self, sql: str, parameters: Any = ()) -> list[Any]:
        return self._connection.execute(sql, parameters).fetchall()

    async def executemany(self, sql: str, rows: Any) -> None:
        self._connection.executemany(sql, rows)
