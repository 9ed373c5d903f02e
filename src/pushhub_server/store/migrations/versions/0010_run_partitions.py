"""Partitions of a run: slices of a message's audience, each with its own claim.

A run is now cut into partitions by registration id (docs/fleet.md), each
claimed, leased, heartbeated and checkpointed on its own, so several server
processes on one PostgreSQL deliver one message side by side. The message's
own lease and cursor are no longer read. A run in progress when upgrading
becomes one partition covering its whole audience, with the message's claim
number, cursor and lease, so it resumes after its checkpoint as before.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.String(64)
_PUBLISHING = 2
# The run in progress as one partition; true/false read the same on both dialects.
_CARRY_OVER = (
    "INSERT INTO run_partitions (message_id, number, last_id, cursor, claim, lease_until, done)"
    " SELECT id, 0, NULL, cursor, run_number, COALESCE(lease_until, 0), false"
    f" FROM messages WHERE state = {_PUBLISHING}"
)
# Downgrading: the run resumes after the lowest checkpoint of its partitions; a
# partition beyond it is sent again from there, the most that can be done.
_CARRY_BACK = (
    # A NULL cursor (a partition not started) is the lowest: min() would skip it.
    "UPDATE messages SET cursor = (SELECT CASE WHEN count(*) > count(cursor) THEN NULL"
    " ELSE min(cursor) END FROM run_partitions p"
    " WHERE p.message_id = messages.id AND NOT p.done),"
    " lease_until = (SELECT max(lease_until) FROM run_partitions p"
    " WHERE p.message_id = messages.id)"
    f" WHERE state = {_PUBLISHING}"
)


def upgrade() -> None:
    op.create_table(
        "run_partitions",
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("last_id", _ID),
        sa.Column("cursor", _ID),
        sa.Column("claim", sa.Integer, nullable=False),
        sa.Column("lease_until", sa.BigInteger, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("message_id", "number", name="pk_run_partitions"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_run_partitions_message_id_messages",
            ondelete="CASCADE",
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_partitions_lease", "run_partitions", ["done", "lease_until"])
    op.execute(_CARRY_OVER)


def downgrade() -> None:
    op.execute(_CARRY_BACK)
    op.drop_index("ix_run_partitions_lease", table_name="run_partitions")
    op.drop_table("run_partitions")
