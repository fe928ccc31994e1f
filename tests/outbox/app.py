"""What the outbox tests' applications share: their messages, an ``effects`` table written
by handlers, and a few ways to look at the application's database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings import Command, Event, Middleware
from tidings.outbox import metadata as tidings_metadata

app_metadata = MetaData()

effects = Table(
    "effects",
    app_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(100), nullable=False),
    Column("note", String(100), nullable=False),
)

OUTBOX = tidings_metadata.tables["tidings_outbox"]
INBOX = tidings_metadata.tables["tidings_inbox"]


class OrderPlaced(Event, type="order.placed"):
    order_id: str
    seq: int = 0


class OrderShipped(Event, type="order.shipped"):
    order_id: str


class Nobody(Event, type="nobody.listens"):
    note: str = ""


class ChargeCard(Command, type="payment.charge"):
    order_id: str


async def create_app_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(app_metadata.create_all)


async def count(engine: AsyncEngine, table: Table, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


class Outcomes(Middleware):
    """Records the outcome kind of every delivery, by event id."""

    def __init__(self) -> None:
        self.kinds: dict[str, list[str]] = {}

    async def consume(self, ctx, call_next):  # type: ignore[no-untyped-def]
        outcome = await call_next(ctx)
        self.kinds.setdefault(ctx.event_id, []).append(outcome.kind)
        return outcome

    def of(self, event_id: str) -> list[str]:
        return sorted(self.kinds.get(event_id, []))
