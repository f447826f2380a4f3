"""study operations: open, paused or closed; the participant cap and quotas set on the dashboard;
the asset manifest each participant was shown

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        # every study served so far was open to anyone with the link
        batch_op.add_column(sa.Column("state", sa.String(length=16), server_default="open", nullable=False))
        batch_op.add_column(sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("cap", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quotas", sa.JSON(), nullable=True))
    with op.batch_alter_table("participants", schema=None) as batch_op:
        # unknown for those who came before: the manifest was not recorded then
        batch_op.add_column(sa.Column("manifest_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("manifest_hash")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("quotas")
        batch_op.drop_column("cap")
        batch_op.drop_column("state_changed_at")
        batch_op.drop_column("state")
