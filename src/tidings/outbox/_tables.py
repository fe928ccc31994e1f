"""The outbox, inbox and saga tables, in the application's database.

All carry the bus name, so several buses (or services) can share one database. Times are
epoch seconds from the bus's clock (floats), like every time tidings stores.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "INBOX",
    "OUTBOX",
    "PENDING",
    "SAGAS",
    "SENT",
    "DEAD",
    "inbox",
    "metadata",
    "outbox",
    "sagas",
]

OUTBOX = "tidings_outbox"
INBOX = "tidings_inbox"
SAGAS = "tidings_sagas"

# The states of an outbox row.
PENDING = "pending"
SENT = "sent"
DEAD = "dead"

metadata = MetaData()
"""The `MetaData` holding ``tidings_outbox``, ``tidings_inbox`` and ``tidings_sagas``
(Alembic's ``target_metadata`` may include it)."""

# An integer primary key that autoincrements on PostgreSQL (BIGINT identity) and SQLite
# (INTEGER PRIMARY KEY is the rowid): its order is the staging order the relay keeps.
_Id = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    OUTBOX,
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("bus", String(200), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("type", String(255), nullable=False),
    Column("key", String(255), nullable=True),
    Column("group_name", String(255), nullable=True, comment="a command's target group"),
    Column("body", LargeBinary, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("headers", Text, nullable=False, comment="JSON object of transport headers"),
    Column("delay", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),
    Column("available_at", Float, nullable=False),
    Column("state", String(16), nullable=False, default=PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(100), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("sent_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_tidings_outbox_bus_state_id", "bus", "state", "id"),
    Index("ix_tidings_outbox_bus_key_id", "bus", "key", "id"),
    comment="Messages staged in application transactions, sent by the tidings relay",
)

inbox = Table(
    INBOX,
    metadata,
    Column("bus", String(200), primary_key=True),
    Column("group_name", String(255), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("processed_at", Float, nullable=False),
    Index("ix_tidings_inbox_bus_processed_at", "bus", "processed_at"),
    comment="Events handled by transactional tidings handlers (one row per group and event)",
)

sagas = Table(
    SAGAS,
    metadata,
    Column("bus", String(200), primary_key=True),
    Column("saga", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("version", Integer, nullable=False, comment="bumped by every transition"),
    Column("status", String(100), nullable=False),
    Column("state", Text, nullable=False, comment="JSON object of the saga's fields"),
    Column("timeouts", Text, nullable=False, comment="JSON object of pending timeouts by token"),
    Column("history", Text, nullable=False, comment="JSON list of the last transitions"),
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("completed_at", Float, nullable=True),
    Index("ix_tidings_sagas_bus_saga_status", "bus", "saga", "status"),
    Index("ix_tidings_sagas_bus_completed_at", "bus", "completed_at"),
    comment="Instances of tidings sagas (one row per saga and key)",
)
