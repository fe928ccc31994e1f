"""Contract: delivery semantics under races and restarts — claims, durable ordered attempts,
all-or-nothing batches, bounded groups."""

from __future__ import annotations

import asyncio

import pytest

from .._core.bus import Bus
from .._core.context import Context
from .._core.middleware import ConsumeNext, Middleware, Outcome
from .._exceptions import ConfigError, Permanent
from ._backpressure import BatchContract, BoundContract
from ._events import OrderPlaced, SeqItem
from ._features import has_dedupe_store
from ._harness import FixedDelay, Harness

__all__ = ["BatchContract", "BoundContract", "ClaimContract", "DurableOrderContract"]


class _Outcomes(Middleware):
    """Records how each delivery ended — (event id, attempt, outcome kind) — and sets
    `ended` each time one does."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []
        self.ended = asyncio.Event()

    async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
        outcome = await call_next()
        self.seen.append((ctx.event_id, ctx.attempt, outcome.kind))
        self.ended.set()
        return outcome


class ClaimContract:
    """Concurrent copies of one event id run an idempotent handler once: the first claims the
    id, the second waits (postponed, uncounted) and is then a duplicate, or runs when the
    first failed."""

    async def _two_copies_in_flight(
        self, harness: Harness, *, first_fails: bool
    ) -> tuple[Bus, _Outcomes, list[int]] | None:
        """A bus whose idempotent handler holds its first run until another delivery has
        ended, then succeeds (or fails for good); the same event id published twice. None
        when the transport has no dedupe store (it refused ``idempotent=True``)."""
        outcomes = _Outcomes()
        bus = harness.make_bus(middleware=[outcomes])
        runs: list[int] = []

        @bus.subscribe("order.placed", group="inventory", idempotent=True, concurrency=4)
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            runs.append(ctx.attempt)
            if len(runs) == 1:
                # Keep the claim until the other copy has been through the pipeline: both
                # copies are in flight at once.
                await outcomes.ended.wait()
                if first_fails:
                    raise Permanent("the first copy fails")

        if not await has_dedupe_store(harness):
            # A transport without a dedupe store must refuse idempotent groups at start.
            with pytest.raises(ConfigError):
                await bus.start()
            return None
        await bus.start()
        for _ in range(2):
            await bus.publish(OrderPlaced(order_id="o-1"), id="twice")
        return bus, outcomes, runs

    @pytest.mark.parametrize(
        ("first_fails", "runs", "outcomes"),
        [
            # The other copy waits for the claim without spending an attempt, then is
            # acknowledged as a duplicate: the handler ran once.
            (False, [1], ["postpone", "ack", "duplicate"]),
            # The copy holding the claim fails for good: the claim is released and the
            # waiting copy runs, once, and succeeds.
            (True, [1, 1], ["postpone", "dead_letter", "ack"]),
        ],
        ids=["first-succeeds", "first-fails"],
    )
    async def test_two_copies_in_flight_at_once_run_the_handler_once_unless_it_fails(
        self, harness: Harness, first_fails: bool, runs: list[int], outcomes: list[str]
    ) -> None:
        made = await self._two_copies_in_flight(harness, first_fails=first_fails)
        if made is None:
            return
        bus, recorded, ran = made

        def ended_as_expected() -> bool:
            # Fail at the first delivery that ends otherwise (two runs at once would leave
            # fewer settlements than expected, and the wait would only time out).
            kinds = [kind for _, _, kind in recorded.seen]
            if kinds != outcomes[: len(kinds)]:
                raise AssertionError(f"deliveries ended {recorded.seen}, runs {ran}")
            return len(kinds) >= len(outcomes)

        # When one copy runs while the other arrives
        await harness.wait_until(ended_as_expected, what="three settlements")
        await harness.settled(bus)
        # Then (every delivery as attempt 1: waiting for a claim is not an attempt)
        assert ran == runs
        assert recorded.seen == [("twice", 1, kind) for kind in outcomes]
        dead = await bus.dead_letters("inventory").list()
        assert [entry.event_id for entry in dead] == (["twice"] if first_fails else [])


class DurableOrderContract:
    """An ordered event waiting for its retry keeps its attempt count across a restart of
    the worker, and holds back the later events of its key (only those are guaranteed:
    RabbitMQ holds back the key's whole partition)."""

    async def test_a_waiting_ordered_retry_keeps_its_attempt_count_across_a_restart(
        self, harness: Harness
    ) -> None:
        log: list[tuple[str, str, int, int]] = []  # worker, key, n, attempt
        others = [f"k-{n}" for n in range(16)]

        def worker(name: str) -> Bus:
            bus = harness.make_bus()

            @bus.subscribe(
                "seq.item",
                group="ledger",
                ordered=True,
                concurrency=16,
                retry=FixedDelay(attempts=3, base=2.0),
            )
            async def book(event: SeqItem, ctx: Context) -> None:
                log.append((name, event.key, event.n, ctx.attempt))
                if (event.key, event.n) == ("a", 0):
                    raise ConnectionError("the ledger is down")

            return bus

        def a0() -> list[tuple[str, int]]:
            return [(w, attempt) for w, k, n, attempt in log if (k, n) == ("a", 0)]

        # Given a0 failed twice and waits for its third and last attempt, a1 waits behind
        # it, and other keys go on meanwhile (sixteen keys do not all share a0's partition)
        first = worker("first")
        await first.start()
        await first.publish(SeqItem(key="a", n=0), key="a")
        await harness.wait_until(lambda: len(a0()) == 2, what="a0's second attempt")
        await first.publish(SeqItem(key="a", n=1), key="a")
        for key in others:
            await first.publish(SeqItem(key=key, n=0), key=key)
        await harness.wait_until(
            lambda: any(k != "a" for _, k, _, _ in log), what="another key while a0 waits"
        )
        # When that worker stops during the wait and another one starts
        await first.close()
        second = worker("second")
        await second.start()

        async def a0_dead() -> bool:
            return len(await second.dead_letters("ledger").list()) == 1

        await harness.wait_until(a0_dead, what="a0 to be dead-lettered")
        await harness.wait_until(lambda: len(log) >= 3 + 1 + len(others), what="all events")
        await harness.settled(second)
        # Then a0 went on from attempt 3 on the new worker (a redelivery is not attempt 2
        # again), ran `attempts` times in all and was dead-lettered with that count
        assert a0() == [("first", 1), ("first", 2), ("second", 3)]
        (entry,) = await second.dead_letters("ledger").list()
        assert entry.attempts == 3
        # And a1 ran only after it; every other event ran once
        order = [(k, n) for _, k, n, _ in log]
        last_a0 = len(order) - 1 - order[::-1].index(("a", 0))
        assert order.index(("a", 1)) > last_a0
        assert sorted(k for k, _ in order if k != "a") == sorted(others)
