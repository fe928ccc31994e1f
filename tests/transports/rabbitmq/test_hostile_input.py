"""Hostile messages from other producers never stall a group: each is dead-lettered once,
with its reason, and a good message published after it is handled."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import eventually
from tests.transports.rabbitmq.conftest import publish_raw
from tidings import Event

pytestmark = pytest.mark.rabbitmq


class Note(Event, type="note.kept", version=1):
    n: int


_CE = "application/cloudevents+json"


def _structured(event_id: str, n: int, *, dataversion: str = "1") -> bytes:
    return (
        b'{"specversion":"1.0","id":"%s","source":"s","type":"note.kept",'
        b'"dataversion":%s,"data":{"n":%d}}' % (event_id.encode(), dataversion.encode(), n)
    )


def _bad(header: str, value: object) -> tuple[bytes, str, dict[str, object], str]:
    return b"", _CE, {header: value}, f"header {header!r}"


HOSTILE: dict[str, tuple[bytes, str | None, dict[str, object], str]] = {
    # name: (body, content type, headers, part of the reason); an empty body below means
    # a good structured event whose id is the message id
    "empty-body": (b"", _CE, {}, "undecodable"),
    "empty-body-untyped": (b"", None, {}, "invalid data"),
    "attempt-nan": _bad("tidings-attempt", "nan"),
    "attempt-inf": _bad("tidings-attempt", "inf"),
    "attempt-negative": _bad("tidings-attempt", -4),
    "attempt-zero": _bad("tidings-attempt", 0),
    "attempt-text": _bad("tidings-attempt", "often"),
    "attempt-table": _bad("tidings-attempt", {"a": 1}),
    "attempt-list": _bad("tidings-attempt", [1, 2]),
    "due-nan": _bad("tidings-due-at", "nan"),
    "due-inf": _bad("tidings-due-at", "inf"),
    "due-negative": _bad("tidings-due-at", "-5"),
    "due-text": _bad("tidings-due-at", "soon"),
    "first-failed-nan": _bad("tidings-first-failed-at", "nan"),
    "first-failed-far": _bad("tidings-first-failed-at", "1e63"),
    "dataversion-1e999": (b"1e999", _CE, {}, "dataversion"),
}


def _raw_messages() -> list[tuple[str, bytes, str | None, dict]]:
    raw = []
    for n, (name, (body, content_type, headers, _)) in enumerate(HOSTILE.items()):
        event_id = f"bad-{name}"
        if name.startswith("dataversion"):
            body = _structured(event_id, n, dataversion=body.decode())
        elif headers:
            body = _structured(event_id, n)
        raw.append((event_id, body, content_type, headers))
    raw.append(("good-99", _structured("good-99", 99), _CE, {}))
    return raw


def _publish_raw(url: str, queue: str, messages: list[tuple[str, bytes, str | None, dict]]):
    routed = [(i, b, c, {"tidings-routing-key": "note.kept", **h}) for i, b, c, h in messages]
    publish_raw(url, queue, routed)


@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
async def test_each_hostile_message_is_dead_lettered_once_and_the_group_keeps_flowing(
    namespace, ordered
):
    # Given a group with one consumer holding one delivery at a time
    bus = namespace.bus()
    seen: list[int] = []

    @bus.subscribe("note.kept", group="notes", concurrency=1, ordered=ordered)
    async def keep(event: Note) -> None:
        seen.append(event.n)

    async with bus:
        # When other producers put hostile messages straight into its queue, then a good one
        queue = namespace.queue("notes") + (".p0" if ordered else "")
        await asyncio.to_thread(_publish_raw, namespace.node.url, queue, _raw_messages())
        # Then the good one is handled
        await eventually(lambda: 99 in seen, timeout=10.0)
        dlq = bus.dead_letters("notes")

        async def all_dead() -> bool:
            return len(await dlq.list()) >= len(HOSTILE)

        async def settled() -> bool:  # nothing left to deliver again
            stats = {s.group: s for s in await bus.stats()}["notes"]
            return stats.ready == stats.in_flight == stats.scheduled == 0

        await eventually(all_dead, timeout=10.0)
        await eventually(settled, timeout=10.0)
        entries = await dlq.list()
    # And each hostile message is in the DLQ once, with its reason
    ids = [entry.event_id for entry in entries]
    assert sorted(ids) == sorted(f"bad-{name}" for name in HOSTILE)
    for entry in entries:
        expected = HOSTILE[entry.event_id.removeprefix("bad-")][3]
        assert expected in entry.reason, (entry.event_id, entry.reason)
        assert entry.attempts <= 1
    assert seen == [99]


async def test_dead_letters_a_consumer_made_itself_are_counted_in_stats(namespace):
    # Given a group whose stats come from AMQP alone (no management API at that address)
    from tests.servers import free_port

    bus = namespace.bus(management_url=f"http://127.0.0.1:{free_port()}")
    seen: list[int] = []

    @bus.subscribe("note.kept", group="notes")
    async def keep(event: Note) -> None:
        seen.append(event.n)

    async with bus:
        # When the consumer dead-letters a message it cannot read, before the handler
        raw = [("bad-1", _structured("bad-1", 1), _CE, {"tidings-attempt": "nan"})]
        raw.append(("good-2", _structured("good-2", 2), _CE, {}))
        await asyncio.to_thread(_publish_raw, namespace.node.url, namespace.queue("notes"), raw)
        await eventually(lambda: seen == [2], timeout=10.0)

        # Then the stats count it, in the DLQ and among the recent dead letters
        async def counted() -> bool:
            stats = {s.group: s for s in await bus.stats()}["notes"]
            return (stats.dead, stats.dead_recent) == (1, 1)

        await eventually(counted, timeout=10.0)
