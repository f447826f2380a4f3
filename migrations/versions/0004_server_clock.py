"""the server's own clock: when each page was served, and each answer's server-side response time

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("served_page", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("served_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("served_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("server_rt_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_column("server_rt_ms")
        batch_op.drop_column("served_at")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("served_at")
        batch_op.drop_column("served_page")
