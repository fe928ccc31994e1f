"""Contract: dead letters keep their history; replayed failures become poison letters."""

from __future__ import annotations

import re

from .._core.bus import Bus
from .._core.context import Context
from .._core.dlq import DeadLetter, DeadLetters
from .._core.retry import Retry
from ._events import OrderPlaced
from ._harness import Harness

__all__ = ["PoisonContract"]

ONCE = Retry(attempts=1)
"""Dead-letter at the first failure: the contract is about what happens after."""


async def _dead(harness: Harness, bus: Bus, dlq: DeadLetters, count: int) -> list[DeadLetter]:
    """The entries of `dlq` once it holds `count` and the group has settled."""

    async def there() -> bool:
        return len(await dlq.list()) >= count

    await harness.wait_until(there, what=f"{count} dead letter(s) in {dlq.group}")
    await harness.settled(bus, dlq.group)
    entries = await dlq.list()
    assert len(entries) == count, entries
    return entries


async def _replay_and_fail_again(
    harness: Harness,
    bus: Bus,
    dlq: DeadLetters,
    runs: list[str],
    include_poisoned: bool | None = None,
) -> DeadLetter:
    """Replay the one entry of `dlq` (by id; with ``all=True`` when `include_poisoned` is
    given), wait for the handler to run and fail again; return the new entry."""
    (entry,) = await dlq.list()
    before = len(runs)
    if include_poisoned is None:
        assert await dlq.replay([entry.entry_id]) == 1
    else:
        assert await dlq.replay(all=True, include_poisoned=include_poisoned) == 1
    await harness.wait_until(lambda: len(runs) > before, what="the replayed delivery")
    (again,) = await _dead(harness, bus, dlq, 1)
    return again


