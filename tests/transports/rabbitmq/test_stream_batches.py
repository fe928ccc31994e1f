"""The retained log packs the copies of concurrent publishes into batch messages: the format
round-trips every field a replay needs, an unreadable batch is a clear `BadBatch` (skipped by
a replay with a WARNING), and a replay reads batches and the one-message-per-event entries
older versions wrote alike."""

import asyncio
import json
import logging
import struct
import time
from typing import Any

import aio_pika
import pytest

from tests.support import eventually
from tidings import Bus, Context
from tidings.transports._message import OutgoingMessage
from tidings.transports.rabbitmq._log_batch import (
    BATCH_TYPE,
    H_BATCH,
    MAX_BATCH_ENTRIES,
    BadBatch,
    LogBatcher,
    LogEntry,
    batch_properties,
    chunks,
    pack_entry,
    unpack,
)

from .conftest import Note

# -- the format -------------------------------------------------------------------------------


def test_entries_round_trip_with_binary_bodies_headers_keys_and_no_id() -> None:
    # Given messages with a binary body, user headers, a key, a target group, and no id
    messages = [
        OutgoingMessage(
            id="e-1",
            type="note.kept",
            body=bytes(range(256)),
            content_type="application/octet-stream",
            headers={"ce-source": "svc", "x-ünï": "çødé"},
            key="customer-7",
            published_at=1700000000.25,
        ),
        OutgoingMessage(id="", type="cmd.run", body=b"", group="workers"),
    ]
    # When they are packed into one body and read back
    body = b"".join(pack_entry(m, now=1800000000.5) for m in messages)
    first, second = unpack(body)
    # Then every field comes back; one without a time is published at `now`
    assert first == LogEntry(
        id="e-1",
        type="note.kept",
        key="customer-7",
        content_type="application/octet-stream",
        headers={"ce-source": "svc", "x-ünï": "çødé"},
        target=None,
        published_at=1700000000.25,
        body=bytes(range(256)),
    )
    assert (second.id, second.target, second.key, second.body) == ("", "workers", None, b"")
    assert second.published_at == 1800000000.5


def test_an_entry_is_length_prefixed_compact_json_then_the_body() -> None:
    entry = pack_entry(OutgoingMessage(id="", type="a.b", body=b"\x00\xff"), now=5.0)
    (size,) = struct.unpack(">I", entry[:4])
    meta = json.loads(entry[4 : 4 + size])
    assert meta == {
        "id": "",
        "type": "a.b",
        "key": None,
        "content_type": "application/cloudevents+json",
        "headers": {},
        "group": None,
        "published_at": 5.0,
        "no_id": True,
    }
    assert b", " not in entry[4 : 4 + size]
    assert entry[4 + size :] == struct.pack(">I", 2) + b"\x00\xff"


def test_an_empty_body_holds_no_entries() -> None:
    assert unpack(b"") == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\x00\x00", "no room for a length"),
        (b"\x00\x00\x00\x10{}", "does not fit"),
        (struct.pack(">I", 2) + b"{}", "no room for a length"),
        (struct.pack(">I", 3) + b"{x}" + struct.pack(">I", 0), "not JSON"),
        (struct.pack(">I", 2) + b"\xff\xfe" + struct.pack(">I", 0), "not JSON"),
        (struct.pack(">I", 2) + b"[]" + struct.pack(">I", 0), "not an object"),
        (struct.pack(">I", 2) + b"{}" + struct.pack(">I", 0), "'id' is not a string"),
    ],
)
def test_a_truncated_or_garbage_body_is_a_bad_batch(body: bytes, why: str) -> None:
    with pytest.raises(BadBatch, match=why):
        unpack(body)


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("headers", {"n": 1}, "'headers' is not an object of strings"),
        ("published_at", "yesterday", "'published_at' is not a number"),
        ("published_at", True, "'published_at' is not a number"),
        ("key", 7, "'key' is not a string"),
    ],
)
def test_a_meta_of_the_wrong_shape_is_a_bad_batch(field: str, value: Any, why: str) -> None:
    entry = pack_entry(OutgoingMessage(id="x", type="a.b", body=b"{}"), now=1.0)
    (size,) = struct.unpack(">I", entry[:4])
    meta = json.loads(entry[4 : 4 + size]) | {field: value}
    raw = json.dumps(meta).encode()
    bad = struct.pack(">I", len(raw)) + raw + entry[4 + size :]
    with pytest.raises(BadBatch, match=f"entry 1: {why}"):
        unpack(entry + bad)


