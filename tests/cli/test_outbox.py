"""`tidings outbox list|retry|purge --app MODULE:bus`: what waits in an application's outbox and
what the relay gave up on, read from the application's database without starting its bus;
dead messages named by event id or a unique prefix of it."""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401
from tests.servers import free_port
from tests.support import eventually
from tidings import Bus, Context, Event
from tidings.testing import ManualClock
from tidings.transports import OutgoingMessage, split_options
from tidings.transports.memory import MemoryOptions, MemoryTransport

from .conftest import cli, create_broker


class InvoiceIssued(Event, type="invoice.issued"):
    n: int


class Nobody(Event, type="nobody.listens"):
    n: int


def app_file(tmp_path: Path, broker: str, database: str | None, *, mail: bool = False) -> str:
    """An application whose bus ``billing`` has `database` (none when None); its ``--app``
    target. With `mail`, group ``mail`` takes invoice.issued. Its module name is its own
    (modules stay imported in this process)."""
    path = tmp_path / f"billing_{uuid.uuid4().hex[:12]}.py"
    code = f"""
        from tidings import Bus

        bus = Bus({broker!r}, name="billing", database={database!r}, outbox_poll=0.2)
        """
    if mail:
        code += """
        @bus.subscribe("invoice.issued", group="mail")
        async def mail(event: dict) -> None:
            pass
        """
    path.write_text(textwrap.dedent(code))
    return f"{path}:bus"


async def _dead(database: str, ids: list[str]) -> None:
    """Messages the relay gives up on (nobody subscribes to them), with these ids."""
    bus = Bus(f"memory://dead-{uuid.uuid4().hex[:8]}", name="billing", database=database)
    async with bus:
        async with AsyncSession(bus.database) as session, session.begin():
            for n, event_id in enumerate(ids):
                await bus.publish(Nobody(n=n), key="k", id=event_id, session=session)

        async def all_dead() -> bool:
            return (await bus.outbox_stats()).dead == len(ids)

        await eventually(all_dead, what="the relay to give up on them")


async def _pending(database: str, ids: list[str]) -> None:
    """Messages staged while no relay runs (the bus is not started)."""
    bus = Bus("memory://nowhere", name="billing", database=database)
    async with AsyncSession(bus.database) as session, session.begin():
        for n, event_id in enumerate(ids):
            await bus.publish(InvoiceIssued(n=n), key=f"c-{n}", id=event_id, session=session)
    await bus.close()


