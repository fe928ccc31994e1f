"""Streaming: every watch reaches recommendation and notification; analytics' failures
stay in analytics (retried, or in its dead-letter queue)."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.support import eventually
from tidings.examples.plan import Settings
from tidings.examples.streaming import create_bus
from tidings.examples.streaming.video import make_watch, start_watching

from .conftest import SETTLE, Handled, idle, keys_seen

GROUPS = ("recommendation", "notification", "analytics")
SEED = 3


def plan_fails(seed: int, watch_id: str, attempt: int) -> bool:
    """Analytics' failure rule restated from its definition: 30 % by SHA-256."""
    text = f"{seed}\x00analytics\x00{watch_id}\x00{attempt}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2**64 < 0.30


async def test_flaky_analytics_does_not_disturb_the_others(
    url: str, bus_options: dict[str, Any]
) -> None:
    # Given the streaming services, and an auditor of their outcome events
    count = 150
    handled = Handled()
    settings = Settings(seed=SEED, time_scale=0.01)
    bus = create_bus(url, settings, middleware=[handled], **bus_options)
    seen: dict[str, set[str]] = {}
    record = keys_seen(seen, "watch_id")
    for pattern in ("recommendation.updated", "analytics.recorded"):
        bus.subscribe(pattern, group="audit")(record)
    notified: list[tuple[str, str]] = []

    @bus.subscribe("notification.sent", group="audit-notifications")
    async def on_notified(data: dict[str, str]) -> None:
        notified.append((data["kind"], data["watch_id"]))

    watches = [make_watch(n, SEED) for n in range(1, count + 1)]
    ids = {w.watch_id for w in watches}
    never = {w for w in ids if all(plan_fails(SEED, w, a) for a in (1, 2, 3))}
    groups = (*GROUPS, "audit", "audit-notifications")

    async with bus:
        # When the video service publishes every watch
        for watch in watches:
            await start_watching(bus, watch)

        async def settled() -> bool:
            analysed = len(seen.get("analytics.recorded", ())) + len(
                await bus.dead_letters("analytics").list(limit=1000)
            )
            return analysed == count and len(notified) == 2 * count and await idle(bus, groups)

        await eventually(settled, SETTLE, what="every watch through every group")
        dead = {g: await bus.dead_letters(g).list(limit=1000) for g in GROUPS}

    # Then recommendation and notification got every watch
    assert seen["recommendation.updated"] == ids
    assert sorted(notified) == sorted(
        [("watch", w) for w in ids] + [("recommendation", w) for w in ids]
    )
    assert dead["recommendation"] == [] and dead["notification"] == []
    # and analytics recorded exactly the watches one of its three attempts succeeded on;
    # the others are in its dead-letter queue: successes + dead letters = events published
    assert 0 < len(never) < count
    assert seen["analytics.recorded"] == ids - never
    assert {e.data["watch_id"] for e in dead["analytics"]} == never
    assert len(seen["analytics.recorded"]) + len(dead["analytics"]) == count
    # some watches succeeded only on a retry
    retried = {w for w in ids - never if plan_fails(SEED, w, 1)}
    assert retried and len(handled.failed["analytics"]) >= len(retried)
