"""participants' origin (real, pilot, bot) and device; whether a trial's tab was hidden

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="real"))
        batch_op.add_column(sa.Column("device_class", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("viewport_w", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("viewport_h", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("screen_w", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("screen_h", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_participants_origin"), ["origin"], unique=False)
    op.execute("UPDATE participants SET origin = 'pilot' WHERE is_pilot")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.alter_column("origin", server_default=None)
        batch_op.drop_column("is_pilot")
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tab_hidden", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_column("tab_hidden")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_pilot", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE participants SET is_pilot = (origin <> 'real')")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.alter_column("is_pilot", server_default=None)
        batch_op.drop_index(batch_op.f("ix_participants_origin"))
        for name in ("screen_h", "screen_w", "viewport_h", "viewport_w", "device_class", "origin"):
            batch_op.drop_column(name)
