"""Drop the foreign key from subscriptions to their channel.

Like the ones migration 0005 dropped, it was a trigger per inserted row on
PostgreSQL that looked the channel up and locked it (KEY SHARE). Here every
import batch locks the same few popular channel rows, so concurrent batches
turned those locks into multixacts: dropping it cut PostgreSQL's CPU per
imported device by about 13% (median of four 100k-device imports each way).
Channels are deleted only with their app; store.apps deletes the app's
registrations with their children (store.children) before the app itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NAME = "fk_subscriptions_channel_id_channels"


def upgrade() -> None:
    # SQLite rebuilds the table, which must stay WITHOUT ROWID like the original.
    with op.batch_alter_table("subscriptions", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.drop_constraint(_NAME, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.create_foreign_key(_NAME, "channels", ["channel_id"], ["id"], ondelete="CASCADE")
