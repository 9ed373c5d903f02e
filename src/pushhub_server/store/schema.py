"""SQLAlchemy Core tables for queries. Migrations own the DDL; keep both in sync.

Times are BIGINT Unix-epoch microseconds (core.clock.to_micros): fast to
compare and identical on SQLite and PostgreSQL. Ids are time-ordered strings
(core.ids), so bulk inserts append at the right edge of each index.
"""

from __future__ import annotations

import sqlalchemy as sa

# Deterministic constraint names, so migrations can refer to them on both dialects.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ID = sa.String(64)


def _where(condition: str) -> dict[str, sa.TextClause]:
    """A partial index's condition, the same on both dialects."""
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def _app_fk() -> sa.ForeignKey:
    return sa.ForeignKey("apps.id", ondelete="CASCADE")


apps = sa.Table(
    "apps",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("signing_secret", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Provider credentials arrive with later issues (encrypted with the secret key).
    sa.Column("apns_credentials", sa.Text),
    sa.Column("fcm_credentials", sa.Text),
    # Migration 0011: Web Push (VAPID) and Huawei Push Kit credentials, sealed like
    # the others; the VAPID public key is no secret, and App shows it.
    sa.Column("web_push_credentials", sa.Text),
    sa.Column("web_push_public_key", sa.Text),
    sa.Column("hms_credentials", sa.Text),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("app_id", _ID, _app_fk(), nullable=False, index=True),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
)

registrations = sa.Table(
    "registrations",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("app_id", _ID, _app_fk(), nullable=False),
    sa.Column("platform", sa.SmallInteger, nullable=False),
    sa.Column("device_token", sa.Text, nullable=False),
    sa.Column("user_id", sa.String(255)),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("metadata_json", sa.Text),
    sa.Column("templates_json", sa.Text),
    sa.Column("selector", sa.Text),
    # Tokens may be 4,096 characters, too long for a B-tree key: the digest is the key.
    sa.Column("token_hash", sa.String(64), nullable=False),
    # RegistrationInput.fingerprint: equal means an unchanged re-registration.
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # Set when a provider reports the token invalid: audiences leave the row out from then on.
    sa.Column("invalidated_at", sa.BigInteger),
    # Web Push only (migration 0011): the subscription's keys, base64url as received.
    sa.Column("web_push_p256dh", sa.Text),
    sa.Column("web_push_auth", sa.Text),
    # Digest before platform: a batch looks its tokens up by digest alone.
    sa.UniqueConstraint("app_id", "token_hash", "platform", name="uq_registrations_token"),
    # Partial (migration 0004): most devices have no user and no expiry.
    sa.Index("ix_registrations_app_user", "app_id", "user_id", **_where("user_id IS NOT NULL")),
    # Broadcast audiences page through an app's registrations in id order.
    sa.Index("ix_registrations_app_id", "app_id", "id"),
    sa.Index("ix_registrations_expires_at", "expires_at", **_where("expires_at IS NOT NULL")),
    # The sweep deletes rows invalidated long ago (migration 0007).
    sa.Index(
        "ix_registrations_invalidated_at",
        "invalidated_at",
        **_where("invalidated_at IS NOT NULL"),
    ),
)

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("app_id", _ID, _app_fk(), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("app_id", "name", name="uq_channels_app_name"),
)

# Each subscription id is the per-channel registration id of Backendless.
# No foreign keys (migrations 0005 and 0006): each was a lookup and a lock per
# inserted row on PostgreSQL. store.children deletes a registration's
# subscriptions and tags wherever registrations are deleted.
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("registration_id", _ID, nullable=False),
    sa.Column("channel_id", _ID, nullable=False),
    # Order of the channel in the registration, so reads return what was written.
    sa.Column("position", sa.SmallInteger, nullable=False),
    sa.UniqueConstraint("registration_id", "channel_id", name="uq_subscriptions_registration"),
    sa.Index("ix_subscriptions_channel", "channel_id", "registration_id"),
    # Small rows keyed by an id: on SQLite the primary key B-tree can be the table.
    sqlite_with_rowid=False,
)

# No foreign keys (migrations 0003 and 0005), like subscriptions: store.children
# deletes tags with their registration, and with their app (by app_id).
registration_tags = sa.Table(
    "registration_tags",
    metadata,
    sa.Column("registration_id", _ID, primary_key=True),
    sa.Column("tag", sa.String(120), primary_key=True),
    # Denormalised so audience queries find a tag's registrations within one app.
    sa.Column("app_id", _ID, nullable=False),
    sa.Column("position", sa.SmallInteger, nullable=False),
    sa.Index("ix_registration_tags_app_tag", "app_id", "tag", "registration_id"),
    sqlite_with_rowid=False,
)

