"""The database URLs PushHub accepts, and how to name one without its password.

Only two drivers are installed and async: aiosqlite and asyncpg. Any other URL
would fail deep inside SQLAlchemy (a missing module, a sync driver) with a long
traceback, so it is refused first, with the URL the operator probably meant.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..core.errors import ErrorCode, PushHubError

SQLITE = "sqlite+aiosqlite"
POSTGRESQL = "postgresql+asyncpg"
# Backend names a user may write for PostgreSQL (Heroku-style URLs say postgres://).
_POSTGRES_NAMES = ("postgresql", "postgres")


def parse_database_url(text: str) -> sa.URL:
    """The URL, when it names SQLite through aiosqlite or PostgreSQL through asyncpg."""
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        # Not echoed: the text may hold a password.
        raise _refused(
            f"is not a URL: use {SQLITE}:///path/to/pushhub.db "
            f"or {POSTGRESQL}://user:password@host:5432/database"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend in _POSTGRES_NAMES and url.drivername != POSTGRESQL:
        suggestion = masked(url.set(drivername=POSTGRESQL))
        raise _refused(f"{masked(url)}: PushHub connects through asyncpg; use {suggestion}")
    if backend == "sqlite" and driver != "aiosqlite":
        suggestion = masked(url.set(drivername=SQLITE))
        raise _refused(f"{masked(url)}: PushHub connects through aiosqlite; use {suggestion}")
    if backend not in (*_POSTGRES_NAMES, "sqlite"):
        raise _refused(
            f"{masked(url)}: PushHub stores its data in SQLite ({SQLITE}:///path) "
            f"or PostgreSQL ({POSTGRESQL}://user@host/database), not {backend!r}"
        )
    return url


def masked(url: sa.URL | str) -> str:
    """The URL as text, with its password replaced by ***."""
    if isinstance(url, str):
        try:
            url = sa.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            return "<not a URL>"
    return url.render_as_string(hide_password=True)


def _refused(message: str) -> PushHubError:
    return PushHubError(
        ErrorCode.INVALID_ARGUMENT, "DATABASE_URL_UNSUPPORTED", f"database URL {message}"
    )
