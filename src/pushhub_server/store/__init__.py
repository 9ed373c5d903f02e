"""Async SQLAlchemy repositories for SQLite and PostgreSQL, with Alembic migrations."""

from .apps import SqlAppRepository
from .database import Database
from .migrations import migrate
from .registrations import SqlRegistrationRepository
from .tracking import SqlTrackingRepository

__all__ = [
    "Database",
    "SqlAppRepository",
    "SqlRegistrationRepository",
    "SqlTrackingRepository",
    "migrate",
]
