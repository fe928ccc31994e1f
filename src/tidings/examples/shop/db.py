"""The shop's own tables, in the application's database (the bus's ``database``, where the
outbox, the inbox and the checkout sagas live too).

Each service owns its tables and writes them only in its transactional handlers, so a
write, the event's inbox row and what the handler publishes commit together. In a real
deployment each service would have a database of its own; one database keeps the example
small. The `audit` reads them all after a run and checks what must hold whatever crashed.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tidings.outbox import metadata as tidings_metadata
from tidings.sagas import list_instances

from ..scenario import Audit

__all__ = [
    "INITIAL_STOCK",
    "SKUS",
    "audit",
    "charges",
    "ensure_tables",
    "tune",
    "metadata",
    "orders",
    "reservations",
    "reset",
    "shipments",
    "stock",
    "voids",
]

SKUS = ("sku-1", "sku-2", "sku-3", "sku-4", "sku-5")
INITIAL_STOCK = 100_000
"""Units of each SKU the warehouse starts with (plenty: no order waits for stock)."""

metadata = MetaData()

orders = Table(
    "shop_orders",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("customer", String(40), nullable=False),
    Column("total", Numeric(12, 2), nullable=False),
    Column("sku", String(40), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("outcome", String(20), nullable=True),  # completed or cancelled, once known
)
stock = Table(
    "shop_stock",
    metadata,
    Column("sku", String(40), primary_key=True),
    Column("available", Integer, nullable=False),
)
reservations = Table(
    "shop_reservations",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("sku", String(40), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("released", Boolean, nullable=False, default=False),
)
# No unique key on the order: a second charge of an order would be a second row, which the
# audit looks for (the inbox is what prevents it).
charges = Table(
    "shop_charges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(40), nullable=False, index=True),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("refunded", Boolean, nullable=False, default=False),
)
voids = Table(  # refunds that found no charge: a charge that comes later is refused
    "shop_voids",
    metadata,
    Column("order_id", String(40), primary_key=True),
)
shipments = Table(
    "shop_shipments",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("carrier", String(20), nullable=False),
)

logger = logging.getLogger(__name__)

_ready: set[str] = set()


def tune(engine: AsyncEngine) -> None:
    """On SQLite, let the readers and writers of several processes work at once
    (write-ahead logging), make every connection of `engine` wait for the write lock
    instead of failing, and commit without an fsync of its own (with write-ahead logging
    every commit survives a process crash; only a power cut can lose the last ones)."""
    if engine.dialect.name != "sqlite":
        return

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        try:
            cursor.execute("PRAGMA journal_mode = WAL")  # kept by the file once set
        except Exception:  # another connection holds it now: a later one sets it
            logger.debug("could not switch %s to write-ahead logging yet", engine.url)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    event.listen(engine.sync_engine, "connect", pragmas)


async def ensure_tables(session: AsyncSession) -> None:
    """Create the shop's tables in `session`'s transaction if this process has not seen
    them yet (a worker started with ``tidings run`` before any demo)."""
    url = str(session.get_bind().engine.url)
    if url in _ready:
        return
    await session.run_sync(lambda s: metadata.create_all(s.connection(), checkfirst=True))
    _ready.add(url)


async def reset(engine: AsyncEngine, bus: str) -> None:
    """Empty the shop (a new run): fresh tables, full stock, no checkout of bus `bus`."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
        await conn.execute(stock.insert(), [{"sku": s, "available": INITIAL_STOCK} for s in SKUS])
        sagas = tidings_metadata.tables["tidings_sagas"]
        await conn.execute(delete(sagas).where(sagas.c.bus == bus, sagas.c.saga == "checkout"))


async def _rows(engine: AsyncEngine, query: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(query))


async def audit(engine: AsyncEngine, bus: str) -> Audit:
    """Count the outcomes and check the invariants: every order completed or compensated,
    no order charged twice, no charge without an order, every charge of a compensated
    order refunded (and none of a completed one), stock conserved."""
    placed = {r.order_id: r for r in await _rows(engine, select(orders))}
    sagas = {s.key: s for s in await list_instances(engine, "checkout", bus=bus, limit=10**9)}
    ended = {k: s.status for k, s in sagas.items() if s.completed}
    completed = {k for k, status in ended.items() if status == "completed"}
    compensated = {k for k, status in ended.items() if status == "compensated"}
    per_order = await _rows(
        engine, select(charges.c.order_id, func.count()).group_by(charges.c.order_id)
    )
    kept_charges = select(charges.c.order_id).where(~charges.c.refunded)
    unrefunded = {r.order_id for r in await _rows(engine, kept_charges)}
    held = {r.order_id: r for r in await _rows(engine, select(reservations))}
    available = {r.sku: r.available for r in await _rows(engine, select(stock))}
    kept = {sku: 0 for sku in available}
    for r in held.values():
        if not r.released:
            kept[r.sku] = kept.get(r.sku, 0) + r.quantity
    invariants = {
        "every order completed or compensated": set(placed) == completed | compensated,
        "no order charged twice": all(n == 1 for _, n in per_order),
        "no charge without an order": {o for o, _ in per_order} <= set(placed),
        "compensated orders refunded, completed ones charged": (
            not (unrefunded & compensated) and unrefunded >= completed
        ),
        "stock conserved": (
            all(available.get(sku, 0) + n == INITIAL_STOCK for sku, n in kept.items())
            and all(held[o].released for o in compensated if o in held)
            and all(o in held and not held[o].released for o in completed)
        ),
    }
    counts = {"orders": len(placed), "completed": len(completed), "compensated": len(compensated)}
    return Audit(counts, invariants)


def money(value: Any) -> Decimal:
    """A stored amount as a `Decimal` with cents."""
    return Decimal(value).quantize(Decimal("0.01"))
