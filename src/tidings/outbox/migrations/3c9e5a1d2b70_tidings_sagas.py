"""tidings: the saga table

Revision ID: 3c9e5a1d2b70
Revises: 7f1d2c3b4a50
Create Date: 2025-02-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3c9e5a1d2b70"
down_revision = "7f1d2c3b4a50"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tidings_sagas",
        sa.Column("bus", sa.String(200), primary_key=True),
        sa.Column("saga", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False, comment="bumped by every transition"),
        sa.Column("status", sa.String(100), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, comment="JSON object of the saga's fields"),
        sa.Column(
            "timeouts",
            sa.Text(),
            nullable=False,
            comment="JSON object of pending timeouts by token",
        ),
        sa.Column(
            "history", sa.Text(), nullable=False, comment="JSON list of the last transitions"
        ),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("completed_at", sa.Float(), nullable=True),
        comment="Instances of tidings sagas (one row per saga and key)",
    )
    op.create_index("ix_tidings_sagas_bus_saga_status", "tidings_sagas", ["bus", "saga", "status"])
    op.create_index("ix_tidings_sagas_bus_completed_at", "tidings_sagas", ["bus", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_tidings_sagas_bus_completed_at", table_name="tidings_sagas")
    op.drop_index("ix_tidings_sagas_bus_saga_status", table_name="tidings_sagas")
    op.drop_table("tidings_sagas")
