"""Files of an older schema are migrated in place, data intact: version 1 (the first release)
to the namespace ``tidings``, version 2 to request/reply; transports opening an old file at
once all succeed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import Inbox, eventually
from tidings.transports import GroupSpec
from tidings.transports.sqlite import sqlite_path

from .conftest import OpenTransport, Replies, message, reply
from .schema_v1 import build_v1_file, schema_version
from .schema_v2 import build_v2_file

CURRENT = 3
"""The schema version this release writes."""


async def test_a_version_1_file_is_migrated_with_its_data_to_the_namespace_tidings(
    open_transport: OpenTransport, db_url: str
) -> None:
    # Given a file written by version 1
    now = time.time()
    path = sqlite_path(db_url)
    build_v1_file(path, now)

    # When a transport of the default bus name opens it
    transport = await open_transport()

    # Then the file is of the current version and everything is there, in the namespace
    assert schema_version(path) == CURRENT
    stats = {s.group: (s.ready, s.dead) for s in await transport.stats()}
    assert stats == {"ledger": (1, 0), "orders": (1, 1)}
    [dead] = await transport.dlq_list("orders", 10, 0)
    assert (dead.entry_id, dead.id, dead.reason, dead.attempts) == (
        "d1",
        "e0",
        "failed 3 of 3 attempts",
        3,
    )
    store = transport.dedupe_store()
    assert await store.seen("orders", "e0")
    assert await store.claim("orders", "e0", 30.0) == "done"

    # And the pending deliveries come with their attempt, key, headers and first failure
    orders, ledger = Inbox(transport, auto_ack=True), Inbox(transport, auto_ack=True)
    await transport.consume(GroupSpec("orders", ("order.*",)), orders)
    await transport.consume(GroupSpec("ledger", ("entry.#",), concurrency=4, ordered=True), ledger)
    await eventually(lambda: orders.got and ledger.got, what="the migrated deliveries")
    [first] = orders.got
    assert (first.id, first.attempt, first.body, dict(first.headers)) == (
        "e1",
        2,
        b'{"n": 1}',
        {"x-h": "1"},
    )
    assert first.first_failed_at == now - 5
    assert [(d.id, d.key) for d in ledger.got] == [("e2", "k")]

    # And the retained log replays, and new publishes route to the old groups
    assert await transport.replay("orders", now - 60) == 2
    assert await transport.publish([message("entry.made", key="k")]) == [True]
    await eventually(lambda: len(orders.got) == 3 and len(ledger.got) == 2, what="the rest")
    assert sorted(d.id or "" for d in orders.got if d.replayed) == ["e1", "e3"]


async def test_a_migrated_file_belongs_to_the_bus_named_tidings_only(
    open_transport: OpenTransport, db_url: str
) -> None:
    # Given a version-1 file, opened first by a bus of another name
    path = sqlite_path(db_url)
    build_v1_file(path, time.time())
    other = await open_transport(name="shop")

    # Then that bus sees none of the old groups, dead letters, markers or retained events
    assert await other.stats() == []
    assert await other.publish([message("order.placed")]) == [False]
    assert not await other.dedupe_store().seen("orders", "e0")
    await other.declare([GroupSpec("orders", ("order.*",))])
    assert await other.replay("orders", 0.0) == 0
    assert await other.dlq_list("orders", 10, 0) == []

    # And the bus named "tidings" still has them
    default = await open_transport()
    assert {s.group: s.ready for s in await default.stats()} == {"ledger": 1, "orders": 1}


@pytest.mark.parametrize(
    ("build", "groups"),
    [(build_v1_file, {"ledger": 1, "orders": 1}), (build_v2_file, {"orders": 1})],
    ids=["version 1", "version 2"],
)
async def test_transports_opening_an_old_file_at_once_all_succeed(
    open_transport: OpenTransport,
    tmp_path: Path,
    build: Callable[[Path, float], None],
    groups: dict[str, int],
) -> None:
    for round in range(8):
        # Given an old file
        path = tmp_path / f"old-{round}.db"
        build(path, time.time())

        # When three transports open it at the same moment
        opened = await asyncio.gather(*(open_transport(f"sqlite:///{path}") for _ in range(3)))

        # Then all succeed, and it was migrated once, its data intact
        assert schema_version(path) == CURRENT
        for transport in opened:
            assert {s.group: s.ready for s in await transport.stats()} == groups


async def test_a_version_2_file_is_migrated_with_its_data_and_answers_requests(
    open_transport: OpenTransport, db_url: str
) -> None:
    # Given a file written by version 2, holding the data of two buses
    now = time.time()
    path = sqlite_path(db_url)
    build_v2_file(path, now)

    # When both buses open it
    default, shop = await open_transport(), await open_transport(name="shop")

    # Then the file is of the current version and each bus finds its own data
    assert schema_version(path) == CURRENT
    assert {s.group: (s.ready, s.dead) for s in await default.stats()} == {"orders": (1, 1)}
    assert {s.group: (s.ready, s.dead) for s in await shop.stats()} == {"billing": (1, 0)}
    assert await default.dedupe_store().seen("orders", "e0")
    [dead] = await default.dlq_list("orders", 10, 0)
    assert (dead.entry_id, dead.id, dead.attempts) == ("d1", "e0", 3)

    # And the pending deliveries come as they were, none of them a request
    orders, billing = Inbox(default, auto_ack=True), Inbox(shop, auto_ack=True)
    await default.consume(GroupSpec("orders", ("order.*",)), orders)
    billing_spec = GroupSpec("billing", ("bill.#",), concurrency=4, ordered=True, max_ready=100)
    await shop.consume(billing_spec, billing)
    await eventually(lambda: orders.got and billing.got, what="the migrated deliveries")
    [first] = orders.got
    assert (first.id, first.attempt, dict(first.headers), first.first_failed_at) == (
        "e1",
        2,
        {"x-h": "1"},
        now - 5,
    )
    assert [(d.id, d.key) for d in billing.got] == [("e2", "k")]
    assert first.reply_to is billing.got[0].reply_to is None

    # And a request to an old group carries its reply inbox, which receives the answer
    replies = Replies()
    inbox = await shop.open_replies(replies)
    request = message("bill.due", key="k", group="billing", reply_to=inbox.address)
    assert await shop.publish([request]) == [True]
    await eventually(lambda: len(billing.got) == 2, what="the request")
    assert billing.got[1].reply_to == inbox.address
    await shop.send_reply(inbox.address, reply(1))
    await eventually(lambda: replies.got, what="the reply")
    assert replies.ids == ["reply-1"]

    # And the retained log still replays
    assert await default.replay("orders", now - 60) == 2
    await eventually(lambda: len(orders.got) == 3, what="the replayed events")
