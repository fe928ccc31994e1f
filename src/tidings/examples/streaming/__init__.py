"""The streaming service: one event, fanned out to three services, one of them flaky.

*video* publishes ``video.watch_started``. *recommendation* updates the user's
preferences and publishes ``recommendation.updated``; *notification* handles both event
types; *analytics* subscribes to ``video.*`` and fails 30 % of its attempts (seeded), so
some watches are recorded on a retry and some reach its dead-letter queue — while the
other groups get every event, on time.

Run the services with ``tidings run tidings.examples.streaming.worker:bus``, or
everything with ``tidings demo streaming``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tidings import Bus, Context

from ..plan import Settings
from ..scenario import Scenario, Tracker, build_bus
from . import analytics, notification, recommendation
from .analytics import ATTEMPTS, fails
from .video import make_watch, start_watching

__all__ = ["SERVICES", "StreamingScenario", "create_bus", "expected_outcome"]

SERVICES = {
    "recommendation": recommendation.attach,
    "notification": notification.attach,
    "analytics": analytics.attach,
}


def create_bus(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    services: Iterable[str] = SERVICES,
    consume: bool = True,
    middleware: Iterable[Any] = (),
    name: str = "tidings",
    dedupe: str | None = None,
    **options: Any,
) -> Bus:
    """A bus on `url` with the streaming `services` attached (all of them by default).

    Outcome events (``notification.sent``, ``analytics.recorded``) may have no subscriber,
    hence ``on_unroutable="ignore"``.

    `name` (the bus namespace), `dedupe` (an external dedupe store such as
    ``redis://host:6379/0``, which the idempotent groups need on RabbitMQ) and `options`
    (transport options, e.g. ``management_url``) go to `Bus` unchanged.
    """
    return build_bus(
        url,
        settings or Settings(),
        {name: SERVICES[name] for name in services},
        consume=consume,
        middleware=middleware,
        name=name,
        dedupe=dedupe,
        **options,
    )


def expected_outcome(seed: int, count: int) -> dict[str, int]:
    """How `count` watches end in a run seeded with `seed`, from the plan alone."""
    ids = [make_watch(n, seed).watch_id for n in range(1, count + 1)]
    dead = sum(1 for w in ids if all(fails(seed, w, a) for a in range(1, ATTEMPTS + 1)))
    return {
        "watch_events": count,
        "recommended": count,
        "notified_watch": count,
        "notified_recommendation": count,
        "analytics_recorded": count - dead,
        "analytics_dead_lettered": dead,
        "other_dead_lettered": 0,
    }


class StreamingScenario(Scenario):
    """``tidings demo streaming``."""

    name = "streaming"
    unit = "watch events"
    default_count = 200
    groups = ("recommendation", "notification", "analytics")
    worker = "tidings.examples.streaming.worker:bus"
    outcome_types = ("recommendation.updated", "notification.sent", "analytics.recorded")

    def create_bus(
        self,
        url: str | None,
        settings: Settings,
        *,
        consume: bool = True,
        middleware: Iterable[Any] = (),
        **options: Any,
    ) -> Bus:
        return create_bus(url, settings, consume=consume, middleware=middleware, **options)

    async def publish(self, bus: Bus, number: int, settings: Settings, tracker: Tracker) -> None:
        watch = make_watch(number, settings.seed)
        tracker.published(watch.watch_id)
        await start_watching(bus, watch)

    def track(
        self, event_type: str, data: Mapping[str, Any], ctx: Context, tracker: Tracker
    ) -> None:
        watch_id = str(data["watch_id"])
        if event_type == "recommendation.updated":
            tracker.saw("recommended", watch_id)
        elif event_type == "notification.sent":
            kind = str(data["kind"])
            tracker.saw(f"notified_{kind}", watch_id, final=kind == "recommendation")
        else:
            tracker.saw("analytics", watch_id)

    def done(self, tracker: Tracker) -> int:
        return len(
            tracker.keys("recommended")
            & tracker.keys("notified_watch")
            & tracker.keys("notified_recommendation")
        )

    def finished(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> bool:
        analysed = tracker.count("analytics") + dead.get("analytics", 0)
        return self.done(tracker) >= count and analysed >= count

    def summary(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> dict[str, int]:
        return {
            "watch_events": count,
            "recommended": tracker.count("recommended"),
            "notified_watch": tracker.count("notified_watch"),
            "notified_recommendation": tracker.count("notified_recommendation"),
            "analytics_recorded": tracker.count("analytics"),
            "analytics_dead_lettered": dead.get("analytics", 0),
            "other_dead_lettered": sum(n for g, n in dead.items() if g != "analytics"),
        }

    def expected(self, settings: Settings, count: int) -> dict[str, int]:
        return expected_outcome(settings.seed, count)

    def describe(self, counts: Mapping[str, int]) -> str:
        return (
            f"{counts['watch_events']} watch events: every one reached recommendation "
            f"({counts['recommended']}) and notification ({counts['notified_watch']} + "
            f"{counts['notified_recommendation']}); analytics recorded "
            f"{counts['analytics_recorded']} and dead-lettered "
            f"{counts['analytics_dead_lettered']} after {ATTEMPTS} attempts."
        )
