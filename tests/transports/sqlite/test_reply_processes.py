"""Reply inboxes across processes on one embedded-broker file: replies from another process
wake the inbox at once, and the inbox of a process killed without closing it expires."""

from __future__ import annotations

import asyncio
import re
import signal
import textwrap
from pathlib import Path

import pytest

import tidings
from tests.support import Child, Children, eventually
from tidings.transports.sqlite import sqlite_path

from .conftest import OpenTransport, Replies, reply, rows

NO_POLL = 60.0  # an inbox that only a wake-up can reach within a test's deadline

SRC = str(Path(tidings.__file__).resolve().parent.parent)
ADDRESS_LINE = re.compile(r"^address (\S+)\n", re.MULTILINE)

_SENDER = """
import asyncio, os
from tidings.transports import OutgoingMessage, TransportOptions
from tidings.transports.sqlite import SqliteTransport

async def main():
    async with SqliteTransport(os.environ["DB_URL"], TransportOptions()) as t:
        for n in range(int(os.environ["COUNT"])):
            body = f'{{"n": {n}}}'.encode()
            await t.send_reply(
                os.environ["ADDRESS"], OutgoingMessage(id=f"reply-{n}", type="x.y", body=body)
            )

asyncio.run(main())
"""

# An inbox owner that never takes its replies in time (no wake-ups, a poll once a minute),
# so replies wait in the file until the inbox goes.
_OWNER = """
import asyncio, os
from tidings.transports import TransportOptions
from tidings.transports.sqlite import SqliteOptions, SqliteTransport

async def main():
    options = TransportOptions(lease=float(os.environ["LEASE"]))
    t = SqliteTransport(os.environ["DB_URL"], options, SqliteOptions(wake=False, poll_interval=60))
    await t.open()
    inbox = await t.open_replies(lambda delivery: None)
    print("address", inbox.address, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def python(children: Children, code: str, db_url: str, **env: str) -> Child:
    return children.start(
        "python", "-c", textwrap.dedent(code), DB_URL=db_url, PYTHONPATH=SRC, **env
    )


@pytest.mark.slow
async def test_replies_from_another_process_wake_the_inbox_and_arrive_in_order(
    open_transport: OpenTransport, db_url: str, children: Children
) -> None:
    # Given an inbox that only a wake-up can reach in time
    owner = await open_transport(poll_interval=NO_POLL)
    replies = Replies()
    inbox = await owner.open_replies(replies)

    # When another process sends it twenty replies
    sender = python(children, _SENDER, db_url, ADDRESS=inbox.address, COUNT="20")

    # Then they all arrive, in the order sent
    await eventually(lambda: len(replies.got) == 20, timeout=15.0, what="twenty replies")
    assert replies.ids == [f"reply-{n}" for n in range(20)]
    await asyncio.to_thread(sender.expect_exit, 0)


@pytest.mark.slow
@pytest.mark.parametrize("sweeper", ["an inbox's heartbeat", "the clean-up"])
async def test_the_inbox_of_a_killed_process_goes_after_a_lease_with_its_replies(
    open_transport: OpenTransport, db_url: str, children: Children, sweeper: str
) -> None:
    # Given this process sweeping the file: with its own inbox (renewed every third of its
    # two-second lease), or with a clean-up every 0.2 s and no inbox
    if sweeper == "the clean-up":
        transport, own = await open_transport(cleanup_interval=0.2), None
    else:
        transport = await open_transport(lease=2.0)
        own = await transport.open_replies(mine := Replies())
    ours = 0 if own is None else 1

    # And another process's inbox (lease two seconds) with a reply waiting in it
    db = sqlite_path(db_url)
    owner = python(children, _OWNER, db_url, LEASE="2.0")
    # (a whole line: the child's print reaches the log in pieces)
    await eventually(lambda: ADDRESS_LINE.search(owner.log), timeout=15.0, what="its inbox")
    match = ADDRESS_LINE.search(owner.log)
    assert match is not None
    address = match[1]
    await transport.send_reply(address, reply(1))
    assert (rows(db, "inboxes"), rows(db, "replies")) == (ours + 1, 1)

    # When that process is killed without closing anything
    owner.signal(signal.SIGKILL)
    assert await asyncio.to_thread(owner.wait) == -signal.SIGKILL

    # Then its inbox is removed with the reply in it once its lease has passed
    await eventually(lambda: rows(db, "inboxes") == ours, timeout=15.0, what="the sweep")
    assert rows(db, "replies") == 0

    # And replies to it are dropped without an error from then on
    await transport.send_reply(address, reply(2))
    assert rows(db, "replies") == 0

    # And this process's inbox, older than its lease by now, still lives and receives
    if own is not None:
        await transport.send_reply(own.address, reply(3))
        await eventually(lambda: mine.got, what="the reply to the live inbox")
        assert mine.ids == ["reply-3"]