class PoisonContract:
    """`DeadLetter.history`, `replays`, `poisoned`; `replay(all=True)` and poisoned entries;
    `DeadLetters.groups()`."""

    async def test_poison_history_of_a_first_dead_letter_is_its_failure(
        self, harness: Harness
    ) -> None:
        # Given a handler that always fails
        bus = harness.make_bus()

        @bus.subscribe("order.placed", group="billing", retry=Retry(attempts=2, base=0.01))
        async def charge(event: OrderPlaced) -> None:
            raise ValueError(f"card declined for {event.order_id}")

        await bus.start()
        await bus.publish(OrderPlaced(order_id="o-1"))

        # When the event is dead-lettered
        (entry,) = await _dead(harness, bus, bus.dead_letters("billing"), 1)

        # Then its history is that one failure, never replayed, not poisoned
        (failure,) = entry.history
        assert failure.attempts == 2
        assert failure.exception_type == "builtins.ValueError"
        assert failure.message == "card declined for o-1"
        assert failure.at == entry.last_failed_at
        assert failure.replayed is False
        assert (entry.replays, entry.poisoned) == (0, False)
        as_dict = entry.to_dict()
        assert (as_dict["replays"], as_dict["poisoned"]) == (0, False)
        assert as_dict["history"] == [failure.to_dict()]

    async def test_poison_history_of_a_replayed_event_that_fails_again_has_both(
        self, harness: Harness
    ) -> None:
        # Given an event dead-lettered by a handler that always fails, with a header of its own
        bus = harness.make_bus()
        runs: list[str] = []
        seen: list[dict[str, str]] = []

        @bus.subscribe("order.placed", group="billing", retry=ONCE)
        async def charge(event: OrderPlaced, ctx: Context) -> None:
            runs.append(ctx.event_id)
            seen.append(dict(ctx.headers))
            raise ValueError(f"declined, run {len(runs)}")

        await bus.start()
        event_id = await bus.publish(OrderPlaced(order_id="o-1"), headers={"tenant": "acme"})
        dlq = bus.dead_letters("billing")
        await _dead(harness, bus, dlq, 1)

        # When it is replayed and fails again
        entry = await _replay_and_fail_again(harness, bus, dlq, runs)

        # Then its new entry has both failures, the second one replayed
        assert entry.event_id == event_id
        assert [f.message for f in entry.history] == ["declined, run 1", "declined, run 2"]
        assert [f.replayed for f in entry.history] == [False, True]
        assert entry.history[0].at <= entry.history[1].at
        assert (entry.replays, entry.poisoned) == (1, False)
        # and the handler saw the event's own header both times, and no bookkeeping
        assert seen == [{"tenant": "acme"}, {"tenant": "acme"}]

    async def test_poison_an_entry_replayed_poison_after_times_is_poisoned(
        self, harness: Harness
    ) -> None:
        # Given a bus that poisons after two replays, and an event that always fails
        bus = harness.make_bus(poison_after=2)
        runs: list[str] = []

        @bus.subscribe("order.placed", group="billing", retry=ONCE)
        async def charge(event: OrderPlaced) -> None:
            runs.append(event.order_id)
            if event.order_id == "poison" or runs.count(event.order_id) == 1:
                raise ValueError(f"declined {event.order_id}")

        await bus.start()
        await bus.publish(OrderPlaced(order_id="poison"))
        dlq = bus.dead_letters("billing")
        await _dead(harness, bus, dlq, 1)

        # When it is replayed twice and fails each time
        once = await _replay_and_fail_again(harness, bus, dlq, runs)
        twice = await _replay_and_fail_again(harness, bus, dlq, runs)

        # Then it is poisoned after the second replay only
        assert (once.replays, once.poisoned) == (1, False)
        assert (twice.replays, twice.poisoned) == (2, True)
        assert len(twice.history) == 3
        assert twice.to_dict()["poisoned"] is True

        # And replaying all leaves it alone
        assert await dlq.replay(all=True) == 0
        assert [e.entry_id for e in await dlq.list()] == [twice.entry_id]

        # while an entry that is not poisoned is replayed (it fails once, then succeeds)
        await bus.publish(OrderPlaced(order_id="fresh"))
        await _dead(harness, bus, dlq, 2)
        assert await dlq.replay(all=True) == 1
        await harness.wait_until(lambda: runs.count("fresh") == 2, what="the fresh replay")
        await harness.settled(bus, "billing")
        assert [e.entry_id for e in await dlq.list()] == [twice.entry_id]

    async def test_poisoned_entries_replay_when_asked_or_given_by_id(
        self, harness: Harness
    ) -> None:
        # Given an entry poisoned after one replay
        bus = harness.make_bus(poison_after=1)
        runs: list[str] = []

        @bus.subscribe("order.placed", group="billing", retry=ONCE)
        async def charge(event: OrderPlaced) -> None:
            runs.append(event.order_id)
            raise ValueError("declined")

        await bus.start()
        await bus.publish(OrderPlaced(order_id="poison"))
        dlq = bus.dead_letters("billing")
        await _dead(harness, bus, dlq, 1)
        poisoned = await _replay_and_fail_again(harness, bus, dlq, runs)
        assert poisoned.poisoned

        # When all entries are replayed with include_poisoned, then it is replayed
        again = await _replay_and_fail_again(harness, bus, dlq, runs, include_poisoned=True)
        assert (again.replays, again.poisoned) == (2, True)

        # And given by id, it is replayed too
        last = await _replay_and_fail_again(harness, bus, dlq, runs)
        assert (last.replays, len(last.history)) == (3, 4)
        assert runs == ["poison"] * 4

    async def test_poison_failure_groups_gather_entries_that_failed_the_same_way(
        self, harness: Harness
    ) -> None:
        # Given entries of two different failures: two declined cards, one missing stock
        bus = harness.make_bus()

        @bus.subscribe("order.placed", group="billing", retry=ONCE)
        async def charge(event: OrderPlaced) -> None:
            if event.order_id.startswith("card"):
                raise ValueError(f"card declined for {event.order_id}")
            raise KeyError(event.order_id)

        await bus.start()
        for order_id in ("card-1", "stock-1", "card-2"):
            await bus.publish(OrderPlaced(order_id=order_id))
        dlq = bus.dead_letters("billing")
        entries = await _dead(harness, bus, dlq, 3)
        by_order = {e.data["order_id"]: e for e in entries}

        # When they are grouped
        cards, stock = await dlq.groups()

        # Then the declined cards are one group, the missing stock another, biggest first
        assert cards.count == 2 and stock.count == 1
        assert cards.exception_type == "builtins.ValueError"
        assert stock.exception_type == "builtins.KeyError"
        assert sorted(cards.entry_ids) == sorted(by_order[o].entry_id for o in ("card-1", "card-2"))
        assert stock.entry_ids == [by_order["stock-1"].entry_id]
        assert cards.handler == f"{charge.__module__}.{charge.__qualname__}"
        assert re.fullmatch(r"\S+\.py:\d+ in charge", cards.top_frame), cards.top_frame
        assert cards.signature != stock.signature
        assert all(re.fullmatch(r"[0-9a-f]{12}", g.signature) for g in (cards, stock))
        assert cards.first_seen <= cards.last_seen
        assert [g.signature for g in await dlq.groups()] == [cards.signature, stock.signature]
