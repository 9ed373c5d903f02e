"""Drop the foreign keys from subscriptions and tags to their registration.

On PostgreSQL each one is a trigger per inserted row that looks the parent up
and locks it (KEY SHARE): with two subscriptions and three tags, five per
registration, a third of a bulk import's database time. Every delete of
registrations now deletes their subscriptions and tags itself
(store.children.delete_children), in the same transaction.
subscriptions.channel_id keeps its foreign key: deleting an app cascades
through its channels to their subscriptions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FOREIGN_KEYS = {
    "subscriptions": "fk_subscriptions_registration_id_registrations",
    "registration_tags": "fk_registration_tags_registration_id_registrations",
}


def upgrade() -> None:
    for table, name in _FOREIGN_KEYS.items():
        # SQLite rebuilds the table, which must stay WITHOUT ROWID like the original.
        with op.batch_alter_table(table, table_kwargs={"sqlite_with_rowid": False}) as batch:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, name in _FOREIGN_KEYS.items():
        with op.batch_alter_table(table, table_kwargs={"sqlite_with_rowid": False}) as batch:
            batch.create_foreign_key(
                name, "registrations", ["registration_id"], ["id"], ondelete="CASCADE"
            )
