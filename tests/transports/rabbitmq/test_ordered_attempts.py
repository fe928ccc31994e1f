"""Ordered groups count attempts with the broker: a worker SIGKILLed while an event waits for
its retry does not give the event extra runs, and a waiting retry holds back its partition
only; a delivery count a producer forged never stalls a partition."""

from __future__ import annotations

import asyncio
import signal
import textwrap

import pytest

from tests.support import eventually
from tests.transports.rabbitmq.conftest import publish_raw
from tidings import Event

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

ATTEMPTS = 5
CE = "application/cloudevents+json"

# A worker process: an ordered group whose handler fails for good on event a-0; every
# settled outcome is appended to the log as "<pid> <event id> <attempt> <outcome>".
WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    from tidings import Bus, Context, Event, Middleware
    from tidings.contract import FixedDelay

    url, name, management, log = sys.argv[1:5]

    class Item(Event, type="seq.item", version=1):
        key: str
        n: int

    class Log(Middleware):
        async def consume(self, ctx, call_next):
            outcome = await call_next()
            with open(log, "a") as out:
                out.write(f"{os.getpid()} {ctx.event_id} {ctx.attempt} {outcome.kind}\\n")
            return outcome

    bus = Bus(url, name=name, management_url=management, middleware=[Log()], partitions=4)

    @bus.subscribe(
        "seq.item", group="ledger", ordered=True, concurrency=8,
        retry=FixedDelay(attempts=ATTEMPTS, base=2.0),
    )
    async def book(event: Item, ctx: Context) -> None:
        if (event.key, event.n) == ("a", 0):
            raise ConnectionError("the ledger is down")

    async def main() -> None:
        async with bus:
            print("consuming", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
).replace("ATTEMPTS", str(ATTEMPTS))


class Item(Event, type="seq.item", version=1):
    key: str
    n: int


def _lines(path) -> list[tuple[int, str, int, str]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        pid, event_id, attempt, kind = line.split()
        rows.append((int(pid), event_id, int(attempt), kind))
    return rows


async def test_a_worker_killed_during_an_ordered_retry_wait_costs_no_extra_run(
    namespace, children, tmp_path
):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    log = tmp_path / "outcomes.log"
    args = [str(script), namespace.node.url, namespace.name, namespace.node.management_url]

    async def start_worker():
        child = children.start("python", *args, str(log))
        await eventually(lambda: "consuming" in child.log, 30, "the worker to consume")
        return child

    def a0() -> list[tuple[int, int, str]]:
        return [(pid, attempt, kind) for pid, i, attempt, kind in _lines(log) if i == "a-0"]

    async def kill_when_waiting(child, attempt: int) -> None:
        # Its attempt failed and was settled as "retry": the worker now waits out the back-off
        await eventually(lambda: (child.pid, attempt, "retry") in a0(), 30, f"attempt {attempt}")
        child.signal(signal.SIGKILL)
        await asyncio.to_thread(child.wait, 10)

    # Given a worker of an ordered group, and event a-0 that always fails
    first = await start_worker()
    publisher = namespace.bus(consume=False)
    async with publisher:
        await publisher.publish(Item(key="a", n=0), key="a", id="a-0")
        await publisher.publish(Item(key="a", n=1), key="a", id="a-1")
        others = [f"k{n}-0" for n in range(16)]
        for event_id in others:
            key = event_id.split("-")[0]
            await publisher.publish(Item(key=key, n=0), key=key, id=event_id)
        # When the worker is killed while a-0 waits for its third attempt, and the next
        # one while it waits for its fourth
        await kill_when_waiting(first, 2)
        second = await start_worker()
        await kill_when_waiting(second, 3)
        third = await start_worker()

        # Then a-0 runs as attempts 3 and 4 on the later workers, five runs in all, and
        # is dead-lettered with that count
        async def a0_dead() -> bool:
            return len(await publisher.dead_letters("ledger").list()) == 1

        await eventually(a0_dead, 30, "a-0 to be dead-lettered")
        assert a0() == [
            (first.pid, 1, "retry"),
            (first.pid, 2, "retry"),
            (second.pid, 3, "retry"),
            (third.pid, 4, "retry"),
            (third.pid, 5, "dead_letter"),
        ]
        (entry,) = await publisher.dead_letters("ledger").list()
        assert entry.event_id == "a-0" and entry.attempts == ATTEMPTS
        # And a-1 ran after it, every other event once; the keys of other partitions did
        # not wait for a-0 (some ran during its first back-off, on the first worker)
        await eventually(lambda: len(_lines(log)) == ATTEMPTS + 1 + len(others), 30, "all")
        rows = _lines(log)
        order = [i for _, i, _, _ in rows]
        assert order.index("a-1") > max(n for n, i in enumerate(order) if i == "a-0")
        assert sorted(i for i in order if i.startswith("k")) == sorted(others)
        assert {kind for _, i, _, kind in rows if i != "a-0"} == {"ack"}
        early = [i for pid, i, _, _ in rows if pid == first.pid and i.startswith("k")]
        assert early, "no other key ran while a-0 waited for its retry"


def _publish_to_partition(url: str, queue: str, messages: list[tuple[str, dict]]) -> None:
    raw = []
    for event_id, headers in messages:
        body = (
            b'{"specversion":"1.0","id":"%s","source":"s","type":"seq.item",'
            b'"dataversion":1,"data":{"key":"x","n":1}}' % event_id.encode()
        )
        raw.append((event_id, body, CE, {"tidings-routing-key": "seq.item", **headers}))
    publish_raw(url, queue, raw)


async def test_a_forged_delivery_count_is_dead_lettered_and_the_partition_flows(namespace):
    # Given an ordered group with one partition
    bus = namespace.bus(partitions=1)
    attempts: dict[str, int] = {}

    @bus.subscribe("seq.item", group="ledger", ordered=True)
    async def book(event: Item, ctx) -> None:
        attempts[ctx.event_id] = ctx.attempt

    forged = {"nan": "nan", "negative": -1, "huge": 10**12, "text": "often", "table": {"a": 1}}
    async with bus:
        # When another producer puts messages with a delivery count of its own there
        messages = [(f"bad-{name}", {"x-delivery-count": v}) for name, v in forged.items()]
        messages += [("counted", {"x-delivery-count": 2}), ("good", {})]
        queue = namespace.queue("ledger.p0")
        await asyncio.to_thread(_publish_to_partition, namespace.node.url, queue, messages)
        # Then the unreadable ones are dead-lettered, once each, and the rest are handled
        await eventually(lambda: "good" in attempts, 10, "the good message")

        async def all_dead() -> bool:
            return len(await bus.dead_letters("ledger").list()) == len(forged)

        await eventually(all_dead, 10, "the forged counts dead-lettered")
        entries = await bus.dead_letters("ledger").list()
    assert sorted(e.event_id for e in entries) == sorted(f"bad-{name}" for name in forged)
    assert all("x-delivery-count" in e.reason for e in entries)
    # (a readable count is a count: that message was returned twice already)
    assert attempts == {"counted": 3, "good": 1}
