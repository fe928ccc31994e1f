"""tidings: the outbox and inbox tables

Revision ID: 7f1d2c3b4a50
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7f1d2c3b4a50"
down_revision = None
branch_labels = ("tidings",)
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tidings_outbox",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("bus", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("group_name", sa.String(255), nullable=True, comment="a command's target group"),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False, comment="JSON object of transport headers"),
        sa.Column("delay", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("available_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        comment="Messages staged in application transactions, sent by the tidings relay",
    )
    op.create_index("ix_tidings_outbox_bus_state_id", "tidings_outbox", ["bus", "state", "id"])
    op.create_index("ix_tidings_outbox_bus_key_id", "tidings_outbox", ["bus", "key", "id"])
    op.create_table(
        "tidings_inbox",
        sa.Column("bus", sa.String(200), primary_key=True),
        sa.Column("group_name", sa.String(255), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", sa.Float(), nullable=False),
        comment="Events handled by transactional tidings handlers (one row per group and event)",
    )
    op.create_index("ix_tidings_inbox_bus_processed_at", "tidings_inbox", ["bus", "processed_at"])


def downgrade() -> None:
    op.drop_index("ix_tidings_inbox_bus_processed_at", table_name="tidings_inbox")
    op.drop_table("tidings_inbox")
    op.drop_index("ix_tidings_outbox_bus_key_id", table_name="tidings_outbox")
    op.drop_index("ix_tidings_outbox_bus_state_id", table_name="tidings_outbox")
    op.drop_table("tidings_outbox")
