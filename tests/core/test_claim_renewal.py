"""The claim of a running idempotent handler is renewed, so it can be short: a copy that
arrives after the lease but while the handler still runs waits; a holder that is gone
(never renewing) frees the id within one lease."""

from __future__ import annotations

import asyncio
import uuid

from tests.support import eventually
from tidings import Bus, Context, Event, Middleware, Outcome
from tidings._core.claim import Claim
from tidings._core.middleware import ConsumeNext
from tidings.transports import Claimed, DedupeStore


class Noted(Event, type="note.taken", version=1):
    text: str


async def test_a_copy_arriving_after_the_lease_waits_for_the_running_handler() -> None:
    # Given an idempotent group whose claims last 0.3 s unless renewed
    bus = Bus(f"memory://claims-{uuid.uuid4().hex[:8]}", lease=0.3)
    release = asyncio.Event()
    running = 0
    most = 0
    runs = 0

    outcomes: list[str] = []

    class Watch(Middleware):
        async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
            outcome = await call_next(ctx)
            if outcome.kind == "postpone":
                outcomes.append(outcome.kind)
            return outcome

    bus.add_middleware(Watch())

    @bus.subscribe("note.taken", group="notes", idempotent=True, concurrency=4)
    async def take(event: Noted) -> None:
        nonlocal running, most, runs
        running += 1
        runs += 1
        most = max(most, running)
        try:
            await release.wait()
        finally:
            running -= 1

    async with bus:
        claims = bus.transport.dedupe_store()._broker.claims  # type: ignore[union-attr]
        await bus.publish(Noted(text="a"), id="n-1")
        await eventually(lambda: runs == 1, 5, "the first copy to run")
        first = claims[("notes", "n-1")]
        # When a second copy arrives after the first lease would have ended, while the
        # first copy still runs (its claim renewed past three leases)
        await eventually(lambda: claims[("notes", "n-1")] > first + 0.6, 5, "renewals")
        postponed = len(outcomes)
        await bus.publish(Noted(text="a"), id="n-1")
        await eventually(lambda: len(outcomes) > postponed, 5, "the copy to be postponed")
        release.set()
        await eventually(lambda: running == 0, 5, "the handler to finish")
        stats = {s.group: s for s in await bus.stats()}

        async def settled() -> bool:
            s = {g.group: g for g in await bus.stats()}["notes"]
            return s.ready == s.in_flight == s.scheduled == 0

        await eventually(settled, 10, "the copy to be settled as a duplicate")

    # Then the handler ran once, never twice at a time
    assert runs == 1 and most == 1
    assert stats["notes"].dead == 0


class Recording(DedupeStore):
    """A store that records renewals; `claim` always grants."""

    def __init__(self) -> None:
        self.renewed: list[tuple[str, str, float]] = []

    async def seen(self, group: str, event_id: str) -> bool:
        return False

    async def mark(self, group: str, event_id: str, ttl: float) -> None:
        pass

    async def claim(self, group: str, event_id: str, lease: float) -> Claimed:
        return "claimed"

    async def renew(self, group: str, event_id: str, lease: float) -> None:
        self.renewed.append((group, event_id, lease))


async def test_only_the_claims_of_running_handlers_are_renewed() -> None:
    store = Recording()
    stage = Claim("notes", store, ttl=60.0, now=lambda: 0.0, lease=0.15)
    stage._hold("e-1")
    await eventually(lambda: len(store.renewed) >= 2, 5, "two renewals")
    assert set(store.renewed) == {("notes", "e-1", 0.15)}
    stage._let_go("e-1")
    # once no handler holds a claim, the renewal task ends by itself
    await eventually(lambda: stage._renewer is not None and stage._renewer.done(), 5, "idle")
    await stage.close()
