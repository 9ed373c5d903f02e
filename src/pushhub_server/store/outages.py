"""Which driver errors mean "the database cannot be reached", and how to say so.

A client must be able to tell an outage (retry later: UNAVAILABLE) from a bug
(INTERNAL), and the api layer must not know SQLAlchemy or the drivers to do so.
So the store turns connection failures into core's DATABASE_UNAVAILABLE error
here, and leaves everything else (integrity, programming errors) as it is.

The errors come wrapped in several ways: SQLAlchemy's DBAPIError around an
adapter error around the asyncpg exception (statements), a bare OSError or
asyncpg exception (new connections, and statements sql.BulkWrite runs on the
driver directly), or sqlite3's OperationalError. So every link of the chain
(`orig`, `__cause__`) is looked at.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator

import asyncpg
import sqlalchemy as sa

from ..core.errors import PushHubError, database_unavailable
from .database_url import masked

# SQLSTATEs of a server that refuses or drops connections: class 08 (connection
# exception), 28 (the password or user no longer accepted), 3D000 (the database
# is gone), 57P01-57P03 (shut down, crashed, starting up), 53300 (no free slot).
_UNREACHABLE_SQLSTATE_PREFIXES = ("08", "28", "3D000", "57P01", "57P02", "57P03", "53300")
# sqlite3 says so in words: a missing directory or file, a failing disk.
_UNREACHABLE_SQLITE = ("unable to open database file", "disk I/O error")
# Busy, not down: another process held SQLite's write lock past busy_timeout.
_BUSY_SQLITE = ("database is locked",)

UNREACHABLE_MESSAGE = "the database is not answering; retry later"
BUSY_MESSAGE = "the database is busy; retry later"


def unreachable(error: BaseException) -> BaseException | None:
    """The link of error's chain that says the database cannot be reached, if any."""
    for link in _chain(error):
        if _is_unreachable(link):
            return link
    return None


def as_unavailable(error: BaseException) -> PushHubError | None:
    """DATABASE_UNAVAILABLE for an outage or an overloaded database; None for anything else."""
    if unreachable(error) is not None:
        return database_unavailable(UNREACHABLE_MESSAGE)
    if any(_is_busy(link) for link in _chain(error)):
        return database_unavailable(BUSY_MESSAGE)
    return None


def connect_error(url: sa.URL, error: BaseException) -> PushHubError:
    """One line for an operator whose server or command could not connect at start."""
    cause = unreachable(error) or error
    message = f"cannot connect to the database {masked(url)}: {_hint(url, cause)}"
    return database_unavailable(message)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)
        link = orig if isinstance(orig, BaseException) else link.__cause__


def _is_unreachable(link: BaseException) -> bool:
    if isinstance(link, sa.exc.DBAPIError) and link.connection_invalidated:
        return True
    if isinstance(link, OSError):
        return True  # refused, reset, unknown host, timed out (TimeoutError is an OSError)
    if isinstance(link, asyncpg.InterfaceError):
        return "connection is closed" in str(link) or "connection was closed" in str(link)
    if isinstance(link, asyncpg.PostgresError):
        return str(getattr(link, "sqlstate", "")).startswith(_UNREACHABLE_SQLSTATE_PREFIXES)
    if isinstance(link, sqlite3.OperationalError):
        return str(link).startswith(_UNREACHABLE_SQLITE)
    return False


def _is_busy(link: BaseException) -> bool:
    if isinstance(link, sa.exc.TimeoutError):
        return True  # no pooled connection came free within the pool's timeout
    return isinstance(link, sqlite3.OperationalError) and str(link).startswith(_BUSY_SQLITE)


def _hint(url: sa.URL, cause: BaseException) -> str:
    """What went wrong, and what to check, in the operator's terms."""
    place = f"{url.host or 'localhost'}:{url.port or 5432}"
    if isinstance(cause, socket.gaierror):
        return f"unknown host {url.host!r}; check the host name in the URL"
    if isinstance(cause, ConnectionRefusedError):
        return f"nothing listens at {place}; is PostgreSQL running there?"
    if isinstance(cause, TimeoutError):
        return f"no answer from {place}; is the host reachable (firewall)?"
    if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError):
        return f"{cause}; check the user and password in the URL"
    if isinstance(cause, asyncpg.InvalidCatalogNameError):
        return f"{cause}; create it first (createdb {url.database})"
    if isinstance(cause, sqlite3.OperationalError) and str(cause).startswith(_UNREACHABLE_SQLITE):
        return f"{cause} {url.database!r}; does its directory exist, and is it writable?"
    if isinstance(cause, TypeError) and "keyword argument" in str(cause):
        return f"an option in the URL's query string is unknown to the driver ({cause})"
    return f"{type(cause).__name__}: {cause}"
