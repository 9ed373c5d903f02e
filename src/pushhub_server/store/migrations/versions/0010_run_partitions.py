"""Partitions of a run: slices of a message's audience, each with its own claim.

A run is now cut into partitions by registration id (docs/fleet.md), each
claimed, leased, heartbeated and checkpointed on its own, so several server
processes on one PostgreSQL deliver one message side by side. The message's
own lease and cursor are no longer read. A run in progress when upgrading
becomes one partition covering its whole audience, with the message's claim
number, cursor and lease, so it resumes after its checkpoint as before. Each
partition counts in run_partition_counts and run_partition_failures, added to
the message's counters when the run ends, so processes sharing a message never
wait on its row.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
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

# Downgrading: the partitions' counters are added to their messages' (as the end
# of a run does, store/messages.py), since only those stay.
_FOLD_COUNTERS = (
    "UPDATE messages SET"
    + ",".join(
        f" {name} = {name} + (SELECT coalesce(sum(c.{name}), 0) FROM run_partition_counts c"
        " WHERE c.message_id = messages.id)"
        for name in ("targeted", "sent", "failed")
    ),
    "INSERT INTO message_platform_counts (message_id, platform, targeted, sent, failed)"
    " SELECT message_id, platform, sum(targeted), sum(sent), sum(failed)"
    " FROM run_partition_counts WHERE true GROUP BY message_id, platform"
    " ON CONFLICT (message_id, platform) DO UPDATE SET"
    " targeted = message_platform_counts.targeted + excluded.targeted,"
    " sent = message_platform_counts.sent + excluded.sent,"
    " failed = message_platform_counts.failed + excluded.failed",
    "INSERT INTO message_failures (message_id, reason, count)"
    " SELECT message_id, reason, sum(count) FROM run_partition_failures WHERE true"
    " GROUP BY message_id, reason ON CONFLICT (message_id, reason) DO UPDATE SET"
    " count = message_failures.count + excluded.count",
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
    _create_partition_counters()
    op.execute(_CARRY_OVER)


def _create_partition_counters() -> None:
    """Counters of each partition, added to the message's when its run ends."""
    for table, columns in (
        (
            "run_partition_counts",
            [
                sa.Column("platform", sa.SmallInteger, nullable=False),
                sa.Column("targeted", sa.BigInteger, nullable=False),
                sa.Column("sent", sa.BigInteger, nullable=False),
                sa.Column("failed", sa.BigInteger, nullable=False),
            ],
        ),
        (
            "run_partition_failures",
            [
                sa.Column("reason", sa.String(255), nullable=False),
                sa.Column("count", sa.BigInteger, nullable=False),
            ],
        ),
    ):
        key = columns[0].name
        op.create_table(
            table,
            sa.Column("message_id", _ID, nullable=False),
            sa.Column("number", sa.Integer, nullable=False),
            *columns,
            sa.PrimaryKeyConstraint("message_id", "number", key, name=f"pk_{table}"),
            sa.ForeignKeyConstraint(
                ["message_id", "number"],
                ["run_partitions.message_id", "run_partitions.number"],
                name=f"fk_{table}_partition",
                ondelete="CASCADE",
            ),
            sqlite_with_rowid=False,
        )


def downgrade() -> None:
    op.execute(_CARRY_BACK)
    for statement in _FOLD_COUNTERS:
        op.execute(statement)
    op.drop_table("run_partition_failures")
    op.drop_table("run_partition_counts")
    op.drop_index("ix_run_partitions_lease", table_name="run_partitions")
    op.drop_table("run_partitions")
