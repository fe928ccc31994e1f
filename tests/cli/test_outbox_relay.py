"""`tidings outbox relay MODULE:bus`: the relay of a bus's outbox alone (no handler runs), with
progress lines, stopped cleanly by SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support import Children, wait_for
from tidings import Bus, Event

from .conftest import cli

APP = """
import os

from tidings import Bus

bus = Bus(os.environ["BROKER"], name="billing", database=os.environ["APP_DB"], outbox_poll=0.2)


@bus.subscribe("invoice.issued", group="mail")
async def mail(event: dict) -> None:
    raise AssertionError("the relay runs no handler")
"""


class InvoiceIssued(Event, type="invoice.issued"):
    n: int


async def stage(database: str, count: int) -> list[str]:
    """Commit `count` invoices to the outbox (from a bus that is not started)."""
    bus = Bus("memory://stager", name="billing", database=database)
    async with AsyncSession(bus.database) as session, session.begin():
        ids = [await bus.publish(InvoiceIssued(n=n), session=session) for n in range(count)]
    await bus.close()
    return ids


def groups_and_outbox(app: str) -> dict[str, object]:
    result = cli("queues", "--app", app, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_relay_sends_what_was_committed_and_stops_cleanly(
    tmp_path: Path, children: Children, stop: signal.Signals
) -> None:
    # Given an application with a database, and its relay running alone
    module = f"billing_{uuid.uuid4().hex[:12]}"  # modules stay imported in this process
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    database = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    env = {"BROKER": broker, "APP_DB": database}
    relay = children.tidings(
        "outbox", "relay", f"{module}:bus", "--progress-interval", "0.2", cwd=tmp_path, **env
    )
    wait_for(lambda: "relay started" in relay.log or relay.proc.poll() is not None)
    assert "relay started: bus 'billing'" in relay.log, relay.log

    # When the application commits five invoices to its outbox
    asyncio.run(stage(database, 5))

    # Then the relay sends them to the group (which no handler takes from here)
    app = f"{tmp_path / module}.py:bus"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)

        def sent() -> bool:
            data = groups_and_outbox(app)
            outbox, groups = data["outbox"], data["groups"]
            assert isinstance(outbox, dict) and isinstance(groups, list)
            return outbox["pending"] == 0 and groups[0]["ready"] == 5

        wait_for(sent, what="the five invoices in group mail")
    wait_for(lambda: "sent 5 in" in relay.log, what="a progress line")
    assert "0 pending, 0 dead" in relay.log

    # And a stop signal ends it with status 0
    relay.signal(stop)
    relay.expect_exit(0, 20)
    assert "relay stopped" in relay.log
    assert "Traceback" not in relay.log and "AssertionError" not in relay.log


def test_a_bus_without_a_database_has_no_relay(tmp_path: Path) -> None:
    plain = tmp_path / f"plain_{uuid.uuid4().hex[:12]}.py"  # modules stay imported here
    plain.write_text("from tidings import Bus\n\nbus = Bus('memory://')\n")
    result = cli("outbox", "relay", f"{plain}:bus")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "has no outbox" in line
