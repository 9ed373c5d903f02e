"""Statement building blocks shared by the repositories."""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

# Errors from SQLAlchemy, and from the drivers that BulkWrite calls directly.
DATABASE_ERRORS = (sa.exc.DBAPIError, sqlite3.Error, asyncpg.PostgresError)
_DEADLOCK_OR_SERIALIZATION = {"40P01", "40001"}


def is_write_conflict(error: BaseException) -> bool:
    """A unique violation or deadlock between concurrent writers: worth replanning."""
    if isinstance(
        error,
        (
            sa.exc.IntegrityError,
            sqlite3.IntegrityError,
            asyncpg.IntegrityConstraintViolationError,
            asyncpg.TransactionRollbackError,
        ),
    ):
        return True
    orig = getattr(error, "orig", None)
    return getattr(orig, "pgcode", None) in _DEADLOCK_OR_SERIALIZATION


# SQLite binds at most 32,766 parameters per statement, asyncpg 32,767; IN lists
# are split well below that so a statement never fails on a large batch.
IN_LIST_SIZE = 5_000


def chunked(values: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def one_of(
    column: sa.ColumnElement[Any], values: Sequence[Any], dialect: str
) -> sa.ColumnElement[bool]:
    """column IN values; on PostgreSQL one array parameter, read through unnest().

    A list of 1,000 parameters made asyncpg prepare a new statement per batch
    size, and PostgreSQL's generic plan compared each row against the whole
    list (0.7 s per lookup at 20,000 rows). A semi-join on unnest() stays cheap
    with any plan.
    """
    if dialect == "postgresql":
        array = sa.literal(list(values), type_=postgresql.ARRAY(column.type))
        return column.in_(sa.select(sa.func.unnest(array)))
    return column.in_(values)


def one_of_list(column: sa.ColumnElement[Any], name: str, dialect: str) -> sa.ColumnElement[bool]:
    """column IN the list bound as `name`, one parameter whatever its length.

    Unlike one_of, the SQL text never changes with the list, so it compiles once.
    SQLite reads a JSON array through json_each() and still seeks the index per value.
    """
    if dialect == "postgresql":
        array = sa.bindparam(name, type_=postgresql.ARRAY(column.type))
        return column.in_(sa.select(sa.func.unnest(array)))
    values = sa.select(sa.column("value")).select_from(sa.func.json_each(sa.bindparam(name)))
    return column.in_(values)


class Prepared:
    """A statement of fixed shape; on SQLite run by the driver in one thread hop.

    Through SQLAlchemy, aiosqlite pays a thread hop each for cursor, execute,
    fetchall and close: most of a small transaction (docs/performance.md,
    "SQLite writes").
    `build` makes the statement for a dialect name; list parameters must come
    from one_of_list. Rows are plain tuples in the order of the selected columns.
    """

    def __init__(self, build: Callable[[str], sa.Executable]) -> None:
        self._postgres = build("postgresql")
        compiled = build("sqlite").compile(dialect=sqlite_dialect.dialect())
        self._sqlite_sql = str(compiled)
        self._sqlite_names = tuple(compiled.positiontup or ())

    @property
    def sqlite_sql(self) -> str:
        """The SQL text run on SQLite (for EXPLAIN guard tests)."""
        return self._sqlite_sql

    async def rows(self, conn: AsyncConnection, **params: Any) -> Sequence[Sequence[Any]]:
        if conn.dialect.name == "postgresql":
            return (await conn.execute(self._postgres, params)).all()
        driver = (await conn.get_raw_connection()).driver_connection
        return list(await driver.execute_fetchall(self._sqlite_sql, self._values(params)))

    async def execute(self, conn: AsyncConnection, **params: Any) -> None:
        if conn.dialect.name == "postgresql":
            await conn.execute(self._postgres, params)
            return
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.execute(self._sqlite_sql, self._values(params))

    def _values(self, params: dict[str, Any]) -> list[Any]:
        return [_sqlite_value(params[name]) for name in self._sqlite_names]


def _sqlite_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list) else value