def outbox(tmp_path: Path, *, dead: list[str], pending: list[str]) -> str:
    """An application database holding these dead and pending messages; its URL."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    asyncio.run(_dead(database, dead))
    asyncio.run(_pending(database, pending))
    return database


def idle_outbox(bus: Bus) -> Callable[[], Awaitable[bool]]:
    async def idle() -> bool:
        return (await bus.outbox_stats()).idle

    return idle


def listed(app: str, *args: str) -> list[dict[str, object]]:
    result = cli("outbox", "list", "--app", app, "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


DEAD = ["3f9c2a81d4e0-dead-one", "77aa0b1c2d3e-dead-two"]
PENDING = ["pending-invoice-0", "pending-invoice-1"]


def test_list_shows_the_pending_messages_then_the_dead_ones_with_their_reason(
    tmp_path: Path,
) -> None:
    # Given an outbox with two messages waiting and two the relay gave up on
    database = outbox(tmp_path, dead=DEAD, pending=PENDING)
    app = app_file(tmp_path, "memory://", database)

    # When they are listed, as a table and as JSON
    table = cli("outbox", "list", "--app", app)
    dead_table = cli("outbox", "list", "--app", app, "--dead")

    # Then the table shows each id whole, its type, key and age, and what is dead why
    assert table.exit_code == 0, table.output
    for event_id in PENDING:
        assert event_id in table.stdout
    assert "invoice.issued" in table.stdout and "c-1" in table.stdout
    assert "2 pending message(s) in the outbox of bus 'billing'" in table.stdout
    assert all(event_id not in table.stdout for event_id in DEAD)
    assert dead_table.exit_code == 0, dead_table.output
    assert "unroutable: no group subscribes to 'nobody.listens'" in dead_table.stdout
    assert "2 dead message(s)" in dead_table.stdout
    pending = listed(app)
    assert [(r["id"], r["state"], r["status"], r["attempts"]) for r in pending] == [
        (PENDING[0], "pending", "due", 0),
        (PENDING[1], "pending", "due", 0),
    ]
    dead = listed(app, "--dead")
    assert [(r["id"], r["type"], r["key"], r["state"]) for r in dead] == [
        (DEAD[0], "nobody.listens", "k", "dead"),
        (DEAD[1], "nobody.listens", "k", "dead"),
    ]
    assert {r["reason"] for r in dead} == {"unroutable: no group subscribes to 'nobody.listens'"}
    assert [r["id"] for r in listed(app, "--dead", "--limit", "1", "--offset", "1")] == [DEAD[1]]


def test_retry_by_prefix_makes_a_dead_message_pending_and_a_relay_sends_it(
    tmp_path: Path,
) -> None:
    # Given two dead messages
    database = outbox(tmp_path, dead=DEAD, pending=[])
    app = app_file(tmp_path, "memory://", database)

    # When one is retried by a prefix of its id
    result = cli("outbox", "retry", "--app", app, "--id", DEAD[0][:8])

    # Then it is pending again, attempts reset; the other stays dead
    assert result.exit_code == 0, result.output
    assert "retried 1 dead message(s) in the outbox of bus 'billing'" in result.stdout
    [retried] = listed(app)
    assert (retried["id"], retried["attempts"], retried["status"]) == (DEAD[0], 0, "due")
    assert [r["id"] for r in listed(app, "--dead")] == [DEAD[1]]

    # And a relay whose bus now has a group for it sends it
    received: list[str] = []

    async def relay() -> None:
        bus = Bus(f"memory://r-{uuid.uuid4().hex[:8]}", name="billing", database=database)

        @bus.subscribe("nobody.listens", group="late")
        async def late(event: Nobody, ctx: Context) -> None:
            received.append(ctx.event_id)

        async with bus:
            await eventually(lambda: received, what="the retried message")
            await eventually(idle_outbox(bus), what="the row marked sent")

    asyncio.run(relay())
    assert received == [DEAD[0]]


def test_retry_all_and_purge(tmp_path: Path) -> None:
    database = outbox(tmp_path, dead=DEAD, pending=PENDING)
    app = app_file(tmp_path, "memory://", database)

    purged = cli("outbox", "purge", "--app", app, "--id", DEAD[1])
    assert purged.exit_code == 0, purged.output
    assert "purged 1 dead message(s) from the outbox of bus 'billing'" in purged.stdout
    assert [r["id"] for r in listed(app, "--dead")] == [DEAD[0]]

    retried = cli("outbox", "retry", "--app", app, "--all")
    assert retried.exit_code == 0, retried.output
    assert "retried 1 dead message(s)" in retried.stdout
    assert listed(app, "--dead") == []
    assert [r["id"] for r in listed(app)] == [DEAD[0], *PENDING]


def test_purge_all_deletes_the_dead_messages_only(tmp_path: Path) -> None:
    database = outbox(tmp_path, dead=DEAD, pending=PENDING)
    app = app_file(tmp_path, "memory://", database)

    result = cli("outbox", "purge", "--app", app, "--all", "--yes")

    assert result.exit_code == 0, result.output
    assert "purged 2 dead message(s)" in result.stdout
    assert listed(app, "--dead") == []
    assert [r["id"] for r in listed(app)] == PENDING


def test_an_ambiguous_prefix_exits_2_naming_the_candidates(tmp_path: Path) -> None:
    database = outbox(tmp_path, dead=["order-000001", "order-000002"], pending=[])
    app = app_file(tmp_path, "memory://", database)

    result = cli("outbox", "retry", "--app", app, "--id", "order-")

    assert result.exit_code == 2
    assert "'order-' is the start of 2 dead messages" in result.stderr
    assert "order-000001" in result.stderr and "order-000002" in result.stderr
    assert len(listed(app, "--dead")) == 2  # nothing retried


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("nothing-like-it", "no dead message 'nothing-like-it'"),
        ("3f9c", "at least 6 characters"),
        (PENDING[0], "no dead message 'pending-invoice-0'"),  # pending, not dead
    ],
)
def test_an_id_that_names_no_dead_message_is_one_error_line(
    tmp_path: Path, given: str, message: str
) -> None:
    database = outbox(tmp_path, dead=DEAD, pending=PENDING)
    app = app_file(tmp_path, "memory://", database)

    result = cli("outbox", "purge", "--app", app, "--id", given)

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert len(listed(app, "--dead")) == 2


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    database = outbox(tmp_path, dead=DEAD, pending=[])
    app = app_file(tmp_path, "memory://", database)
    assert cli("outbox", "retry", "--app", app).exit_code == 2
    assert cli("outbox", "purge", "--app", app, "--all", "--id", DEAD[0]).exit_code == 2
    assert cli("outbox", "list").exit_code == 2  # --app is required
    assert len(listed(app, "--dead")) == 2


def test_an_app_without_an_outbox_or_its_database_is_one_error_line(tmp_path: Path) -> None:
    # A bus with no database
    plain = app_file(tmp_path, "memory://", None)
    result = cli("outbox", "list", "--app", plain)
    assert result.exit_code == 1
    assert "has no outbox" in result.stderr and "Bus(database=...)" in result.stderr

    # A SQLite database that does not exist: said, and not created
    missing = tmp_path / "missing.db"
    gone = app_file(tmp_path, "memory://", f"sqlite+aiosqlite:///{missing}")
    result = cli("outbox", "list", "--app", gone, "--dead")
    assert result.exit_code == 1
    assert f"no database file at {missing}" in result.stderr
    assert not missing.exists()

    # A database without the tables: said, and none made
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    bare = app_file(tmp_path, "memory://", f"sqlite+aiosqlite:///{empty}")
    result = cli("outbox", "retry", "--app", bare, "--all")
    assert result.exit_code == 1
    assert "has no tidings_outbox or tidings_inbox table" in result.stderr
    assert "tidings.outbox:migrations" in result.stderr
    assert empty.read_bytes() == b""


def test_queues_shows_the_outbox_of_the_app(tmp_path: Path) -> None:
    # Given an app on an embedded broker whose outbox holds two pending and two dead
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    database = outbox(tmp_path, dead=DEAD, pending=PENDING)
    app = app_file(tmp_path, broker, database, mail=True)

    async def declare() -> None:
        bus = Bus(broker, name="billing", consume=False)

        @bus.subscribe("invoice.issued", group="mail")
        async def mail(event: dict[str, object]) -> None:
            pass

        async with bus:
            pass

    asyncio.run(declare())

    # When the queues are listed with --app
    table = cli("queues", "--app", app)
    as_json = cli("queues", "--app", app, "--json")

    # Then an outbox line follows the groups, and JSON has the outbox beside the groups
    assert table.exit_code == 0, table.output
    assert "mail" in table.stdout
    assert "outbox: 2 pending, 2 dead, oldest" in table.stdout
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert [g["group"] for g in data["groups"]] == ["mail"]
    assert {k: data["outbox"][k] for k in ("pending", "dead", "idle")} == {
        "pending": 2,
        "dead": 2,
        "idle": False,
    }
    assert data["outbox"]["oldest_age"] >= 0
    # Nothing was relayed by looking: the two are still pending
    assert len(listed(app)) == 2


def test_queues_without_an_outbox_prints_the_list_of_groups(tmp_path: Path) -> None:
    broker = create_broker(f"sqlite:///{tmp_path / 'broker.db'}")
    app = app_file(tmp_path, broker, None)
    result = cli("queues", "--app", app, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


class Refusing(MemoryTransport):
    """A memory broker that refuses every publish while `refuse` is set."""

    refuse = True

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[bool]:
        if Refusing.refuse:
            raise RuntimeError("refused (test)")
        return await super().publish(messages)


def refusing(url: str, options: Mapping[str, Any]) -> Refusing:
    common, _ = split_options(options, MemoryOptions, transport="memory")
    return Refusing(url, common)


@pytest.mark.postgres
async def test_retry_wakes_the_relays_through_postgres(
    tmp_path: Path,
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    # Given a relay that polls once a minute, on a clock years behind this host's (another
    # host's relay), and a message it gave up on
    database = await postgres_server.create_database()
    received: list[int] = []
    Refusing.refuse = True
    bus = Bus(
        f"memory://{uuid.uuid4().hex[:8]}",
        name="billing",
        database=database,
        transport=refusing,
        outbox_attempts=1,
        outbox_poll=60.0,
        clock=ManualClock(),
    )

    @bus.subscribe("invoice.issued", group="mail")
    async def mail(event: InvoiceIssued) -> None:
        received.append(event.n)

    async with bus:
        async with AsyncSession(bus.database) as session, session.begin():
            await bus.publish(InvoiceIssued(n=1), id="refused-invoice-1", session=session)

        async def dead() -> bool:
            return (await bus.outbox_stats()).dead == 1

        await eventually(dead, what="the message to die")
        Refusing.refuse = False

        # When it is retried from the command line
        app = app_file(tmp_path, "memory://", database)
        result = await asyncio.to_thread(cli, "outbox", "retry", "--app", app, "--id", "refused")

        # Then the relay is woken at once (NOTIFY) and sends it: due whatever its clock says
        assert result.exit_code == 0, result.output
        await eventually(lambda: received == [1], what="the retried message")
        await eventually(idle_outbox(bus), what="the row marked sent")


def test_a_database_that_cannot_be_reached_is_one_error_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    database = f"postgresql+asyncpg://app:s3cret@127.0.0.1:{port}/shop"
    app = app_file(tmp_path, "memory://", database)

    result = cli("outbox", "list", "--app", app)

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: database postgresql+asyncpg://app:***@127.0.0.1:{port}/shop")
    assert "s3cret" not in result.output
