"""Idempotency claims on RabbitMQ with the Redis dedupe store: of two copies of one event in
flight at once the handler runs once; a copy that failed lets the other run; a Redis that is
down postpones deliveries without counting attempts, with one WARNING, and stalls nothing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.servers import RedisServer
from tests.support import eventually
from tidings import Context, Event, Middleware, Permanent, Retry

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]


class Charged(Event, type="card.charged", version=1):
    n: int


class Outcomes(Middleware):
    """Records (group, event id, attempt, outcome kind) of every delivery."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, str]] = []

    async def consume(self, ctx: Context, call_next):  # type: ignore[no-untyped-def]
        outcome = await call_next()
        self.seen.append((ctx.group, ctx.event_id, ctx.attempt, outcome.kind))
        return outcome

    def kinds(self, kind: str, group: str = "ledger") -> list[tuple[str, int]]:
        return [(i, a) for g, i, a, k in self.seen if k == kind and g == group]


async def test_two_copies_in_flight_at_once_run_the_handler_once(namespace):
    # Given two workers of one idempotent group, each claim held until the test lets go
    outcomes = Outcomes()
    gate = asyncio.Event()
    runs: list[str] = []
    workers = [namespace.bus(dedupe=namespace.redis_url, middleware=[outcomes]) for _ in range(2)]
    for worker in workers:

        @worker.subscribe("card.charged", group="ledger", idempotent=True, concurrency=32)
        async def charge(event: Charged, ctx: Context) -> None:
            runs.append(ctx.event_id)
            await gate.wait()

    publisher = namespace.bus(consume=False)
    async with workers[0], workers[1], publisher:
        # When twelve events are each published twice at the same moment
        ids = [f"evt-{n}" for n in range(12)]
        await asyncio.gather(
            *(publisher.publish(Charged(n=n), id=ids[n]) for n in [*range(12)] * 2)
        )
        # Then while one copy of each runs, the other waits for its claim, uncounted
        await eventually(
            lambda: len(runs) == 12 and {i for i, _ in outcomes.kinds("postpone")} == set(ids),
            15,
            "one copy of each running, the other postponed",
        )
        assert sorted(runs) == sorted(ids)
        assert {a for _, a in outcomes.kinds("postpone")} == {1}
        # And once the first copies succeed, the second ones are duplicates, attempt 1
        gate.set()
        await eventually(lambda: len(outcomes.kinds("duplicate")) == 12, 15, "the duplicates")
        assert sorted(runs) == sorted(ids)
        assert sorted(outcomes.kinds("duplicate")) == sorted((i, 1) for i in ids)
        assert sorted(outcomes.kinds("ack")) == sorted((i, 1) for i in ids)


async def test_a_copy_that_failed_lets_the_other_copy_run(namespace):
    # Given an idempotent handler whose first run fails for good
    outcomes = Outcomes()
    bus = namespace.bus(dedupe=namespace.redis_url, middleware=[outcomes])
    gate = asyncio.Event()
    runs: list[int] = []

    @bus.subscribe(
        "card.charged", group="ledger", idempotent=True, concurrency=4, retry=Retry(attempts=1)
    )
    async def charge(event: Charged) -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            await gate.wait()
            raise Permanent("card service refused it")

    async with bus:
        # When two copies of one event are in flight, the first one failing
        await asyncio.gather(*(bus.publish(Charged(n=1), id="evt-1") for _ in range(2)))
        await eventually(lambda: outcomes.kinds("postpone"), 10, "the second copy postponed")
        gate.set()
        # Then the second copy runs the handler after all, and succeeds, as attempt 1
        await eventually(lambda: outcomes.kinds("ack"), 10, "the second copy's run")
        assert runs == [1, 2]
        assert outcomes.kinds("dead_letter") == [("evt-1", 1)]
        assert outcomes.kinds("ack") == [("evt-1", 1)]


@pytest.fixture
def redis_of_its_own(tmp_path):
    """A private Redis this test may stop and start again (same port)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_a_redis_that_is_down_postpones_deliveries_uncounted_and_stalls_nothing(
    namespace, redis_of_its_own, caplog, monkeypatch
):
    from tidings._core import claim

    monkeypatch.setattr(claim.Claim, "down_delay", 0.5)  # the test need not wait 5 s a round
    redis = redis_of_its_own
    # Given an idempotent group and a plain one on the same events, Redis up
    outcomes = Outcomes()
    bus = namespace.bus(dedupe=redis.url, middleware=[outcomes])
    handled: dict[str, list[tuple[str, int]]] = {"ledger": [], "audit": []}

    @bus.subscribe("card.charged", group="ledger", idempotent=True, concurrency=8)
    async def charge(event: Charged, ctx: Context) -> None:
        handled["ledger"].append((ctx.event_id, ctx.attempt))

    @bus.subscribe("card.charged", group="audit", concurrency=8)
    async def audit(event: Charged, ctx: Context) -> None:
        handled["audit"].append((ctx.event_id, ctx.attempt))

    async with bus:
        first = await bus.publish(Charged(n=0))
        await eventually(lambda: len(handled["ledger"]) == 1, 10, "the first event")
        # When Redis stops while events flow
        await asyncio.to_thread(redis.stop)
        ids = [await bus.publish(Charged(n=n)) for n in range(1, 6)]
        # Then the plain group goes on, and the idempotent one postpones each event, again
        # and again, without running it
        await eventually(lambda: len(handled["audit"]) == 6, 10, "the plain group")
        await eventually(
            lambda: all(outcomes.kinds("postpone").count((i, 1)) >= 2 for i in ids),
            15,
            "every event postponed twice",
        )
        assert handled["ledger"] == [(first, 1)]
        # When Redis is back
        await asyncio.to_thread(redis.start)
        # Then every event runs, once, as its first attempt
        await eventually(lambda: len(handled["ledger"]) == 6, 15, "the postponed events")
        assert sorted(handled["ledger"]) == sorted((i, 1) for i in [first, *ids])
        assert sorted(handled["audit"]) == sorted((i, 1) for i in [first, *ids])
    # And the outage was one WARNING, not one per delivery
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "dedupe store failed" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "group ledger" in warnings[0] and "uncounted" in warnings[0]
    assert f"127.0.0.1:{redis.port}" in warnings[0]