def test_batches_are_cut_by_count_and_by_size() -> None:
    small = [b"x"] * (MAX_BATCH_ENTRIES * 2 + 1)
    assert [len(c) for c in chunks(small)] == [MAX_BATCH_ENTRIES, MAX_BATCH_ENTRIES, 1]
    big = [b"x" * 400_000] * 5
    assert [len(c) for c in chunks(big)] == [3, 2]


# -- the batcher -----------------------------------------------------------------------------


async def test_records_of_one_turn_and_those_made_during_a_write_go_together() -> None:
    # Given a writer that holds its first write until released
    writes: list[dict[str, list[bytes]]] = []
    release = asyncio.Event()

    async def write(pending) -> None:
        writes.append({app: list(entries) for app, entries in pending.items()})
        if len(writes) == 1:
            await release.wait()

    batcher = LogBatcher(write)
    # When three records are made in one turn, then two more while the first write waits
    first = [batcher.add("a", [b"1"]), batcher.add("a", [b"2", b"3"]), batcher.add("b", [b"4"])]
    await eventually(lambda: len(writes) == 1, 5, "the first write")
    later = [batcher.add("a", [b"5"]), batcher.add("a", [b"6"])]
    assert not any(f.done() for f in first)
    release.set()
    await asyncio.gather(*first, *later)
    # Then they went in two writes, per app id, in order
    assert writes == [{"a": [b"1", b"2", b"3"], "b": [b"4"]}, {"a": [b"5", b"6"]}]


async def test_close_releases_every_waiting_record_and_counts_what_it_gave_up() -> None:
    # Given a write that never ends, and a record waiting behind it
    started = asyncio.Event()

    async def stuck(pending) -> None:
        started.set()
        await asyncio.Event().wait()

    batcher = LogBatcher(stuck)
    writing = batcher.add("a", [b"1", b"2"])
    await started.wait()
    queued = batcher.add("a", [b"3"])
    # When the batcher is closed, Then both records return and three entries were given up
    assert await asyncio.wait_for(batcher.close(), 5) == 3
    await asyncio.wait_for(asyncio.gather(writing, queued), 5)


async def test_a_write_that_raises_releases_its_records_and_the_next_ones_are_written() -> None:
    writes: list[list[bytes]] = []

    async def flaky(pending) -> None:
        writes.append(pending["a"])
        if len(writes) == 1:
            raise RuntimeError("boom")

    batcher = LogBatcher(flaky)
    await asyncio.wait_for(batcher.add("a", [b"1"]), 5)
    await asyncio.wait_for(batcher.add("a", [b"2"]), 5)
    assert writes == [[b"1"], [b"2"]]


# -- on RabbitMQ ------------------------------------------------------------------------------


def _subscribe(bus: Bus, seen: list[tuple[str, bool]]) -> None:
    @bus.subscribe("note.kept", group="notes")
    async def keep(event: Note, ctx: Context) -> None:
        seen.append((ctx.event_id, ctx.replayed))


async def _read_stream(url: str, stream: str, events: int) -> tuple[int, int]:
    """(stream messages, event entries) read from the start of `stream` until `events`
    entries were seen (batches unpacked, old-style messages one each)."""
    connection = await aio_pika.connect(url)
    messages = entries = 0
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(stream, ensure=False)
        async with queue.iterator(arguments={"x-stream-offset": "first"}) as stored:
            async for message in stored:
                await message.ack()
                messages += 1
                if (message.headers or {}).get(H_BATCH) is not None:
                    assert message.content_type == BATCH_TYPE
                    entries += len(unpack(message.body))
                else:
                    entries += 1
                if entries >= events:
                    break
    finally:
        await connection.close()
    return messages, entries


