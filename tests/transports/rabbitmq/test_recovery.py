"""A broker restart mid-stream: publishers retry within their deadline, the worker re-attaches
by itself, nothing whose publish returned is lost, and an idempotent handler runs once; the log
has one line per connection when it is lost and one when it is back, and nothing from the
client libraries."""

import asyncio
import logging
import time
from collections import Counter

import pytest

from tests.support import eventually
from tidings import BrokerUnavailable, Context, Event

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.timeout(240)]


class Tick(Event, type="tick.made", version=1):
    n: int


def _lines(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def test_publisher_and_worker_survive_a_broker_restart(namespace, caplog):
    # Given a worker (idempotent, Redis markers) and a publish-only bus on its own connection
    worker = namespace.bus(dedupe=namespace.redis_url)
    handled: Counter[str] = Counter()

    @worker.subscribe("tick.made", group="ticks", idempotent=True, concurrency=8)
    async def tick(event: Tick, ctx: Context) -> None:
        handled[ctx.event_id] += 1

    publisher = namespace.bus(consume=False, publish_timeout=90.0)
    returned: list[str] = []
    restarted = asyncio.Event()

    slowest = 0.0

    async def publish_stream() -> None:
        nonlocal slowest
        n = 0
        while not (restarted.is_set() and len(returned) >= 120):
            started = time.monotonic()
            returned.append(await publisher.publish(Tick(n=n)))
            slowest = max(slowest, time.monotonic() - started)
            n += 1
            await asyncio.sleep(0.01)

    impatient = namespace.bus(consume=False, publish_timeout=1.0)

    async with worker, publisher, impatient:
        stream = asyncio.create_task(publish_stream())
        await eventually(lambda: len(handled) >= 20, 20, "the stream to flow")
        # When the node goes down mid-stream
        await asyncio.to_thread(namespace.node.stop)
        # (a publisher with a short deadline gives up with BrokerUnavailable meanwhile)
        with pytest.raises(BrokerUnavailable) as caught:
            await impatient.publish(Tick(n=-2))
        assert "no confirm within 1s" in str(caught.value)
        # and comes back on the same data directory
        await asyncio.to_thread(namespace.node.start)
        restarted.set()
        await asyncio.wait_for(stream, 120)
        # Then every event whose publish returned is handled, by the same worker
        await eventually(lambda: set(returned) <= set(handled), 90, "every returned event")
        assert len(returned) >= 120
        assert slowest > 1.0, "no publish waited through the outage: the restart was missed"
        # And with idempotent=True no handler ran twice for one event
        assert max(handled.values()) == 1, [i for i, c in handled.items() if c > 1]
        # And the worker is consuming again (a fresh event arrives)
        fresh = await publisher.publish(Tick(n=-1))
        await eventually(lambda: fresh in handled, 30, "an event after the restart")
        # And each of the three buses' connections logged one line when it was lost and one
        # when it was back, naming the broker with the password masked
        restored = "restored after"
        await eventually(lambda: len(_lines(caplog, restored)) == 3, 30, "three restored lines")
        lost = _lines(caplog, "lost the connection to RabbitMQ at")
        assert len(lost) == 3, [r.getMessage() for r in lost]
        where = f"127.0.0.1:{namespace.node.amqp_port}"
        for record in lost + _lines(caplog, restored):
            assert record.levelno == logging.WARNING and where in record.getMessage()
            assert "guest:guest" not in record.getMessage()
        # And no line of aio-pika or aiormq, and no traceback, reached WARNING
        loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.name for r in loud if r.name.split(".")[0] in ("aio_pika", "aiormq")] == []
        assert [r.getMessage() for r in loud if r.exc_info] == []
    # Once the buses are closed, the client libraries' lines are the application's again
    logging.getLogger("aiormq.connection").error("after the buses closed")
    assert _lines(caplog, "after the buses closed")
