"""Async SQLAlchemy repositories for SQLite and PostgreSQL, with Alembic migrations."""

from .apps import SqlAppRepository
from .audience import SqlAudienceReader
from .database import Database
from .inbox import SqlInbox
from .messages import SqlMessageRepository
from .migrations import migrate
from .registrations import SqlRegistrationRepository
from .tracking import SqlTrackingRepository

__all__ = [
    "Database",
    "SqlAppRepository",
    "SqlAudienceReader",
    "SqlInbox",
    "SqlMessageRepository",
    "SqlRegistrationRepository",
    "SqlTrackingRepository",
    "migrate",
]
