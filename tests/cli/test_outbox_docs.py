"""The ``tidings outbox`` command lines of the docs (the outbox guide, the CLI reference) run as
shown, against the guide's ``billing`` application: they need an application with a database,
which the docs' sandbox (the Getting started shop) has not, so `tests.docs.commands` names this
test for them."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from tests.docs.commands import ELSEWHERE
from tests.support import Children, wait_for
from tidings import Bus, Event

# The guide's application: its bus on an embedded broker, its outbox in billing-app.db
BILLING = """
from tidings import Bus

bus = Bus("sqlite:///billing.db", name="billing", database="sqlite+aiosqlite:///billing-app.db")


@bus.subscribe("invoice.issued", group="mail")
async def mail(event: dict) -> None:
    pass
"""
DEAD_ID = "3f9c2a81d4e0-4b7e-9c21-5d0a6f3e8b12"  # the id the docs retry by its prefix

RELAY = "tidings outbox relay billing:bus"
LIST = "tidings outbox list --app billing:bus"
LIST_DEAD = "tidings outbox list --app billing:bus --dead --json"
RETRY = "tidings outbox retry --app billing:bus --id 3f9c2a81d4e0"
PURGE = "tidings outbox purge --app billing:bus --all --yes"
QUEUES = "tidings queues --app billing:bus"


class Nobody(Event, type="nobody.listens"):
    n: int


class InvoiceIssued(Event, type="invoice.issued"):
    n: int


async def stage(database: str) -> None:
    """A message the relay will give up on (nobody takes it), and an invoice."""
    bus = Bus("memory://stager", name="billing", database=database)
    async with AsyncSession(bus.database) as session, session.begin():
        await bus.publish(Nobody(n=1), id=DEAD_ID, session=session)
        await bus.publish(InvoiceIssued(n=1), session=session)
    await bus.close()


def shell(line: str, cwd: Path) -> str:
    """Run `line` as a user types it in `cwd`; fail unless it exits 0; its stdout."""
    words = shlex.split(line)
    assert words[0] == "tidings"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    done = subprocess.run(
        [sys.executable, "-m", "tidings", *words[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{line} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_outbox_commands_of_the_docs_run(tmp_path: Path, children: Children) -> None:
    this = f"tests/cli/test_outbox_docs.py::{test_the_outbox_commands_of_the_docs_run.__name__}"
    assert {line for line, test in ELSEWHERE.items() if test == this} == {
        RELAY,
        LIST,
        LIST_DEAD,
        RETRY,
        PURGE,
        QUEUES,
    }
    (tmp_path / "billing.py").write_text(textwrap.dedent(BILLING))

    # The relay, running; it sends the invoice and gives up on the other message
    relay = children.tidings(*shlex.split(RELAY)[1:], cwd=tmp_path)
    wait_for(lambda: "relay started" in relay.log or relay.proc.poll() is not None)
    assert "relay started" in relay.log, relay.log
    asyncio.run(stage(f"sqlite+aiosqlite:///{tmp_path / 'billing-app.db'}"))
    wait_for(lambda: "is dead" in relay.log, what="the relay to give up on a message")
    relay.signal(signal.SIGTERM)
    relay.expect_exit(0, 30)

    # What waits (nothing), what is dead and why, retried, purged, and the queues
    assert "no pending messages in the outbox of bus 'billing'" in shell(LIST, tmp_path)
    [dead] = json.loads(shell(LIST_DEAD, tmp_path))
    assert dead["id"] == DEAD_ID and dead["reason"].startswith("unroutable")
    assert "retried 1 dead message(s)" in shell(RETRY, tmp_path)
    assert DEAD_ID in shell(LIST, tmp_path)
    assert "purged 0 dead message(s)" in shell(PURGE, tmp_path)
    queues = shell(QUEUES, tmp_path)
    assert "mail" in queues and "outbox: 1 pending, 0 dead" in queues
