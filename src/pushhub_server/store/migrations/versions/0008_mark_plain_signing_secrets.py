"""Mark the apps' stored user-token signing secrets as plain.

Signing secrets are now stored like provider credentials: sealed by
core.credentials.SecretBox, which reads a value by its marker ("plain:" or
"fernet:"). Until now they were stored raw, so every existing one gets the
"plain:" marker; a server started with PUSHHUB_SECRET_KEY then seals them.
Downgrading strips the marker again, but cannot open a sealed secret: it
refuses while any app's secret is sealed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# || and substr() mean the same on SQLite and PostgreSQL; substr counts from 1.
_MARK = "UPDATE apps SET signing_secret = 'plain:' || signing_secret"
_UNMARK = (
    "UPDATE apps SET signing_secret = substr(signing_secret, 7)"
    " WHERE substr(signing_secret, 1, 6) = 'plain:'"
)
_SEALED = "SELECT count(*) FROM apps WHERE substr(signing_secret, 1, 7) = 'fernet:'"


def upgrade() -> None:
    op.execute(_MARK)


def downgrade() -> None:
    sealed = op.get_bind().execute(sa.text(_SEALED)).scalar_one()
    if sealed:
        raise RuntimeError(
            f"cannot downgrade below 0008: {sealed} apps' user-token signing secrets are "
            "sealed with PUSHHUB_SECRET_KEY, and revision 0007 reads them as plaintext"
        )
    op.execute(_UNMARK)
