"""Initial schema: apps, keys, registrations, channels, tags, tracking.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.String(64)


def _id(name: str = "id") -> sa.Column:
    return sa.Column(name, _ID, nullable=False)


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=f"fk_{table}_{column}_{referred}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "apps",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("signing_secret", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("apns_credentials", sa.Text),
        sa.Column("fcm_credentials", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_apps"),
        sa.UniqueConstraint("name", name="uq_apps_name"),
    )
    op.create_table(
        "api_keys",
        _id(),
        _id("app_id"),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        _fk("api_keys", "app_id", "apps"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_app_id", "api_keys", ["app_id"])
    op.create_table(
        "registrations",
        _id(),
        _id("app_id"),
        sa.Column("platform", sa.SmallInteger, nullable=False),
        sa.Column("device_token", sa.Text, nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("metadata_json", sa.Text),
        sa.Column("templates_json", sa.Text),
        sa.Column("selector", sa.Text),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registrations"),
        _fk("registrations", "app_id", "apps"),
        sa.UniqueConstraint("app_id", "token_hash", "platform", name="uq_registrations_token"),
    )
    op.create_index("ix_registrations_app_user", "registrations", ["app_id", "user_id"])
    op.create_index("ix_registrations_expires_at", "registrations", ["expires_at"])
    op.create_table(
        "channels",
        _id(),
        _id("app_id"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_channels"),
        _fk("channels", "app_id", "apps"),
        sa.UniqueConstraint("app_id", "name", name="uq_channels_app_name"),
    )
    op.create_table(
        "subscriptions",
        _id(),
        _id("registration_id"),
        _id("channel_id"),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        _fk("subscriptions", "registration_id", "registrations"),
        _fk("subscriptions", "channel_id", "channels"),
        sa.UniqueConstraint("registration_id", "channel_id", name="uq_subscriptions_registration"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_subscriptions_channel", "subscriptions", ["channel_id", "registration_id"])
    op.create_table(
        "registration_tags",
        _id("registration_id"),
        sa.Column("tag", sa.String(120), nullable=False),
        _id("app_id"),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("registration_id", "tag", name="pk_registration_tags"),
        _fk("registration_tags", "registration_id", "registrations"),
        _fk("registration_tags", "app_id", "apps"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_registration_tags_app_tag", "registration_tags", ["app_id", "tag", "registration_id"]
    )
    op.create_table(
        "reserved_registration_ids",
        _id(),
        _id("app_id"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reserved_registration_ids"),
        _fk("reserved_registration_ids", "app_id", "apps"),
    )
    op.create_index("ix_reserved_registration_ids_app_id", "reserved_registration_ids", ["app_id"])
    op.create_table(
        "tracked_requests",
        _id(),
        _id("app_id"),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("failure_reason", sa.SmallInteger),
        sa.Column("callback_url", sa.Text),
        sa.Column("callback_headers_json", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tracked_requests"),
        _fk("tracked_requests", "app_id", "apps"),
    )
    op.create_index("ix_tracked_requests_app_id", "tracked_requests", ["app_id"])


def downgrade() -> None:
    for table in (
        "tracked_requests",
        "reserved_registration_ids",
        "registration_tags",
        "subscriptions",
        "channels",
        "registrations",
        "api_keys",
        "apps",
    ):
        op.drop_table(table)