reserved_ids = sa.Table(
    "reserved_registration_ids",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("app_id", _ID, _app_fk(), nullable=False, index=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

tracked_requests = sa.Table(
    "tracked_requests",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("app_id", _ID, _app_fk(), nullable=False, index=True),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("failure_reason", sa.SmallInteger),
    sa.Column("callback_url", sa.Text),
    sa.Column("callback_headers_json", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("app_id", _ID, _app_fk(), nullable=False),
    # AIP-155 idempotency key; NULLs never conflict, so most messages carry none.
    sa.Column("request_id", sa.String(64)),
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("content_json", sa.Text, nullable=False),
    sa.Column("audience_json", sa.Text, nullable=False),
    sa.Column("first_run_at", sa.BigInteger, nullable=False),
    sa.Column("repeat_every_us", sa.BigInteger),
    sa.Column("repeat_expires_at", sa.BigInteger),
    # When the next run starts; NULL while a run is in progress or none is left.
    sa.Column("next_run_at", sa.BigInteger),
    # The claim number: incremented by every claim, of a new run or a resumed one;
    # writes of an older claim are refused (store.messages).
    sa.Column("run_number", sa.Integer, nullable=False),
    sa.Column("run_count", sa.Integer, nullable=False),
    # Scheduled time of the current run, and the last registration id it finished.
    sa.Column("run_at", sa.BigInteger),
    sa.Column("cursor", _ID),
    # A PUBLISHING message whose lease ran out lost its dispatcher: claimable again.
    sa.Column("lease_until", sa.BigInteger),
    sa.Column("targeted", sa.BigInteger, nullable=False),
    sa.Column("sent", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sa.Column("error_message", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # The Publish's W3C traceparent, when tracing was on (docs/observability.md).
    sa.Column("trace_context", sa.String(128)),
    sa.UniqueConstraint("app_id", "request_id", name="uq_messages_request"),
    # The scheduler's two questions: which runs are due, and which leases ran out.
    sa.Index("ix_messages_due", "state", "next_run_at"),
    sa.Index("ix_messages_lease", "state", "lease_until"),
)


def _message_fk() -> sa.ForeignKey:
    return sa.ForeignKey("messages.id", ondelete="CASCADE")


message_platform_counts = sa.Table(
    "message_platform_counts",
    metadata,
    sa.Column("message_id", _ID, _message_fk(), primary_key=True),
    sa.Column("platform", sa.SmallInteger, primary_key=True),
    sa.Column("targeted", sa.BigInteger, nullable=False),
    sa.Column("sent", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

message_failures = sa.Table(
    "message_failures",
    metadata,
    sa.Column("message_id", _ID, _message_fk(), primary_key=True),
    sa.Column("reason", sa.String(255), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# The partitions of each message's current run (docs/fleet.md): slices of its
# audience by registration id, each claimed, leased and checkpointed on its own,
# so several processes deliver one message side by side.
run_partitions = sa.Table(
    "run_partitions",
    metadata,
    sa.Column("message_id", _ID, _message_fk(), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    # The last registration id of the slice, inclusive; NULL: to the end.
    sa.Column("last_id", _ID),
    # The last registration id done: the slice's lower bound until a chunk is recorded.
    sa.Column("cursor", _ID),
    # The claim number (messages.run_number when claimed); 0: never claimed.
    sa.Column("claim", sa.Integer, nullable=False),
    # Claimable once passed (0 for a new partition); renewed by its dispatcher.
    sa.Column("lease_until", sa.BigInteger, nullable=False),
    # Delivered to the end, or stopped by a cancel or a failure of the message.
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Index("ix_run_partitions_lease", "done", "lease_until"),
    sqlite_with_rowid=False,
)


def _partition_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["message_id", "number"],
        ["run_partitions.message_id", "run_partitions.number"],
        name=f"fk_{table}_partition",
        ondelete="CASCADE",
    )


# A partition's counters, written by its checkpoints only, so the processes that
# share a message never wait for each other's; added to the message's when its
# run ends (status reads both meanwhile).
run_partition_counts = sa.Table(
    "run_partition_counts",
    metadata,
    sa.Column("message_id", _ID, primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("platform", sa.SmallInteger, primary_key=True),
    sa.Column("targeted", sa.BigInteger, nullable=False),
    sa.Column("sent", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    _partition_fk("run_partition_counts"),
    sqlite_with_rowid=False,
)

run_partition_failures = sa.Table(
    "run_partition_failures",
    metadata,
    sa.Column("message_id", _ID, primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("reason", sa.String(255), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    _partition_fk("run_partition_failures"),
    sqlite_with_rowid=False,
)

# What the simulator provider delivered. Rows outlive their registration (history),
# so registration_id is not a foreign key.
inbox = sa.Table(
    "inbox",
    metadata,
    # Insertion order is delivery order, so "newest first" is the key order reversed.
    # Only INTEGER PRIMARY KEY is SQLite's auto-assigned rowid; BIGINT would not be.
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("app_id", _ID, _app_fk(), nullable=False),
    sa.Column("message_id", _ID, _message_fk(), nullable=False),
    sa.Column("registration_id", _ID, nullable=False),
    sa.Column("platform", sa.SmallInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("delivered_at", sa.BigInteger, nullable=False),
    sa.Index("ix_inbox_app", "app_id", "id"),
    sa.Index("ix_inbox_message", "message_id", "id"),
    sa.Index("ix_inbox_registration", "registration_id", "id"),
)
