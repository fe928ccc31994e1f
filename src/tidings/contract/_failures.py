"""Contract: retries, dead-lettering and the dead-letter queue API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .._core.bus import Bus
from .._core.context import Context
from .._core.retry import Retry
from .._exceptions import ConfigError, DeadLetterNotFound, Permanent
from ._events import OrderPlaced
from ._harness import FixedDelay, Harness, group_stats

__all__ = ["DeadLetterContract", "RetryContract"]

HOUR = 3600.0
"""A back-off that stays pending for the whole test, on simulated and real time."""


async def _dead_count(bus: Bus, group: str) -> int:
    return len(await bus.dead_letters(group).list())


class RetryContract:
    """Retries with back-off, attempts counting, non-retried errors, timeouts, and a worker
    that never blocks on a waiting retry."""

    async def test_a_failing_handler_is_retried_until_it_succeeds(self, harness: Harness) -> None:
        # Given a handler that fails twice, then succeeds, with three attempts allowed
        bus = harness.make_bus()
        attempts: list[int] = []

        @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=3, base=0.01))
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            attempts.append(ctx.attempt)
            if ctx.attempt < 3:
                raise ConnectionError(f"flaky, attempt {ctx.attempt}")

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1"))
        await harness.wait_until(lambda: len(attempts) >= 3, what="three attempts")
        await harness.settled(bus)
        # Then it ran three times, with attempt 1, 2, 3, and nothing was dead-lettered
        assert attempts == [1, 2, 3]
        assert await _dead_count(bus, "inventory") == 0

    async def test_an_always_failing_handler_is_dead_lettered_after_exactly_attempts_runs(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()
        attempts: list[int] = []

        @bus.subscribe("order.placed", group="inventory", retry=Retry(attempts=3, base=0.01))
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            attempts.append(ctx.attempt)
            raise ValueError("boom")

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1"))

        async def dead() -> bool:
            return await _dead_count(bus, "inventory") >= 1

        await harness.wait_until(dead, what="a dead letter")
        await harness.settled(bus)
        assert attempts == [1, 2, 3]
        (entry,) = await bus.dead_letters("inventory").list()
        assert entry.attempts == 3
        assert "boom" in entry.reason

    @pytest.mark.parametrize(
        ("retry", "error"),
        [
            (Retry(attempts=5, base=0.01), Permanent("card declined")),
            (Retry(attempts=5, base=0.01, never=(KeyError,)), KeyError("no such sku")),
            (Retry(attempts=5, base=0.01, on=(ConnectionError,)), ValueError("bad total")),
        ],
        ids=["Permanent", "never", "outside-on"],
    )
    async def test_errors_not_to_retry_dead_letter_at_once(
        self, harness: Harness, retry: Retry, error: Exception
    ) -> None:
        bus = harness.make_bus()
        attempts: list[int] = []

        @bus.subscribe("order.placed", group="inventory", retry=retry)
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            attempts.append(ctx.attempt)
            raise error

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1"))

        async def dead() -> bool:
            return await _dead_count(bus, "inventory") >= 1

        await harness.wait_until(dead, what="a dead letter")
        await harness.settled(bus)
        # Then the handler ran once and the entry names the exception
        assert attempts == [1]
        (entry,) = await bus.dead_letters("inventory").list()
        assert entry.attempts == 1
        assert entry.exception_type is not None
        assert entry.exception_type.endswith(type(error).__qualname__)

    async def test_timeout_turns_a_hung_handler_into_a_failed_attempt(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()
        attempts: list[int] = []

        @bus.subscribe(
            "order.placed",
            group="inventory",
            retry=Retry(attempts=2, base=0.01),
            timeout=0.05,
        )
        async def reserve(event: OrderPlaced, ctx: Context) -> None:
            attempts.append(ctx.attempt)
            await asyncio.Event().wait()  # hangs forever

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1"))

        async def dead() -> bool:
            return await _dead_count(bus, "inventory") >= 1

        await harness.wait_until(dead, what="the hung event to be dead-lettered")
        await harness.settled(bus)
        assert attempts == [1, 2]
        (entry,) = await bus.dead_letters("inventory").list()
        assert entry.exception_type == "builtins.TimeoutError"
        assert entry.attempts == 2

    async def test_a_waiting_retry_does_not_block_the_worker(self, harness: Harness) -> None:
        # Given a worker with room for one delivery at a time and an hour-long back-off
        bus = harness.make_bus()
        handled: list[str] = []
        failures: list[str] = []

        @bus.subscribe(
            "order.placed",
            group="inventory",
            concurrency=1,
            retry=FixedDelay(attempts=2, base=HOUR),
        )
        async def reserve(event: OrderPlaced) -> None:
            if event.order_id == "stuck":
                failures.append(event.order_id)
                raise ConnectionError("upstream down")
            handled.append(event.order_id)

        await bus.start()
        # When one event fails and waits for its retry
        await bus.publish(OrderPlaced(order_id="stuck"))
        await harness.wait_until(lambda: failures == ["stuck"], what="the first failure")
        for n in range(3):
            await bus.publish(OrderPlaced(order_id=f"o-{n}"))
        # Then the others are handled meanwhile, and the failed one is scheduled
        await harness.wait_until(lambda: len(handled) >= 3, what="the other events")
        stats = await group_stats(bus, "inventory")
        assert sorted(handled) == ["o-0", "o-1", "o-2"]
        assert failures == ["stuck"]
        assert stats.scheduled == 1
        assert stats.dead == 0


class DeadLetterContract:
    """What a dead letter records, and list / get / replay / purge."""

    async def test_a_dead_letter_records_the_failure_and_the_event(self, harness: Harness) -> None:
        bus = harness.make_bus()
        failed_at: list[float] = []

        @bus.subscribe("order.placed", group="billing", retry=Retry(attempts=2, base=0.01))
        async def charge(event: OrderPlaced, ctx: Context) -> None:
            failed_at.append(bus.clock.time())
            raise ValueError("card declined\nby the issuer")

        await bus.start()
        event_id = await bus.publish(OrderPlaced(order_id="o-1", total="12.50"), key="u-1")
        dlq = bus.dead_letters("billing")

        async def dead() -> bool:
            return len(await dlq.list()) >= 1

        await harness.wait_until(dead, what="a dead letter")
        await harness.settled(bus)
        (entry,) = await dlq.list()
        # The failure
        assert entry.entry_id
        assert entry.group == "billing"
        assert entry.reason and "\n" not in entry.reason
        assert "card declined" in entry.reason
        assert entry.exception_type == "builtins.ValueError"
        assert entry.message == "card declined\nby the issuer"
        assert "ValueError" in entry.traceback and "card declined" in entry.traceback
        assert entry.attempts == 2
        assert len(failed_at) == 2
        assert entry.first_failed_at.tzinfo is not None
        assert abs(entry.first_failed_at.timestamp() - failed_at[0]) < 2.0
        assert abs(entry.last_failed_at.timestamp() - failed_at[1]) < 2.0
        assert entry.first_failed_at <= entry.last_failed_at
        # The event
        assert entry.event_id == event_id
        assert entry.type == "order.placed"
        assert entry.envelope is not None
        assert entry.envelope.id == event_id and entry.envelope.type == "order.placed"
        assert entry.data == {"order_id": "o-1", "total": "12.50", "id": "not-the-event-id"}
        # get returns the same entry; stats count it
        assert await dlq.get(entry.entry_id) == entry
        assert (await group_stats(bus, "billing")).dead == 1

    async def test_list_pages_oldest_first_and_get_of_a_missing_id_raises(
        self, harness: Harness
    ) -> None:
        bus = harness.make_bus()
        order: list[str] = []

        @bus.subscribe("order.placed", group="billing", concurrency=1)
        async def charge(event: OrderPlaced, ctx: Context) -> None:
            order.append(ctx.event_id)
            raise Permanent("declined")

        await bus.start()
        for n in range(3):
            await bus.publish(OrderPlaced(order_id=f"o-{n}"))
        dlq = bus.dead_letters("billing")

        async def dead() -> bool:
            return len(await dlq.list()) >= 3

        await harness.wait_until(dead, what="three dead letters")
        await harness.settled(bus)
        entries = await dlq.list()
        assert [e.event_id for e in entries] == order
        assert await dlq.list(limit=2) == entries[:2]
        assert await dlq.list(limit=2, offset=2) == entries[2:]
        assert await dlq.list(limit=10, offset=3) == []
        with pytest.raises(DeadLetterNotFound):
            await dlq.get("no-such-entry")

    async def test_replay_returns_the_event_to_its_group_only_with_attempts_reset(
        self, harness: Harness
    ) -> None:
        # Given an event dead-lettered in billing after two attempts, and handled in audit
        bus = harness.make_bus()
        billing: list[tuple[str, int]] = []
        audit: list[str] = []
        failing = True

        @bus.subscribe("order.placed", group="billing", retry=Retry(attempts=2, base=0.01))
        async def charge(event: OrderPlaced, ctx: Context) -> None:
            billing.append((ctx.event_id, ctx.attempt))
            if failing:
                raise ConnectionError("gateway down")

        @bus.subscribe("order.placed", group="audit")
        async def record(event: OrderPlaced, ctx: Context) -> None:
            audit.append(ctx.event_id)

        await bus.start()
        event_id = await bus.publish(OrderPlaced(order_id="o-1"))
        dlq = bus.dead_letters("billing")

        async def dead() -> bool:
            return len(await dlq.list()) >= 1

        await harness.wait_until(dead, what="a dead letter")
        await harness.settled(bus)
        (entry,) = await dlq.list()
        # When the cause is fixed and the entry replayed
        failing = False
        assert await dlq.replay([entry.entry_id]) == 1
        await harness.wait_until(lambda: len(billing) >= 3, what="the replayed delivery")
        await harness.settled(bus)
        # Then billing handled it again from attempt 1; audit did not get it again
        assert billing == [(event_id, 1), (event_id, 2), (event_id, 1)]
        assert audit == [event_id]
        assert await dlq.list() == []
        assert (await group_stats(bus, "billing")).dead == 0
        with pytest.raises(DeadLetterNotFound):
            await dlq.get(entry.entry_id)

    async def test_replay_with_edit_changes_the_data(self, harness: Harness) -> None:
        bus = harness.make_bus()
        totals: list[str] = []

        @bus.subscribe("order.placed", group="billing")
        async def charge(event: OrderPlaced) -> None:
            totals.append(event.total)
            if event.total == "-1":
                raise Permanent("negative total")

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1", total="-1"))
        dlq = bus.dead_letters("billing")

        async def dead() -> bool:
            return len(await dlq.list()) >= 1

        await harness.wait_until(dead, what="a dead letter")

        def fix(data: Any) -> Any:
            return {**data, "total": "12.50"}

        assert await dlq.replay(all=True, edit=fix) == 1
        await harness.wait_until(lambda: len(totals) >= 2, what="the edited event")
        await harness.settled(bus)
        assert totals == ["-1", "12.50"]
        assert await dlq.list() == []

    async def test_purge_deletes_chosen_or_all_entries(self, harness: Harness) -> None:
        bus = harness.make_bus()

        @bus.subscribe("order.placed", group="billing")
        async def charge(event: OrderPlaced) -> None:
            raise Permanent("declined")

        await bus.start()
        for n in range(3):
            await bus.publish(OrderPlaced(order_id=f"o-{n}"))
        dlq = bus.dead_letters("billing")

        async def dead() -> bool:
            return len(await dlq.list()) >= 3

        await harness.wait_until(dead, what="three dead letters")
        first, *rest = await dlq.list()
        with pytest.raises(ConfigError):
            await dlq.purge()  # neither ids nor all=True
        assert await dlq.purge([first.entry_id]) == 1
        assert [e.entry_id for e in await dlq.list()] == [e.entry_id for e in rest]
        with pytest.raises(DeadLetterNotFound):
            await dlq.get(first.entry_id)
        assert await dlq.purge(all=True) == 2
        assert await dlq.list() == []
        assert (await group_stats(bus, "billing")).dead == 0
        # Nothing went back to the group
        stats = await group_stats(bus, "billing")
        assert (stats.ready, stats.in_flight, stats.scheduled) == (0, 0, 0)
