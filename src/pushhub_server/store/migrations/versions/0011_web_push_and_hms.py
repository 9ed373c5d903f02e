"""Web Push and Huawei Push Kit: the apps' credentials and the subscriptions' keys.

- apps.web_push_credentials, apps.hms_credentials: sealed like the APNs and FCM
  credentials (core.credentials.SecretBox).
- apps.web_push_public_key: the VAPID public key, no secret; App shows it.
- registrations.web_push_p256dh, registrations.web_push_auth: a Web Push
  subscription's keys, base64url as the browser gave them; NULL for the other
  platforms.

Every column is nullable and new, so the upgrade rewrites no row; the downgrade
drops them (Web Push and HMS registrations are then unusable, as before).

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_APP_COLUMNS = ("web_push_credentials", "web_push_public_key", "hms_credentials")
_REGISTRATION_COLUMNS = ("web_push_p256dh", "web_push_auth")


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects: no table is rebuilt.
    for name in _APP_COLUMNS:
        op.add_column("apps", sa.Column(name, sa.Text, nullable=True))
    for name in _REGISTRATION_COLUMNS:
        op.add_column("registrations", sa.Column(name, sa.Text, nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite rebuilds the tables where it cannot drop a column itself.
    with op.batch_alter_table("registrations") as batch:
        for name in _REGISTRATION_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("apps") as batch:
        for name in _APP_COLUMNS:
            batch.drop_column(name)