async def postgres_driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection, inside the transaction of conn.

    SQLAlchemy sends BEGIN lazily, with its first statement: a write sent to the
    driver before any would run on its own, outside the transaction.
    """
    driver: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")
    return driver


class BulkWrite(ABC):
    """Many rows written through the driver itself, skipping SQLAlchemy's per-row work.

    SQLAlchemy's executemany builds and processes a parameter dict per row,
    which cost more than the database work on 1,000-item chunks. SQLite takes
    plain tuples through executemany. On PostgreSQL one statement reads
    column arrays through unnest(): asyncpg's executemany still pays a
    protocol round per row. Rows are tuples in the order of `columns`.
    """

    def __init__(self, table: sa.Table, columns: Sequence[str]) -> None:
        self._table = table
        self._columns = tuple(columns)
        self._postgres_sql = self.postgres_sql()
        self._sqlite_sql = self.sqlite_sql()

    @abstractmethod
    def postgres_sql(self) -> str: ...

    @abstractmethod
    def sqlite_sql(self) -> str: ...

    async def run(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if conn.dialect.name == "postgresql":
            arrays = [list(column) for column in zip(*rows, strict=True)]
            await (await postgres_driver(conn)).execute(self._postgres_sql, *arrays)
        else:
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.executemany(self._sqlite_sql, rows)

    def _unnest(self) -> str:
        dialect = postgresql.dialect()
        casts = (
            f"${index}::{self._table.c[name].type.compile(dialect=dialect)}[]"
            for index, name in enumerate(self._columns, start=1)
        )
        return f"unnest({', '.join(casts)})"


# From this many rows on, BulkInsert uses COPY on PostgreSQL. Below, its prepared
# INSERT ... unnest() costs the backend less: COPY is a simple-protocol statement
# that PostgreSQL parses and sets up anew each time (docs/performance.md, "Unary
# writes"; benchmarks/pg_small_writes.py measures both).
COPY_MIN_ROWS = 20


class BulkInsert(BulkWrite):
    """INSERT of many rows; with `unique`, rows already present are skipped.

    copy_from: the fewest rows written by COPY on PostgreSQL (none with `unique`).
    """

    def __init__(
        self,
        table: sa.Table,
        *columns: str,
        unique: Sequence[str] = (),
        copy_from: int = COPY_MIN_ROWS,
    ) -> None:
        self._conflict = f" ON CONFLICT ({', '.join(unique)}) DO NOTHING" if unique else ""
        self._copy_from = max(copy_from, 1)
        super().__init__(table, columns)

    async def run(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
        copy = len(rows) >= self._copy_from and not self._conflict
        if copy and conn.dialect.name == "postgresql":
            # Binary COPY: asyncpg's array encoding behind unnest() ran two ABC
            # isinstance checks per element, a third of a bulk import's CPU.
            driver = await postgres_driver(conn)
            await driver.copy_records_to_table(
                self._table.name, records=rows, columns=self._columns
            )
            return
        await super().run(conn, rows)

    def postgres_sql(self) -> str:
        return f"{self._into()} SELECT * FROM {self._unnest()}{self._conflict}"

    def sqlite_sql(self) -> str:
        marks = ", ".join("?" for _ in self._columns)
        return f"{self._into()} VALUES ({marks}){self._conflict}"

    def _into(self) -> str:
        return f"INSERT INTO {self._table.name} ({', '.join(self._columns)})"


class BulkUpdate(BulkWrite):
    """UPDATE of many rows by id; the id is the last value of each row."""

    def __init__(self, table: sa.Table, *columns: str) -> None:
        self._assigned = columns
        super().__init__(table, (*columns, "id"))

    def postgres_sql(self) -> str:
        table = self._table.name
        assignments = ", ".join(f"{name} = u.{name}" for name in self._assigned)
        return (
            f"UPDATE {table} SET {assignments} FROM {self._unnest()}"
            f" AS u({', '.join(self._columns)}) WHERE {table}.id = u.id"
        )

    def sqlite_sql(self) -> str:
        assignments = ", ".join(f"{name} = ?" for name in self._assigned)
        return f"UPDATE {self._table.name} SET {assignments} WHERE id = ?"
