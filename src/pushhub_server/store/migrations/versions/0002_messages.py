"""Messages, their counters and failures, the simulator inbox, invalidated tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.String(64)


def _id(name: str = "id") -> sa.Column:
    return sa.Column(name, _ID, nullable=False)


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False)


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete="CASCADE"
    )


def upgrade() -> None:
    # A nullable column without default: a plain ALTER on both dialects, no table rebuild.
    op.add_column("registrations", sa.Column("invalidated_at", sa.BigInteger))
    op.create_index("ix_registrations_app_id", "registrations", ["app_id", "id"])
    _create_messages()
    _create_counters()
    _create_inbox()


def _create_messages() -> None:
    op.create_table(
        "messages",
        _id(),
        _id("app_id"),
        sa.Column("request_id", sa.String(64)),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("content_json", sa.Text, nullable=False),
        sa.Column("audience_json", sa.Text, nullable=False),
        sa.Column("first_run_at", sa.BigInteger, nullable=False),
        sa.Column("repeat_every_us", sa.BigInteger),
        sa.Column("repeat_expires_at", sa.BigInteger),
        sa.Column("next_run_at", sa.BigInteger),
        sa.Column("run_number", sa.Integer, nullable=False),
        sa.Column("run_count", sa.Integer, nullable=False),
        sa.Column("run_at", sa.BigInteger),
        sa.Column("cursor", _ID),
        sa.Column("lease_until", sa.BigInteger),
        _count("targeted"),
        _count("sent"),
        _count("failed"),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        _fk("messages", "app_id", "apps"),
        sa.UniqueConstraint("app_id", "request_id", name="uq_messages_request"),
    )
    op.create_index("ix_messages_due", "messages", ["state", "next_run_at"])
    op.create_index("ix_messages_lease", "messages", ["state", "lease_until"])


def _create_counters() -> None:
    op.create_table(
        "message_platform_counts",
        _id("message_id"),
        sa.Column("platform", sa.SmallInteger, nullable=False),
        _count("targeted"),
        _count("sent"),
        _count("failed"),
        sa.PrimaryKeyConstraint("message_id", "platform", name="pk_message_platform_counts"),
        _fk("message_platform_counts", "message_id", "messages"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "message_failures",
        _id("message_id"),
        sa.Column("reason", sa.String(255), nullable=False),
        _count("count"),
        sa.PrimaryKeyConstraint("message_id", "reason", name="pk_message_failures"),
        _fk("message_failures", "message_id", "messages"),
        sqlite_with_rowid=False,
    )


def _create_inbox() -> None:
    op.create_table(
        "inbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        _id("app_id"),
        _id("message_id"),
        _id("registration_id"),
        sa.Column("platform", sa.SmallInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("delivered_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        _fk("inbox", "app_id", "apps"),
        _fk("inbox", "message_id", "messages"),
    )
    op.create_index("ix_inbox_app", "inbox", ["app_id", "id"])
    op.create_index("ix_inbox_message", "inbox", ["message_id", "id"])
    op.create_index("ix_inbox_registration", "inbox", ["registration_id", "id"])


def downgrade() -> None:
    for table in ("inbox", "message_failures", "message_platform_counts", "messages"):
        op.drop_table(table)
    op.drop_index("ix_registrations_app_id", "registrations")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("invalidated_at")