@pytest.mark.rabbitmq
async def test_concurrent_publishes_share_batch_messages_and_replay_once_each(
    namespace,
) -> None:
    # Given 300 events published concurrently on a bus that keeps its stream
    bus = namespace.bus()
    seen: list[tuple[str, bool]] = []
    _subscribe(bus, seen)
    async with bus:
        await asyncio.gather(*(bus.publish(Note(n=n)) for n in range(300)))
        await eventually(lambda: len(seen) == 300, 30, "300 handled")
        # Then the stream holds them in far fewer messages than events
        stream = f"{namespace.name}.:log"
        messages, entries = await asyncio.wait_for(
            _read_stream(namespace.node.url, stream, 300), 30
        )
        assert entries == 300
        assert messages <= 300 // 5, f"{messages} stream messages for 300 events"
        # When the group is replayed
        assert await bus.replay("notes", "1h") == 300
        # Then each event comes back once, marked replayed
        await eventually(lambda: len(seen) == 600, 30, "300 replayed")
        first = sorted(i for i, replayed in seen if not replayed)
        again = sorted(i for i, replayed in seen if replayed)
        assert again == first and len(set(again)) == 300


@pytest.mark.rabbitmq
async def test_entries_written_one_per_message_by_older_versions_are_replayed(
    namespace, monkeypatch, caplog
) -> None:
    # Given one event logged the old way (a stream message of its own), then one batched
    bus = namespace.bus()
    seen: list[tuple[str, bool]] = []
    _subscribe(bus, seen)
    async with bus:
        log = bus.transport._log

        async def old_record(messages, routed, app_id, now) -> None:
            items = [
                log._entry(m, app_id, now) for m, ok in zip(messages, routed, strict=True) if ok
            ]
            assert all(await log._copier.send(items))

        with monkeypatch.context() as patched:
            patched.setattr(log, "record", old_record)
            await bus.publish(Note(n=1))
        await bus.publish(Note(n=2))
        # And a batch message that cannot be read between them and the replay's marker
        garbage = ("", log.name, b"\x00\x00\x00\x09{", batch_properties("x", time.time()))
        assert all(await log._copier.send([garbage]))
        await eventually(lambda: len(seen) == 2, 10, "both handled")
        # When the group is replayed
        with caplog.at_level(logging.WARNING, logger="tidings.transports.rabbitmq._stream"):
            assert await bus.replay("notes", "1h") == 2
        # Then both come back, and the unreadable batch is one WARNING naming the stream
        await eventually(lambda: len(seen) == 4, 10, "both replayed")
        assert sorted(i for i, r in seen if r) == sorted(i for i, r in seen if not r)
        warnings = [r.getMessage() for r in caplog.records if "unreadable batch" in r.message]
        assert len(warnings) == 1 and log.name in warnings[0] and "truncated" in warnings[0]


@pytest.mark.rabbitmq
async def test_a_stream_deleted_under_the_bus_is_a_warning_and_declared_again(
    namespace, caplog
) -> None:
    # Given a bus whose stream was deleted after its first publish
    bus = namespace.bus()
    seen: list[tuple[str, bool]] = []
    _subscribe(bus, seen)
    async with bus:
        await bus.publish(Note(n=1))
        connection = await aio_pika.connect(namespace.node.url)
        try:
            await (await connection.channel()).queue_delete(f"{namespace.name}.:log")
        finally:
            await connection.close()
        # When the next event is published, Then it succeeds; its lost copy is a WARNING
        with caplog.at_level(logging.WARNING, logger="tidings.transports.rabbitmq._stream"):
            await bus.publish(Note(n=2))
        lost = [
            r.getMessage() for r in caplog.records if "not written to the retained" in r.message
        ]
        assert len(lost) == 1 and "the stream does not exist" in lost[0]
        # And the stream is declared again: the one that follows is logged and replays
        await bus.publish(Note(n=3))
        await eventually(lambda: len(seen) == 3, 10, "three handled")
        assert await bus.replay("notes", "1h") == 1
