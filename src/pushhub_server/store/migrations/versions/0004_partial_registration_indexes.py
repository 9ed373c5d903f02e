"""Index registrations by user and by expiry only where those are set.

Most devices carry neither a user nor an expiry, yet every registration paid
an entry in both indexes. Each lookup compares the column (user_id = ?,
expires_at <= ?), which implies IS NOT NULL, so both databases still use them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_registrations_app_user": (("app_id", "user_id"), "user_id IS NOT NULL"),
    "ix_registrations_expires_at": (("expires_at",), "expires_at IS NOT NULL"),
}


def upgrade() -> None:
    for name, (columns, where) in _INDEXES.items():
        op.drop_index(name, table_name="registrations")
        op.create_index(
            name,
            "registrations",
            list(columns),
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, (columns, _) in _INDEXES.items():
        op.drop_index(name, table_name="registrations")
        op.create_index(name, "registrations", list(columns))
