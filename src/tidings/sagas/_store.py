"""The saga table's operations: loading and saving an instance in a handler's transaction
(optimistic concurrency on its version), reading instances for the CLI, and deleting old
completed ones.

A save is one statement that writes the row only if nobody changed it since it was loaded:
an insert that does nothing when the key exists, an update guarded by the version it was
loaded with. It writes nothing when it loses, so the transition is simply computed again
from the row as it now is; on PostgreSQL (read committed) the next read sees the winner's
commit, and on SQLite the inbox row taken first holds the one write lock, so nobody races.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, delete, event, inspect, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .._exceptions import ConfigError
from ..outbox._tables import SAGAS, sagas
from ._context import PendingTimeout
from ._transition import SagaInstance

__all__ = ["SagaStore", "after_commit", "get_instance", "list_instances"]

_DELETE_BATCH = 1000


def _instance(row: Row[Any]) -> SagaInstance:
    timeouts = {
        token: PendingTimeout(str(t["type"]), float(t["due"]))
        for token, t in json.loads(row.timeouts).items()
    }
    return SagaInstance(
        key=row.key,
        version=row.version,
        status=row.status,
        state=json.loads(row.state),
        timeouts=timeouts,
        history=tuple(json.loads(row.history)),
        started_at=row.started_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
    )


def _values(instance: SagaInstance) -> dict[str, Any]:
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    return {
        "version": instance.version,
        "status": instance.status,
        "state": json.dumps(instance.state, **compact),  # type: ignore[arg-type]
        "timeouts": json.dumps(
            {t: v.to_json() for t, v in instance.timeouts.items()},
            **compact,  # type: ignore[arg-type]
        ),
        "history": json.dumps(list(instance.history), **compact),  # type: ignore[arg-type]
        "started_at": instance.started_at,
        "updated_at": instance.updated_at,
        "completed_at": instance.completed_at,
    }


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call `callback` once `session`'s transaction commits (never if it rolls back)."""
    event.listen(session.sync_session, "after_commit", lambda _s: callback(), once=True)


class SagaStore:
    """One bus's saga instances.

    Args:
        bus: the bus name (the rows' ``bus`` column).
        postgres: True on PostgreSQL, False on SQLite.
    """

    def __init__(self, bus: str, *, postgres: bool) -> None:
        self.bus = bus
        self._insert = postgresql.insert if postgres else sqlite.insert

    def _where(self, saga: str, key: str) -> list[Any]:
        return [sagas.c.bus == self.bus, sagas.c.saga == saga, sagas.c.key == key]

    # -- in a handler's transaction ---------------------------------------------------------

    async def load(self, session: AsyncSession, saga: str, key: str) -> SagaInstance | None:
        """The instance `key` of `saga` as committed (or as this transaction wrote it)."""
        found = (await session.execute(select(sagas).where(*self._where(saga, key)))).first()
        return None if found is None else _instance(found)

    async def save(self, session: AsyncSession, saga: str, instance: SagaInstance) -> bool:
        """Write `instance` (version n+1) if the row is still at version n (absent for
        n = 0); return False, having written nothing, when another transition won."""
        values = _values(instance)
        if instance.version == 1:
            row = {"bus": self.bus, "saga": saga, "key": instance.key, **values}
            statement: Any = self._insert(sagas).values(row).on_conflict_do_nothing()
        else:
            statement = (
                update(sagas)
                .where(*self._where(saga, instance.key), sagas.c.version == instance.version - 1)
                .values(values)
            )
        result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 1))

    # -- inspecting ------------------------------------------------------------------------

    async def list(
        self,
        engine: AsyncEngine,
        saga: str,
        *,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[SagaInstance]:
        """Instances of `saga`, oldest first; only those with `status` if given."""
        query = select(sagas).where(sagas.c.bus == self.bus, sagas.c.saga == saga)
        if status is not None:
            query = query.where(sagas.c.status == status)
        query = query.order_by(sagas.c.started_at, sagas.c.key).limit(limit).offset(offset)
        async with engine.connect() as conn:
            return [_instance(r) for r in await conn.execute(query)]

    async def get(self, engine: AsyncEngine, saga: str, key: str) -> SagaInstance | None:
        """The instance `key` of `saga`, or None."""
        async with engine.connect() as conn:
            found = (await conn.execute(select(sagas).where(*self._where(saga, key)))).first()
        return None if found is None else _instance(found)

    # -- cleaning up -----------------------------------------------------------------------

    async def delete_completed(self, engine: AsyncEngine, before: float) -> int:
        """Delete this bus's instances completed before `before`, in batches."""
        old = sagas.alias("old")
        batch = (
            select(old.c.bus, old.c.saga, old.c.key)
            .where(old.c.bus == self.bus, old.c.completed_at < before)
            .limit(_DELETE_BATCH)
        )
        key = (sagas.c.bus, sagas.c.saga, sagas.c.key)
        statement = delete(sagas).where(tuple_(*key).in_(batch))
        total = 0
        while True:
            async with engine.begin() as conn:
                n = (await conn.execute(statement)).rowcount
            total += n
            if n < _DELETE_BATCH:
                return total


async def list_instances(
    database: AsyncEngine,
    saga: str,
    *,
    bus: str = "tidings",
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SagaInstance]:
    """The instances of `saga` (its name) that bus `bus` keeps in `database`, oldest first
    (a `ConfigError` when the database has no saga table).

    Args:
        database: the bus's database (``bus.database``, an `AsyncEngine`).
        saga: the saga's name.
        bus: the bus's name (``bus.name``).
        status: only the instances with this status.
        limit: at most this many.
        offset: skip this many first.
    """
    await _check_table(database)
    store = SagaStore(bus, postgres=database.dialect.name == "postgresql")
    return await store.list(database, saga, status=status, limit=limit, offset=offset)


async def get_instance(
    database: AsyncEngine, saga: str, key: str, *, bus: str = "tidings"
) -> SagaInstance | None:
    """The instance `key` of `saga` that bus `bus` keeps in `database`, or None (see
    `list_instances`)."""
    await _check_table(database)
    store = SagaStore(bus, postgres=database.dialect.name == "postgresql")
    return await store.get(database, saga, key)


async def _check_table(database: AsyncEngine) -> None:
    async with database.connect() as conn:
        present = await conn.run_sync(lambda c: inspect(c).has_table(SAGAS))
    if not present:
        url = database.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"database {url!r} has no {SAGAS} table: no bus with sagas has started on it "
            "(or run the tidings migrations, version location 'tidings.outbox:migrations')"
        )
