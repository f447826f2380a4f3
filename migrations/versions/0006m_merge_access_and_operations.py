"""merge access (0005, after the server clock 0004) and study operations (0006), made side by side

Revision ID: 0006m
Revises: 0005, 0006
Create Date: 2026-12-03 11:55:00
"""

from __future__ import annotations

revision = "0006m"
down_revision = ("0005", "0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # nothing to change: the two branches touch different columns


def downgrade() -> None:
    pass
