"""Replay on RabbitMQ: the bus keeps its events in a stream (``<bus>.:log``) and
``bus.replay(group, since)`` sends them back to that group only, marked replayed; ``tidings
replay`` does the same from the command line. Unroutable publishes and dead letters sent back
to their group are not kept (the log holds each event once); ``replay_stream=False`` turns
the stream off."""

import pytest

from tests.support import eventually
from tidings import Bus, ConfigError, Context, NotSupported, Permanent, Unroutable
from tidings.transports import CAP_REPLAY_LOG

from .conftest import Note, Stray

pytestmark = pytest.mark.rabbitmq


def _subscribe(bus: Bus, seen: list[tuple[int, bool]], *, fail: bool = False) -> None:
    @bus.subscribe("note.kept", group="notes")
    async def keep(event: Note, ctx: Context) -> None:
        seen.append((event.n, ctx.replayed))
        if fail and not ctx.replayed:
            raise Permanent("dead on arrival")


async def test_replay_sends_the_kept_events_back_to_that_group_only(namespace) -> None:
    # Given two groups that handled three events, and an unroutable publish
    bus = namespace.bus()
    notes: list[tuple[int, bool]] = []
    audit: list[int] = []
    _subscribe(bus, notes)

    @bus.subscribe("note.*", group="audit")
    async def record(event: Note) -> None:
        audit.append(event.n)

    async with bus:
        assert CAP_REPLAY_LOG in bus.transport.capabilities
        for n in range(3):
            await bus.publish(Note(n=n))
        with pytest.raises(Unroutable):
            await bus.publish(Stray(n=9))
        await eventually(lambda: len(notes) == 3 and len(audit) == 3, 10, "3 x 2 handled")
        # When group notes is replayed from the last hour
        assert await bus.replay("notes", "1h") == 3
        # Then notes gets the three again, marked replayed; audit gets nothing more
        await eventually(lambda: len(notes) == 6, 10, "three replayed deliveries")
        assert sorted(notes[3:]) == [(0, True), (1, True), (2, True)]
        assert sorted(audit) == [0, 1, 2]


async def test_a_dead_letter_sent_back_is_not_kept_twice(namespace) -> None:
    # Given an event dead-lettered, then sent back from the DLQ and handled
    bus = namespace.bus()
    seen: list[tuple[int, bool]] = []
    _subscribe(bus, seen, fail=True)
    async with bus:
        await bus.publish(Note(n=1))
        dead = bus.dead_letters("notes")
        await eventually(lambda: _count(dead, 1), 10, "the dead letter")
        assert await dead.replay(all=True) == 1
        await eventually(lambda: len(seen) == 2, 10, "the DLQ replay delivered")
        # When the group is replayed, Then the event comes once (the log has it once)
        assert await bus.replay("notes", "1h") == 1


async def _count(dead, expected: int) -> bool:
    return len(await dead.list()) == expected


async def test_a_group_declared_elsewhere_is_replayed_through_its_bindings(namespace) -> None:
    # Given a worker that handled an event, and a bus without subscribers (a CLI's)
    worker = namespace.bus()
    seen: list[tuple[int, bool]] = []
    _subscribe(worker, seen)
    inspector = namespace.bus(consume=False)
    async with worker, inspector:
        await worker.publish(Note(n=7))
        await eventually(lambda: len(seen) == 1, 10, "the event handled")
        # When the other bus replays the group, Then its patterns come from its bindings
        assert await inspector.replay("notes", "1h") == 1
        await eventually(lambda: seen == [(7, False), (7, True)], 10, "the replay")
        # And a group that does not exist is one clear line
        with pytest.raises(ConfigError, match="no group 'ghost'"):
            await inspector.replay("ghost", "1h")


async def test_the_stream_can_be_turned_off(namespace) -> None:
    bus = namespace.bus(replay_stream=False)
    _subscribe(bus, [])
    async with bus:
        assert CAP_REPLAY_LOG not in bus.transport.capabilities
        await bus.publish(Note(n=1))
        with pytest.raises(NotSupported):
            await bus.replay("notes", "1h")


async def test_tidings_replay_works_on_rabbitmq(namespace, children) -> None:
    # Given a worker that handled two events
    worker = namespace.bus()
    seen: list[tuple[int, bool]] = []
    _subscribe(worker, seen)
    async with worker:
        for n in range(2):
            await worker.publish(Note(n=n))
        await eventually(lambda: len(seen) == 2, 10, "two handled")
        # When `tidings replay` runs against the broker
        child = children.tidings(
            "replay",
            "notes",
            "--since",
            "1h",
            "--url",
            namespace.node.url,
            "--name",
            namespace.name,
            "--management-url",
            namespace.node.management_url,
        )
        assert child.wait(60) == 0, child.log
        # Then it says what it did and the group gets both again, marked replayed
        assert "replayed 2 event(s) to notes" in child.log
        await eventually(lambda: len(seen) == 4, 10, "two replayed")
        assert sorted(seen[2:]) == [(0, True), (1, True)]
