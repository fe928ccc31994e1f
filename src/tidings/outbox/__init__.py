"""The transactional outbox and inbox: exactly-once effects in the application's database.

Give the bus the application's database, and messages published in a transaction leave only
if it commits; a transactional handler's writes, its inbox row and what it publishes commit
together, so a duplicate delivery has no second effect:

```python
bus = Bus("sqlite:///tidings.db", database="sqlite+aiosqlite:///app.db")

async with AsyncSession(engine) as session, session.begin():
    session.add(Order(...))
    await bus.publish(OrderPlaced(...), session=session)   # sent by the relay after commit

@bus.subscribe("order.placed", group="billing", transactional=True)
async def bill(event: OrderPlaced, ctx: Context) -> None:
    ctx.session.add(Invoice(...))             # one transaction: inbox row, effects, publishes
    await ctx.publish(InvoiceIssued(...))
```

The tables (``tidings_outbox``, ``tidings_inbox``) are created when the bus starts, unless
``Bus(create_tables=False)``: then run the shipped Alembic migrations, a branch labelled
``tidings`` in the version location `MIGRATIONS` (add it to ``version_locations``), and
include `metadata` in the ``target_metadata`` of autogenerate.

Installing: ``pip install 'tidings[sql]'`` (SQLAlchemy, aiosqlite, Alembic), and
``'tidings[postgres]'`` for asyncpg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._stats import OutboxStats

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    metadata: MetaData

__all__ = ["MIGRATIONS", "OutboxStats", "metadata"]

MIGRATIONS = "tidings.outbox:migrations"
"""The Alembic version location of the outbox and inbox tables (branch label ``tidings``), in
``alembic.ini``: ``version_locations = %(here)s/alembic/versions tidings.outbox:migrations``
with ``path_separator = space`` (the location holds a colon); then ``alembic upgrade heads``."""


def __getattr__(name: str) -> Any:
    # `metadata` needs SQLAlchemy; importing the package (for `OutboxStats`) does not.
    if name == "metadata":
        from ._tables import metadata

        return metadata
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
