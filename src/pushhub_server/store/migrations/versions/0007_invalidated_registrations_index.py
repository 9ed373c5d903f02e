"""Index registrations by invalidated_at, only where it is set.

The sweep now also deletes registrations invalidated more than a week ago
(core.registrations.INVALIDATED_RETENTION). Without an index that DELETE
scanned the whole table every sweep interval, inside a write transaction:
on SQLite, a pause for every writer. Few rows are ever invalidated, so the
index is partial, like the expiry one of migration 0004.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_NAME = "ix_registrations_invalidated_at"
_WHERE = "invalidated_at IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        _NAME,
        "registrations",
        ["invalidated_at"],
        sqlite_where=sa.text(_WHERE),
        postgresql_where=sa.text(_WHERE),
    )


def downgrade() -> None:
    op.drop_index(_NAME, table_name="registrations")
