"""Messages keep the trace context of the Publish that stored them.

A W3C traceparent (docs/observability.md): the run, its chunks and provider
sends are spans linked to the Publish's span, whichever process delivers them.
NULL when tracing was off at publish time, and for messages stored before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch: SQLite alters a table by copying it; PostgreSQL adds the column in place.
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("trace_context", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("trace_context")
